// The studio's money and integrations for the selected channel: earnings (balance, gross,
// fees, net) and the payouts report, tiers and the paywall, webhook endpoints (the secret
// shown once, deliveries, test, rotate, delete), API keys (shown once, revoke), and tip
// alerts over the preview. Everything from the API goes in as text.
import { Money, Integrations, formatMoney, WEBHOOK_EVENTS, API_KEY_SCOPES } from "/sdk/cascade.js";
import { el, explain, clock } from "/js/ui.js";
import { tipAlerts } from "/js/money.js";

const $ = (id) => document.getElementById(id);

/** Runs `job`, writing its error (or nothing) into the element `status`. */
const guard = (status, job) => async (e) => {
  e?.preventDefault?.();
  $(status).textContent = "";
  try { await job(); } catch (err) { $(status).textContent = explain(err); }
};
const fill = (id, items, empty, draw) =>
  $(id).replaceChildren(...(items.length ? items.map(draw) : [el("li", { className: "muted" }, empty)]));
const checks = (id, names, prefix) => $(id).replaceChildren(...names.map((n) =>
  el("label", { className: "inline" }, el("input", { type: "checkbox", value: n, className: prefix }), n)));
const checked = (id) => [...$(id).querySelectorAll("input:checked")].map((i) => i.value);

/** A secret shown once, with a copy button. */
function showSecret(id, label, value) {
  const box = $(id);
  box.replaceChildren(el("strong", {}, label), el("code", { className: "value" }, value),
    el("p", { className: "row" },
      el("button", { type: "button", className: "small", onclick: () => navigator.clipboard?.writeText(value) }, "Copy"),
      el("button", { type: "button", className: "small", onclick: () => { box.hidden = true; box.replaceChildren(); } }, "I saved it")));
  box.hidden = false;
}

checks("hook-events", WEBHOOK_EVENTS, "hook-event");
checks("apikey-scopes", API_KEY_SCOPES, "apikey-scope");

/** The paywall the studio's two boxes ask for (`PUT /channels/{slug}/paywall`). */
const paywallRequest = (everyStream, thisStream) =>
  ({ subscribers_only: everyStream, this_stream: thisStream, stream_until: null });

/**
 * Binds the money cards to `slug` (called again when the studio switches channel; the
 * returned function stops its timers). `studio.tips` collects the tips announced.
 */
