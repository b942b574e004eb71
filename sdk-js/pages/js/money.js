// Money on the pages: the channel page's tiers, subscribe and tip (through the payment
// gateway's card form), the "Subscribers only" cover, tip alerts on the video (the channel
// page's and the studio's) and subscribers' badges in chat.
//
// The card form is the gateway's own script (Stripe.js; in tests localstripe's stand-in),
// loaded from the URL the server names (`GET /api/v1/payments/config`) with its
// publishable key; the channel page's Content-Security-Policy allows that origin only
// (signaling/src/headers.rs). A card is saved with a SetupIntent the script confirms
// (`stripe.confirmCardSetup`), and the payment method it made pays the subscription or
// the tip on the server: card numbers never touch this page's code or the node.
import { Money, formatMoney, idempotencyKey } from "/sdk/cascade.js";
import { el, explain } from "/js/ui.js";

const $ = (id) => document.getElementById(id);

/** How long a tip alert stays on the video (ms). */
const ALERT_MS = 8000;

/**
 * Tip alerts over `wrap` (the element holding the video): one at a time, each for a few
 * seconds, queued. Returns the function to call with each `tip` event.
 */
export function tipAlerts(wrap, seen = []) {
  const box = el("div", { className: "tip-alert", role: "status", hidden: true });
  wrap.append(box);
  const queue = [];
  let showing = false;
  const next = () => {
    const tip = queue.shift();
    if (!tip) { showing = false; box.hidden = true; return; }
    showing = true;
    const who = tip.user?.display_name || tip.user?.username || "Someone";
    box.replaceChildren(
      el("strong", { className: "tip-who" }, `${who} tipped ${formatMoney(tip.amount, tip.currency)}`),
      tip.message ? el("span", { className: "tip-message" }, tip.message) : null);
    box.hidden = false;
    setTimeout(next, ALERT_MS);
  };
  return (tip) => {
    if (seen.some((t) => t.id === tip.id)) return;
    seen.push(tip);
    queue.push(tip);
    if (!showing) next();
  };
}

/** The gateway's script, loaded once; resolves with `{ stripe }` or rejects with why not. */
let gateway = null;
function loadGateway(money) {
  gateway ??= (async () => {
    const cfg = await money.config();
    if (!cfg.gateway || !cfg.js_url || !cfg.publishable_key) throw new Error("payments are not set up on this server");
    if (!window.Stripe) {
      await new Promise((resolve, reject) => {
        const s = el("script", { src: cfg.js_url, onload: resolve, onerror: () => reject(new Error("the card form could not be loaded")) });
        document.head.append(s);
      });
    }
    return { stripe: window.Stripe(cfg.publishable_key) };
  })();
  gateway.catch(() => { gateway = null; });
  return gateway;
}

/**
 * The card panel: `ask(label)` shows the gateway's card form with what is being paid and
 * resolves with a saved payment method id once the person pays (or null if they cancel).
 */
function cardPanel(money) {
  const panel = $("card-panel");
  let card = null;
  let pending = null;
  const close = (value) => {
    panel.hidden = true;
    $("card-error").textContent = "";
    pending?.(value); pending = null;
  };
  $("card-cancel").onclick = () => close(null);
  $("card-form").onsubmit = async (e) => {
    e.preventDefault();
    $("card-pay").disabled = true; $("card-error").textContent = "";
    try {
      const { stripe } = await loadGateway(money);
      const secret = await money.setupCard();
      const r = await stripe.confirmCardSetup(secret, { payment_method: { card } });
      if (r?.error) throw new Error(r.error.message ?? "the card was refused");
      const pm = r.setupIntent?.payment_method;
      close(typeof pm === "string" ? pm : pm?.id);
    } catch (err) {
      $("card-error").textContent = explain(err);
    } finally {
      $("card-pay").disabled = false;
    }
  };
  return {
    async ask(label) {
      pending?.(null);
      $("card-what").textContent = label;
      $("card-error").textContent = "";
      panel.hidden = false;
      try {
        const { stripe } = await loadGateway(money);
        if (!card) {
          card = stripe.elements().create("card");
          card.mount("#card-element");
        }
      } catch (err) {
        $("card-error").textContent = explain(err);
      }
      panel.scrollIntoView({ block: "nearest" });
      return new Promise((resolve) => { pending = resolve; });
    },
  };
}

/**
 * The channel page's money: tiers with Subscribe, the tip form, the card panel, badges.
 * `player` gets `tiers`, `subscription`, `tips`, `paywalled`; `rejoin()` is called once the
 * viewer's subscription entitles them (the stream then plays).
 */
