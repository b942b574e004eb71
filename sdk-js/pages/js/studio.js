// The studio: camera or test pattern, published over WHIP with the SDK. Going live is
// always a click on "Go live": a link must never be able to broadcast a visitor's camera,
// so no URL parameter starts publishing and none supplies the stream key. `?stream=` only
// preselects the stream (a signed-in user's own channel of that name), `?source=` the source.
// Signed in, the studio also runs the channel: its chat (over the room's WebSocket, which
// exists before going live), reports, bans and timeouts, blocked terms, settings,
// moderators, polls, surveys and the Q&A queue; and its money (earnings, payouts report,
// tiers and paywall, tip alerts over the preview), webhooks and API keys
// (studio-money.js). Effects on the picture (filters, soft focus, caption, logo, picture
// in picture) are drawn here in the browser (studio-effects.js).
import { publish, paintClock, Account, Chat } from "/sdk/cascade.js";
import { el, explain, clock, mountChat, mountPolls, mountQa } from "/js/ui.js";
import { mountStudioMoney } from "/js/studio-money.js";
import { mountStudioVideos } from "/js/studio-videos.js";
import { Effects, mountEffects } from "/js/studio-effects.js";

const $ = (id) => document.getElementById(id);
const q = new URLSearchParams(location.search);
const account = new Account();
if (q.get("stream")) $("stream").value = q.get("stream");
if (q.get("source") === "camera" || q.get("source") === "clock") $("source").value = q.get("source");
const showUrl = () => ($("whip").textContent = `${location.origin}/whip/${$("stream").value}`);
$("stream").oninput = showUrl; showUrl();

// No `start` here: only the button starts publishing (see the top of this file).
const effects = new Effects();
const studio = { state: "idle", session: null, error: null, channel: null, stop, chat: null, tips: [], effects };
window.studio = studio;
effects.onTrack = (t) => { $("preview").srcObject = t ? new MediaStream([t]) : null; };
mountEffects(effects, $, () => effects.camera?.getSettings().deviceId);

// Signed in: the user's channels and keys fill in the stream and key for them. Keys made
// here live in this tab's sessionStorage only.
const keyFor = (slug) => sessionStorage.getItem(`cascade.key.${slug}`) ?? "";
function useChannel(slug) {
  studio.channel = slug || null;
  if (!slug) return;
  $("stream").value = slug; $("key").value = keyFor(slug); showUrl();
  $("obs-url").textContent = `${location.origin}/whip/${slug}`;
  $("obs-key").textContent = keyFor(slug) || "(make a new stream key)";
  $("obs").hidden = false;
  $("channel-page").href = `/watch/${encodeURIComponent(slug)}`; $("channel-page").hidden = false;
  manage(slug);
}
async function loadChannels(select) {
  const list = await account.myChannels();
  $("channels").replaceChildren(...list.map((c) => new Option(`${c.title} (${c.slug})`, c.slug)));
  if (list.some((c) => c.slug === select)) $("channels").value = select;
  useChannel($("channels").value);
}
$("channels").onchange = () => useChannel($("channels").value);
$("new-channel").onsubmit = async (e) => {
  e.preventDefault();
  try {
    const c = await account.createChannel({ slug: $("slug").value, title: $("title").value });
    await loadChannels(c.slug);
    $("key-status").textContent = "channel created";
  } catch (err) { $("key-status").textContent = err.message; }
};
$("new-key").onclick = async () => {
  if (!studio.channel) { $("key-status").textContent = "create a channel first"; return; }
  try {
    const k = await account.createKey(studio.channel, "studio");
    sessionStorage.setItem(`cascade.key.${studio.channel}`, k.key);
    useChannel(studio.channel);
    $("key-status").textContent = `new key ${k.masked}`;
  } catch (err) { $("key-status").textContent = err.message; }
};
const setState = (s) => { studio.state = s; $("state").textContent = s; };