export function mountStudioMoney({ account, slug, chat, studio }) {
  const money = new Money(account);
  const integrations = new Integrations(account);
  studio.tips = [];
  const alert = tipAlerts($("preview-wrap"), studio.tips);
  const offTip = chat.onTip((tip) => { alert(tip); loadEarnings(); });

  async function loadEarnings() {
    try {
      const list = await money.balance(slug);
      const figure = (label, v, c) => el("div", {}, el("dt", {}, label), el("dd", {}, formatMoney(v, c)));
      $("balances").replaceChildren(...(list.length ? list.map((b) => el("dl", { className: "figures", dataset: { currency: b.currency } },
        figure("Balance", b.balance, b.currency), figure("Gross", b.gross, b.currency),
        figure("Fees", b.fees, b.currency), figure("Net", b.gross - b.fees, b.currency),
        figure("Paid out", b.payouts, b.currency))) : [el("p", { className: "muted" }, "No earnings yet.")]));
    } catch (e) { $("balances").replaceChildren(el("p", { className: "error" }, explain(e))); }
  }
  $("earnings-refresh").onclick = loadEarnings;
  $("statement").onclick = guard("earnings-status", async () => {
    const blob = await money.statement(slug);
    const a = el("a", { href: URL.createObjectURL(blob), download: `payouts-${slug}.csv` });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  });

  async function loadTiers() {
    try {
      const [tiers, paywall] = await Promise.all([money.tiers(slug), money.paywall(slug)]);
      $("paywall-on").checked = paywall.subscribers_only;
      $("paywall-stream").checked = paywall.this_stream;
      fill("tiers-list", tiers, "No tiers yet: add one to take subscriptions.", (t) => {
        const name = el("input", { type: "text", value: t.name, maxLength: 50, ariaLabel: "Tier name", className: "tier-rename" });
        return el("li", { className: "row", dataset: { id: t.id } },
          name, el("span", { className: "muted" }, `${formatMoney(t.amount, t.currency)} / ${t.period}`),
          el("span", { className: `badge${t.active ? " ok" : ""}` }, t.active ? "offered" : "retired"),
          el("button", { type: "button", className: "small", onclick: guard("tier-status", async () => { await money.renameTier(slug, t.id, name.value.trim()); loadTiers(); }) }, "Rename"),
          t.active ? el("button", { type: "button", className: "small danger", onclick: guard("tier-status", async () => { await money.retireTier(slug, t.id); loadTiers(); }) }, "Retire") : null);
      });
    } catch (e) { $("tiers-list").replaceChildren(el("li", { className: "error" }, explain(e))); }
  }
  // Every stream, or this live only (the next one while offline; open again once it ends).
  $("paywall-on").onchange = $("paywall-stream").onchange = guard("tier-status", async () => {
    const p = await money.setPaywall(slug, paywallRequest($("paywall-on").checked, $("paywall-stream").checked));
    $("paywall-stream").checked = p.this_stream;
  });
  $("tier-form").onsubmit = guard("tier-status", async () => {
    await money.createTier(slug, {
      name: $("tier-name").value.trim(), amount: Math.round(Number($("tier-amount").value) * 100),
      currency: $("tier-currency").value, period: $("tier-period").value,
    });
    $("tier-name").value = ""; $("tier-amount").value = ""; loadTiers();
  });

  /** Opens (or, from its button, closes) an endpoint's delivery log under it. */
  async function deliveries(h, li, toggle = true) {
    const old = li.querySelector(".deliveries");
    old?.remove();
    if (old && toggle) return;
    const box = el("ol", { className: "list deliveries" });
    li.append(box);
    try {
      const log = await integrations.deliveries(h.id, 20);
      box.replaceChildren(...(log.deliveries.length ? log.deliveries.map((d) => el("li", {},
        el("span", { className: "muted" }, `${clock(d.created_at)} `), el("b", {}, d.type), " ",
        el("span", { className: `badge${d.delivered_at ? " ok" : ""}` },
          d.delivered_at ? "delivered" : d.failed_at ? "failed" : `retrying (${d.attempts})`),
        d.last_status ? el("span", { className: "muted" }, ` HTTP ${d.last_status}`) : null,
        d.last_error ? el("span", { className: "muted" }, ` ${d.last_error}`) : null))
        : [el("li", { className: "muted" }, "No deliveries yet.")]));
    } catch (e) { box.replaceChildren(el("li", { className: "error" }, explain(e))); }
  }
  async function loadHooks() {
    try {
      const hooks = await integrations.webhooks(slug);
      fill("hooks-list", hooks, "No endpoints.", (h) => {
        const li = el("li", { dataset: { id: h.id } },
          el("div", {}, el("code", {}, h.url), h.enabled ? null : el("span", { className: "badge" }, "disabled")),
          el("div", { className: "muted" }, h.events.join(", "), h.description ? ` — ${h.description}` : ""));
        li.append(el("div", { className: "row" },
          el("button", { type: "button", className: "small", onclick: () => deliveries(h, li) }, "Deliveries"),
          el("button", { type: "button", className: "small", onclick: guard("hook-status", async () => {
            await integrations.testWebhook(h.id);
            // The log, open on it: the test event is its newest line within a moment.
            setTimeout(() => deliveries(h, li, false), 1000);
          }) }, "Send test"),
          el("button", { type: "button", className: "small", onclick: guard("hook-status", async () => { const r = await integrations.rotateWebhook(h.id); showSecret("hook-secret", "New signing secret (shown once; the old one works a while longer):", r.secret); }) }, "Rotate secret"),
          el("button", { type: "button", className: "small danger", onclick: guard("hook-status", async () => { await integrations.deleteWebhook(h.id); loadHooks(); }) }, "Delete")));
        return li;
      });
    } catch (e) { $("hooks-list").replaceChildren(el("li", { className: "error" }, explain(e))); }
  }
  $("hook-form").onsubmit = guard("hook-status", async () => {
    const made = await integrations.createWebhook({ channel: slug, url: $("hook-url").value.trim(), events: checked("hook-events"), description: $("hook-note").value.trim() });
    showSecret("hook-secret", "Signing secret (shown once: verify deliveries with it):", made.secret);
    $("hook-url").value = ""; $("hook-note").value = ""; loadHooks();
  });

  async function loadKeys() {
    try {
      const keys = (await integrations.apiKeys()).filter((k) => !k.channel || k.channel === slug);
      fill("apikeys-list", keys, "No API keys.", (k) => el("li", { className: "row", dataset: { id: k.id } },
        el("b", {}, k.name || "(unnamed)"), el("span", { className: "muted" }, k.scopes.join(", ")),
        el("span", { className: "muted" }, k.last_used_at ? `used ${clock(k.last_used_at)}` : "never used"),
        k.revoked_at ? el("span", { className: "badge" }, "revoked")
          : el("button", { type: "button", className: "small danger", onclick: guard("apikey-status", async () => { await integrations.revokeApiKey(k.id); loadKeys(); }) }, "Revoke")));
    } catch (e) { $("apikeys-list").replaceChildren(el("li", { className: "error" }, explain(e))); }
  }
  $("apikey-form").onsubmit = guard("apikey-status", async () => {
    const made = await integrations.createApiKey({ name: $("apikey-name").value.trim(), scopes: checked("apikey-scopes"), channel: slug });
    showSecret("apikey-secret", "API key (shown once: send it as Authorization: Bearer …):", made.key);
    $("apikey-name").value = ""; loadKeys();
  });

  loadEarnings(); loadTiers(); loadHooks(); loadKeys();
  const timer = setInterval(loadEarnings, 30_000);
  return () => { clearInterval(timer); offTip(); };
}