export function mountChannelMoney({ account, stream, player, chat, rejoin, badges }) {
  const money = new Money(account);
  const panel = cardPanel(money);
  const signedIn = () => !!account.user;
  let tiers = [];
  player.tiers = tiers; player.tips = []; player.subscription = null;

  const alert = tipAlerts($("wrap"), player.tips);
  chat.onTip(alert);

  const signinLink = () => `/signin?next=${encodeURIComponent(location.pathname)}`;
  const needSignin = (statusEl) => {
    statusEl.replaceChildren(el("a", { href: signinLink() }, "Sign in"), " to support this channel.");
  };

  async function refreshSubscription() {
    if (!signedIn()) return null;
    const mine = await money.subscriptions().catch(() => []);
    const sub = mine.find((s) => s.channel === stream && s.entitled) ?? mine.find((s) => s.channel === stream) ?? null;
    player.subscription = sub;
    const tier = sub && tiers.find((t) => t.id === sub.tier);
    $("sub-state").textContent = sub?.entitled ? `You subscribe${tier ? ` (${tier.name})` : ""}.`
      : sub?.status === "canceled" ? "Your subscription to this channel ended." : "";
    drawTiers();
    return sub;
  }

  function drawTiers() {
    const entitled = !!player.subscription?.entitled;
    $("tiers").replaceChildren(...tiers.map((t) => el("li", { className: "tier", dataset: { id: t.id } },
      el("span", { className: "tier-name" }, t.name),
      el("span", { className: "tier-price" }, `${formatMoney(t.amount, t.currency)} / ${t.period}`),
      el("button", { type: "button", className: "primary subscribe", disabled: entitled, onclick: () => subscribe(t) },
        entitled && player.subscription.tier === t.id ? "Subscribed" : "Subscribe"))));
    $("support").hidden = false;
    $("tiers").hidden = !tiers.length;
    $("paywall-subscribe").hidden = !tiers.length;
  }

  async function subscribe(tier) {
    const status = $("support-status");
    status.textContent = "";
    if (!signedIn()) return needSignin(status);
    const pm = await panel.ask(`Subscribe to ${tier.name}: ${formatMoney(tier.amount, tier.currency)} per ${tier.period}`);
    if (!pm) return;
    try {
      status.textContent = "Subscribing…";
      const sub = await money.subscribe(stream, tier.id, pm, idempotencyKey());
      player.subscription = sub;
      // The gateway's events make it active; a card that needs 3-D Secure is asked after a while.
      let asked = false;
      for (let i = 0; i < 120; i++) {
        const now = await refreshSubscription();
        if (now?.entitled) break;
        if (i === 40 && sub.client_secret && !asked) {
          asked = true;
          const { stripe } = await loadGateway(money);
          const r = await stripe.confirmCardPayment(sub.client_secret);
          if (r?.error) throw new Error(r.error.message ?? "the payment was not confirmed");
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      if (!player.subscription?.entitled) throw new Error("the payment is still being processed; this page will play once it is through");
      status.textContent = "Thank you for subscribing!";
      badges.refresh();
      if (player.paywalled) await rejoin();
    } catch (err) {
      status.textContent = explain(err);
    }
  }

  $("paywall-subscribe").onclick = () => {
    const first = tiers[0];
    if (first) subscribe(first);
  };

  $("tip-form").onsubmit = async (e) => {
    e.preventDefault();
    const status = $("support-status");
    status.textContent = "";
    if (!signedIn()) return needSignin(status);
    const amount = Math.round(Number($("tip-amount").value) * 100);
    if (!Number.isFinite(amount) || amount < 50) { status.textContent = "A tip is at least 0.50."; return; }
    const currency = tiers[0]?.currency ?? "usd";
    const message = $("tip-message").value.trim();
    const pm = await panel.ask(`Tip ${formatMoney(amount, currency)}`);
    if (!pm) return;
    try {
      status.textContent = "Sending your tip…";
      await money.tip(stream, { amount, currency, message, payment_method: pm }, idempotencyKey());
      status.textContent = "Thank you! Your tip shows on the stream in a moment.";
      $("tip-message").value = "";
    } catch (err) {
      status.textContent = explain(err);
    }
  };

  (async () => {
    try {
      tiers = await money.tiers(stream);
      player.tiers = tiers;
    } catch { tiers = []; }
    drawTiers();
    await refreshSubscription();
  })();

  return { refreshSubscription };
}

/**
 * Subscribers' badges for the chat: `badgeFor(username)` is their tier's name or
 * undefined. Read when the page opens and every minute (the server keeps them 30 s).
 */
export function chatBadges(account, stream) {
  const money = new Money(account);
  let map = new Map();
  const listeners = [];
  const refresh = async () => {
    try {
      const list = await money.badges(stream);
      map = new Map(list.map((b) => [b.username, b.tier]));
      listeners.forEach((f) => f());
    } catch { /* no badges: chat goes on */ }
  };
  refresh();
  setInterval(refresh, 60_000);
  return {
    badgeFor: (username) => map.get(username),
    refresh,
    onChange: (f) => listeners.push(f),
  };
}