function clockStream() {
  const canvas = document.createElement("canvas");
  canvas.width = 1280; canvas.height = 720;
  const ctx = canvas.getContext("2d");
  let n = 0;
  const draw = () => {
    ctx.fillStyle = "#3a6"; ctx.fillRect(0, 0, 1280, 720);
    ctx.fillStyle = "#fc3"; ctx.fillRect((n * 8) % 1280, 400, 120, 120);
    paintClock(ctx, Date.now());
    n++;
  };
  draw(); setInterval(draw, 1000 / 30);
  return canvas.captureStream(30);
}

async function start() {
  $("start").disabled = true; setState("starting"); studio.error = null;
  try {
    const media = $("source").value === "clock"
      ? clockStream()
      : await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720, frameRate: 30 }, audio: true });
    // What goes out is the effects' track (the camera's own while none is on).
    await effects.setCamera(media.getVideoTracks()[0] ?? null);
    const out = new MediaStream([...(effects.track ? [effects.track] : []), ...media.getAudioTracks()]);
    const url = `/whip/${encodeURIComponent($("stream").value)}`;
    // The studio's chat goes over the WebSocket (it is there before going live): no data channel.
    studio.session = await publish(new URL(url, location.href).toString(), out, {
      token: $("key").value || undefined, simulcast: $("simulcast").checked, chat: false,
    });
    studio.media = media;
    await effects.setSender(studio.session.pc.getTransceivers()
      .find((t) => t.sender.track?.kind === "video")?.sender ?? null);
    studio.session.pc.addEventListener("connectionstatechange", () => {
      const s = studio.session?.pc.connectionState;
      if (s === "connected") setState("live");
      if (s === "failed" || s === "disconnected") setState(s);
    });
    setState("connecting");
    $("stop").disabled = false;
  } catch (e) {
    studio.error = String(e); setState(`error: ${e.message ?? e}`); $("start").disabled = false;
  }
}
async function stop() {
  $("stop").disabled = true;
  await studio.session?.stop();
  await effects.setSender(null);
  await effects.setCamera(null);
  studio.media?.getTracks().forEach((t) => t.stop());
  studio.session = null; studio.media = null; $("preview").srcObject = null;
  setState("idle"); $("start").disabled = false;
}
$("start").onclick = start; $("stop").onclick = stop;

// ---- Running the channel: chat and moderation tools for `studio.channel`. ----

let current = null; // { slug, chat, api, timers }
function manage(slug) {
  if (current?.slug === slug) return;
  if (current) { current.chat.close(); current.timers.forEach(clearInterval); current.stopMoney(); current.stopVideos(); }
  $("messages").replaceChildren(); $("poll-list").replaceChildren(); $("qa-list").replaceChildren();
  const chat = new Chat(slug, { token: () => account.accessToken(), transport: "websocket" });
  const api = account.channel(slug);
  current = { slug, chat, api, timers: [], stopMoney: () => undefined };
  studio.chat = chat;
  current.stopMoney = mountStudioMoney({ account, slug, chat, studio });
  current.stopVideos = mountStudioVideos({ account, slug, studio });
  mountAdBreak(slug);
  $("chat").hidden = false; $("manage").hidden = false;
  const timeout = (username) => api.moderation.ban({ username, reason: "timed out in the studio", duration_secs: 600 })
    .then(loadBans).catch((e) => ($("ban-status").textContent = explain(e)));
  mountChat({ chat, api, signinNext: "/studio", onTimeout: timeout });
  mountPolls({ chat, api, root: null, listEl: $("poll-list"), canVote: () => false, canClose: () => true });
  mountQa({ chat, api, listEl: $("qa-list"), sortEl: $("qa-sort"), form: $("qa-form"), input: $("qa-input"),
            errorEl: $("qa-error"), canAsk: () => false, canModerate: () => true });
  chat.on("welcome", (w) => showSettings(w.settings));
  chat.on("settings", showSettings);
  chat.on("survey", () => loadSurveys());
  chat.on("deleted", () => loadReports());
  chat.connect().catch(() => undefined);
  refreshAll();
  // Other moderators act from their pages too: what they did shows here within 10 s.
  current.timers.push(setInterval(() => { loadReports(); loadBans(); loadLog(); }, 10_000));
}

// The ad break: cued for every viewer of the channel, who all start it 2 s later at the
// same wall-clock time (docs/ADS.md); the card counts down to it and through it.
// `studio.adBreak` is the break cued from here (tests read it).
let adTimer = null;
function adStatus(text, kind = "", badge = "no break") {
  $("adbreak-status").textContent = text; $("adbreak-status").className = `adbreak-status ${kind}`;
  $("adbreak-state").textContent = badge;
  $("adbreak-state").className = `badge${badge === "no break" ? "" : " accent"}`;
}
function followBreak(brk) {
  clearInterval(adTimer);
  const end = brk.starts_at + brk.duration_s * 1000;
  const tick = () => {
    const now = Date.now();
    if (now < brk.starts_at) adStatus(`Ad break in ${Math.ceil((brk.starts_at - now) / 1000)} s…`, "running", "cued");
    else if (now < end) adStatus(`Ad break running, ${Math.ceil((end - now) / 1000)} s left`, "running", "on air");
    else { adStatus("The ad break is over."); clearInterval(adTimer); }
  };
  tick(); adTimer = setInterval(tick, 250);
}
async function mountAdBreak(slug) {
  clearInterval(adTimer); adStatus(""); studio.adBreak = null;
  $("adbreak-tag").value = "";
  try {
    const ads = await account.call("GET", `/channels/${encodeURIComponent(slug)}/ads`);
    if (current?.slug === slug) $("adbreak-tag").value = ads?.ad_tag_url ?? "";
  } catch (e) { adStatus(explain(e), "error"); }
}
$("adbreak-form").onsubmit = async (e) => {
  e.preventDefault();
  if (!current) return;
  const tag = $("adbreak-tag").value.trim();
  $("adbreak-start").disabled = true;
  try {
    const brk = await account.call("POST", `/channels/${encodeURIComponent(current.slug)}/ad-breaks`,
      { duration_s: Number($("adbreak-duration").value), ...(tag ? { ad_tag_url: tag } : {}) });
    studio.adBreak = brk;
    followBreak(brk);
  } catch (err) {
    // One break at a time: the running one keeps its countdown, the refusal shows above it.
    if (err?.status === 409) {
      clearInterval(adTimer);
      adStatus("A break is already running: wait for it to end before starting another.", "error", "on air");
      if (studio.adBreak && Date.now() < studio.adBreak.starts_at + studio.adBreak.duration_s * 1000) {
        setTimeout(() => followBreak(studio.adBreak), 3000);
      }
    } else adStatus(explain(err), "error");
  } finally { $("adbreak-start").disabled = false; }
};

const api = () => current.api;
function refreshAll() {
  for (const f of [loadReports, loadBans, loadTerms, loadModerators, loadSurveys, loadLog]) f();
}
/** Runs `job`, writing its error (or nothing) into the element `status`. */
const guard = (status, job) => async (e) => {
  e?.preventDefault?.();
  $(status).textContent = "";
  try { await job(); } catch (err) { $(status).textContent = explain(err); }
};
const who = (u) => (typeof u === "string" ? u : u?.username ?? "");
const fillList = (id, items, empty, draw) =>
  $(id).replaceChildren(...(items.length ? items.map(draw) : [el("li", { className: "muted" }, empty)]));

async function loadReports() {
  if (!current) return;
  try {
    const reports = await api().moderation.reports("open");
    // A report names the message; its text is the chat's, when this page still holds it.
    const held = (id) => current.chat.messages.find((m) => m.id === id);
    fillList("reports-list", reports, "No open reports.", (r) => el("li", { dataset: { id: r.id } },
      el("div", {}, el("b", {}, held(r.message_id) ? `${who(held(r.message_id).user)}: ` : `message #${r.message_id}`),
        el("span", { className: "text" }, held(r.message_id)?.text ?? "")),
      el("div", { className: "muted" }, `reported by ${who(r.reporter) || "someone"}: ${r.reason ?? ""}`),
      el("div", { className: "row" },
        el("button", { type: "button", className: "small dismiss", onclick: () => resolve(r.id, "dismiss") }, "Dismiss"),
        el("button", { type: "button", className: "small danger delete", onclick: () => resolve(r.id, "delete") }, "Delete message"))));
  } catch (e) { $("reports-list").replaceChildren(el("li", { className: "error" }, explain(e))); }
}
async function resolve(id, action) {
  try { await api().moderation.resolve(id, action); } catch (e) { alert(explain(e)); }
  loadReports(); loadLog();
}
$("reports-refresh").onclick = refreshAll;

async function loadBans() {
  if (!current) return;
  try {
    const bans = await api().moderation.bans();
    fillList("bans-list", bans, "Nobody is banned or timed out.", (b) => el("li", { className: "row" },
      el("b", {}, who(b.username ?? b.user)),
      el("span", { className: "muted" }, b.expires_at ? `until ${clock(b.expires_at)}` : "banned"),
      el("span", {}, b.reason ?? ""),
      el("button", { type: "button", className: "small", onclick: guard("ban-status", async () => { await api().moderation.unban(who(b.username ?? b.user)); loadBans(); }) }, "Lift")));
  } catch (e) { $("bans-list").replaceChildren(el("li", { className: "error" }, explain(e))); }
}
$("ban-form").onsubmit = guard("ban-status", async () => {
  const duration = $("ban-duration").value;
  await api().moderation.ban({
    username: $("ban-user").value.trim(), reason: $("ban-reason").value,
    ...(duration ? { duration_secs: Number(duration) } : {}), ...($("ban-watch").checked ? { watch: true } : {}),
  });
  $("ban-status").textContent = duration ? "timed out" : "banned";
  $("ban-user").value = ""; $("ban-reason").value = "";
  loadBans(); loadLog();
});

async function loadTerms() {
  if (!current) return;
  try {
    const terms = await api().moderation.blockedTerms();
    fillList("terms-list", terms, "No blocked terms of this channel.", (t) => el("li", { className: "row" },
      el("code", {}, t.term), el("span", { className: "badge" }, t.action),
      el("button", { type: "button", className: "small", onclick: guard("term-status", async () => { await api().moderation.unblockTerm(t.id); loadTerms(); }) }, "Remove")));
  } catch (e) { $("terms-list").replaceChildren(el("li", { className: "error" }, explain(e))); }
}
$("term-form").onsubmit = guard("term-status", async () => {
  await api().moderation.blockTerm($("term").value.trim(), $("term-action").value);
  $("term").value = ""; loadTerms();
});

function showSettings(s) {
  if (!s) return;
  $("chat-mode").value = s.mode; $("slow-mode").value = String(s.slow_mode_secs);
}
$("settings-form").onsubmit = guard("settings-status", async () => {
  showSettings(await api().chat.updateSettings({ mode: $("chat-mode").value, slow_mode_secs: Number($("slow-mode").value) || 0 }));
  $("settings-status").textContent = "saved";
});

async function loadModerators() {
  if (!current) return;
  try {
    const mods = await api().moderation.moderators();
    fillList("mods-list", mods, "No moderators yet.", (m) => el("li", { className: "row" },
      el("b", {}, who(m.username ?? m.user)), el("span", { className: "muted" }, `since ${clock(m.added_at)}`),
      el("button", { type: "button", className: "small", onclick: guard("mod-status", async () => { await api().moderation.removeModerator(who(m.username ?? m.user)); loadModerators(); }) }, "Remove")));
  } catch (e) { $("mods-list").replaceChildren(el("li", { className: "error" }, explain(e))); }
}
$("mod-form").onsubmit = guard("mod-status", async () => {
  await api().moderation.addModerator($("mod-user").value.trim());
  $("mod-user").value = ""; loadModerators();
});

$("poll-form").onsubmit = guard("poll-status", async () => {
  const options = $("poll-options").value.split("\n").map((o) => o.trim()).filter(Boolean);
  const duration = Number($("poll-duration").value);
  await api().polls.create({
    question: $("poll-question").value.trim(), options, multiple: $("poll-multiple").checked,
    ...(duration > 0 ? { duration_secs: duration } : {}),
  });
  $("poll-question").value = ""; $("poll-options").value = "";
});

// Survey builder: one row per question (kind, prompt, options or range).
function addSurveyQuestion() {
  const kind = el("select", { className: "sq-kind", ariaLabel: "Kind" },
    new Option("Choice", "choice"), new Option("Scale", "scale"), new Option("Text", "text"));
  const options = el("input", { type: "text", className: "sq-options", placeholder: "options, comma separated" });
  const min = el("input", { type: "number", className: "sq-min", value: "1", ariaLabel: "from" });
  const max = el("input", { type: "number", className: "sq-max", value: "5", ariaLabel: "to" });
  const range = el("span", { className: "row", hidden: true }, "from", min, "to", max);
  kind.onchange = () => { options.hidden = kind.value !== "choice"; range.hidden = kind.value !== "scale"; };
  const row = el("div", { className: "survey-q" },
    el("div", { className: "row" }, kind, el("input", { type: "text", className: "sq-prompt", placeholder: "prompt", required: true })),
    options, range,
    el("button", { type: "button", className: "small", onclick: () => row.remove() }, "Remove"));
  $("survey-questions").append(row);
}
$("survey-add").onclick = addSurveyQuestion;
addSurveyQuestion();
$("survey-form").onsubmit = guard("survey-status", async () => {
  const questions = [...$("survey-questions").children].map((row) => {
    const kind = row.querySelector(".sq-kind").value;
    const q = { kind, prompt: row.querySelector(".sq-prompt").value.trim() };
    if (kind === "choice") q.options = row.querySelector(".sq-options").value.split(",").map((o) => o.trim()).filter(Boolean);
    if (kind === "scale") { q.min = Number(row.querySelector(".sq-min").value); q.max = Number(row.querySelector(".sq-max").value); }
    return q;
  });
  await api().surveys.create({ title: $("survey-title").value.trim(), questions });
  $("survey-title").value = ""; $("survey-questions").replaceChildren(); addSurveyQuestion();
  loadSurveys();
});

/** Saves a survey's results: fetched with the moderator's token, handed over as a file. */
async function exportSurvey(s, format) {
  const blob = format === "csv"
    ? await api().surveys.resultsCsv(s.id)
    : new Blob([JSON.stringify(await api().surveys.results(s.id), null, 2)], { type: "application/json" });
  const a = el("a", { href: URL.createObjectURL(blob), download: `survey-${s.id}.${format}` });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}
async function loadSurveys() {
  if (!current) return;
  try {
    const surveys = await api().surveys.list();
    fillList("surveys-list", surveys, "No surveys yet.", (s) => el("li", { dataset: { id: s.id } },
      el("div", { className: "row" }, el("b", {}, s.title),
        el("span", { className: `badge${s.closed ? "" : " accent"}` }, s.closed ? "closed" : "open"),
        el("span", { className: "muted responses" }, `${s.responses} response${s.responses === 1 ? "" : "s"}`)),
      el("div", { className: "row" },
        el("button", { type: "button", className: "small", onclick: guard("survey-status", () => exportSurvey(s, "csv")) }, "Export CSV"),
        el("button", { type: "button", className: "small", onclick: guard("survey-status", () => exportSurvey(s, "json")) }, "Export JSON"),
        s.closed ? null : el("button", { type: "button", className: "small danger", onclick: guard("survey-status", async () => { await api().surveys.close(s.id); loadSurveys(); }) }, "Close"))));
  } catch (e) { $("surveys-list").replaceChildren(el("li", { className: "error" }, explain(e))); }
}

async function loadLog() {
  if (!current) return;
  try {
    const log = await api().moderation.log();
    fillList("modlog", log.slice(-50).reverse(), "Nothing yet.", (x) => el("li", {},
      el("span", { className: "muted" }, `${clock(x.at)} `), el("b", {}, who(x.actor)), ` ${x.action} `,
      el("b", {}, who(x.target)), x.reason ? el("span", { className: "muted" }, ` — ${x.reason}`) : null));
  } catch (e) { $("modlog").replaceChildren(el("li", { className: "error" }, explain(e))); }
}
$("modlog-refresh").onclick = refreshAll;

// Last, once everything above is defined (the module's top-level await stops here).
if (account.user) {
  try {
    $("me").textContent = (await account.me()).username;
    $("mine").hidden = false; $("signed-out").hidden = true;
    await loadChannels(q.get("stream"));
  } catch { /* signed out meanwhile: the plain studio stays */ }
}
