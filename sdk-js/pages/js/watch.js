// The channel page: plays /whep/<stream> with a layer picker and a stats overlay, beside the
// channel's chat, poll, survey and Q&A panels; `window.player` is what tests (and curious
// people) read. The chat goes over the WHEP session's `chat` data channel, or the room's
// WebSocket (`?transport=ws`, or when the data channel does not open).
import { play, sampleFrames, clockRegion, readClock, Account, Chat, SubscriptionRequiredError } from "/sdk/cascade.js";
import { mountChat, mountPolls, mountQa, mountSurveys, isMod } from "/js/ui.js";
import { mountChannelMoney, chatBadges } from "/js/money.js";
const $ = (id) => document.getElementById(id);
const last = location.pathname.split("/").pop();
// A malformed escape (`/watch/%E0`) would throw and leave a blank page: show it as typed.
const stream = (() => { try { return decodeURIComponent(last); } catch { return last; } })();
const q = new URLSearchParams(location.search);
const measure = q.get("measure") === "1";
$("title").textContent = stream;
const layer = q.get("layer") || "auto";
$("layer").value = ["auto", "low", "mid", "high"].includes(layer) ? layer : "auto";

// What a test or a curious person can read: frames, size, join time, delays, events.
const player = { session: null, frames: 0, width: 0, height: 0, joinStart: 0, firstFrame: 0,
                 answered: 0, connected: 0,
                 delays: [], active: null, layers: [], viewers: 0, error: null,
                 // This viewer's allocation: video paused (audio goes on), the layer's rank.
                 paused: false, rank: null,
                 // The highest temporal layer sent, when the frame rate is reduced.
                 temporal: null,
                 // The channel's chat (an SDK `Chat`: transport, messages, welcome).
                 chat: null,
                 // Refused as not a subscriber (the "Subscribers only" cover shows).
                 paywalled: false };
window.player = player;
const video = $("video");
sampleFrames(video, measure, (width, delay) => {
  player.frames++;
  player.width = width; player.height = video.videoHeight;
  if (!player.firstFrame) player.firstFrame = performance.now();
  if (delay !== null && player.delays.length < 10000) player.delays.push(delay);
});

let lastFrames = 0, lastBytes = 0, lastSession = null;
setInterval(async () => {
  const s = player.session;
  // No session (ended, refused): no figures, rather than the last one's.
  if (!s) { $("overlay").textContent = ""; lastSession = null; return; }
  if (s !== lastSession) { lastSession = s; lastBytes = 0; lastFrames = player.frames; }
  let kbps = 0;
  const stats = await s.pc.getStats();
  stats.forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") {
      kbps = ((r.bytesReceived - lastBytes) * 8) / 1000; lastBytes = r.bytesReceived;
    }
  });
  $("overlay").textContent =
    `${player.width}x${player.height}  ${player.frames - lastFrames} fps  ${kbps.toFixed(0)} kbit/s` +
    (allocated() ? `\n${allocated()}` : "") +
    (player.delays.length ? `\ndelay ${player.delays[player.delays.length - 1]} ms` : "");
  lastFrames = player.frames;
}, 1000);

/** The layer the node sends this viewer, as the overlay shows it ("" before it says). */
function allocated() {
  if (player.paused) return "layer: none (video paused)";
  if (player.rank === null) return "";
  const id = player.layers.find((l) => l.rank === player.rank)?.encodingId;
  const of = player.layers.length ? ` of ${player.layers.length}` : "";
  const rate = player.temporal === null ? "" : ", reduced frame rate";
  return `layer ${player.rank + 1}${of}${id ? ` (${id})` : ""}${rate}`;
}

/** The status line, the off-air slate and the paused notice, from what the events said. */
function show() {
  $("status").textContent = player.paywalled ? "subscribers only"
    : player.error ? `error: ${failure}`
    : player.active === null ? "connecting"
    : !player.active ? "waiting for the broadcaster"
    : player.paused ? "live, audio only" : "live";
  $("slate").hidden = player.active !== false || player.paywalled;
  $("paywall").hidden = !player.paywalled;
  $("notice").hidden = !(player.active && player.paused);
  // The notice says what the overlay would: on a small player they would overlap.
  $("overlay").hidden = !$("notice").hidden || !$("slate").hidden;
}

function onEvent(name, data) {
  if (name === "active") player.active = true;
  if (name === "inactive") player.active = false;
  if (name === "paused") player.paused = true;
  if (name === "resumed") player.paused = false;
  if (name === "allocation") { player.rank = data?.rank ?? null; player.temporal = data?.temporal ?? null; }
  if (name === "layers") player.layers = data?.video?.active ?? [];
  if (name === "viewercount") { player.viewers = data.viewercount; $("viewers").textContent = `${data.viewercount} watching`; }
  // The server ended this session (a cancelled subscription, a paywall closed, a ban):
  // join again, which shows why (the "Subscribers only" cover, or the refusal). A paywall
  // closing ends every viewer it let in at once: their joins are spread over a second.
  if (name === "ended") {
    player.ended = (player.ended ?? 0) + 1; player.session = null;
    player.rank = null; player.temporal = null; player.paused = false;
    setTimeout(() => void join().then(explain), Math.random() * 1000);
  }
  show();
}

// Ad breaks (docs/ADS.md): announced by `onAdBreak`, started by `onAdBreakStart` on the
// frame the server named — the same point of the stream on every viewer's page, however
// far behind live each is (at `starts_at` by the clock when no frame is named) — a cover
// "Ad break — back in N s" for `duration_s` from there, with the ad tag as a link; the
// stream plays on underneath. A viewer whose subscription skips ads sees a small note.
// `player.adBreaks` records each break as shown here (`shownAt`/`hiddenAt`, Date.now();
// `by`: "frame" or "clock"; `rtpTimestamp` of the first frame; with `?measure=1`,
// `frameClock`: the time painted in that frame by a publisher's test clock).
player.adBreaks = [];
player.sponsor = null;
const httpUrl = (u) => { try { const x = new URL(u); return /^https?:$/.test(x.protocol) ? x.href : null; } catch { return null; } };
let adTimer = null;
function adBreak(ad) {
  if (player.adBreaks.some((b) => b.id === ad.id)) return;
  player.adBreaks.push({ id: ad.id, starts_at: ad.starts_at, duration_s: ad.duration_s, skip: ad.skip,
                         ad_tag_url: ad.ad_tag_url, shownAt: 0, hiddenAt: 0 });
}
/** The painted clock of the frame the video element presents now (measuring pages only). */
const clockCanvas = document.createElement("canvas");
function frameClock() {
  if (!measure || !video.videoWidth) return null;
  const r = clockRegion(video.videoWidth, 1280);
  clockCanvas.width = r.w; clockCanvas.height = r.h;
  const ctx = clockCanvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, r.w, r.h, 0, 0, r.w, r.h);
  return readClock(ctx, video.videoWidth, 1280);
}
function adStart(ad, how) {
  adBreak(ad);
  const rec = player.adBreaks.find((b) => b.id === ad.id);
  const started = Date.now();
  Object.assign(rec, { by: how.by, rtpTimestamp: how.rtpTimestamp ?? null, intoMs: how.intoMs, rank: player.rank,
                       frameClock: frameClock() });
  // Its length from its start here (a viewer further behind live ends it later too), less
  // what of it went by before this page joined.
  const end = started + ad.duration_s * 1000 - how.intoMs;
  clearInterval(adTimer);
  for (const b of player.adBreaks) if (b !== rec && b.shownAt && !b.hiddenAt) b.hiddenAt = Date.now();
  const cover = ad.skip ? $("adfree") : $("adbreak");
  $("adbreak").hidden = true; $("adfree").hidden = true;
  const link = httpUrl(ad.ad_tag_url ?? "");
  $("adbreak-link").hidden = !link;
  if (link) $("adbreak-link").href = link;
  const tick = () => {
    const left = end - Date.now();
    if (left <= 0) { cover.hidden = true; rec.hiddenAt = Date.now(); clearInterval(adTimer); return; }
    $("adbreak-left").textContent = String(Math.ceil(left / 1000));
  };
  tick();
  if (rec.hiddenAt) return;
  cover.hidden = false; rec.shownAt = Date.now();
  adTimer = setInterval(tick, 200);
}
/** A sponsor's slot: name and logo (this node's, or any https one: the page's policy
 *  allows no other image) linked in the corner from its start to its end. */
function sponsor(slot) {
  if (slot.state === "end") {
    if (player.sponsor?.id === slot.id) { player.sponsor = null; $("sponsor").hidden = true; }
    return;
  }
  if (slot.ends_at <= Date.now()) return;
  player.sponsor = slot;
  const link = httpUrl(slot.link);
  $("sponsor").href = link ?? "#";
  $("sponsor-name").textContent = slot.name;
  const logo = httpUrl(slot.image_url);
  const shown = logo && (new URL(logo).origin === location.origin || logo.startsWith("https:"));
  $("sponsor-logo").hidden = !shown;
  if (shown) $("sponsor-logo").src = logo; else $("sponsor-logo").removeAttribute("src");
  $("sponsor").hidden = false;
  // Its end, should the `end` event not come (an event stream that reconnects late).
  setTimeout(() => { if (player.sponsor?.id === slot.id) sponsor({ ...slot, state: "end" }); }, slot.ends_at - Date.now());
}

$("layer").onchange = () => player.session?.selectLayer($("layer").value);
window.addEventListener("pagehide", () => player.session?.stop());
player.joinStart = performance.now();
const account = new Account();
// `?transport=ws`: the chat over the WebSocket, and no data channel in the offer.
const transport = { ws: "websocket", websocket: "websocket", dc: "datachannel", datachannel: "datachannel" }[q.get("transport")] ?? "auto";
let failure = "";
/** Joins the stream; a paywall's refusal shows the "Subscribers only" cover instead. */
async function join() {
  try {
    // A channel's viewer token (needed for a private one); none on a node without channels.
    const token = await account.viewerToken(stream).catch(() => null);
    player.session = await play(new URL(`/whep/${encodeURIComponent(stream)}`, location.href).toString(),
                                video, { layer, onEvent, token: token ?? undefined,
                                          chat: transport !== "websocket" });
    player.error = null; player.paywalled = false;
    player.session.onAdBreak(adBreak);
    player.session.onAdBreakStart(adStart);
    player.session.onSponsor(sponsor);
    player.answered = performance.now();
    const pc = player.session.pc;
    const mark = () => { if (pc.connectionState === "connected" && !player.connected) player.connected = performance.now(); };
    pc.addEventListener("connectionstatechange", mark); mark();
  } catch (e) {
    player.error = e instanceof SubscriptionRequiredError ? e.code : String(e);
    failure = e.message ?? String(e);
    player.paywalled = e instanceof SubscriptionRequiredError;
    // The server's sentence, as a sentence on the cover.
    if (player.paywalled) $("paywall-reason").textContent = `${e.detail.charAt(0).toUpperCase()}${e.detail.slice(1)}.`;
  }
  show();
}
await join();

// The chat and its panels, once the session (and its data channel) exists or failed.
const chat = new Chat(stream, {
  token: () => account.accessToken(),
  session: transport === "websocket" ? undefined : player.session ?? undefined,
  transport: transport === "datachannel" && !player.session ? "auto" : transport,
});
player.chat = chat;
const api = account.channel(stream);
const role = () => chat.welcome?.role ?? "anonymous";
const signedIn = () => !!chat.welcome?.user;
const badges = chatBadges(account, stream);
const money = mountChannelMoney({ account, stream, player, chat, badges,
  rejoin: join });
// The reason of a refusal, when it is this viewer's own subscription that ended.
function explain() {
  if (player.paywalled) money.refreshSubscription().then((sub) => {
    if (sub && !sub.entitled && sub.status === "canceled") $("paywall-reason").textContent = "Your subscription to this channel ended: subscribe again to watch.";
  });
}
explain();
mountChat({
  chat, api, badges, signinNext: location.pathname + location.search,
  onTimeout: (username) => api.moderation.ban({ username, reason: "timed out by a moderator", duration_secs: 600 })
    .catch((e) => alert(e.message)),
});
mountPolls({ chat, api, root: $("polls"), listEl: $("poll-list"), canVote: signedIn, canClose: () => isMod(role()) });
mountSurveys({ chat, api, root: $("surveys"), listEl: $("survey-list"), canAnswer: signedIn });
mountQa({ chat, api, listEl: $("qa-list"), sortEl: $("qa-sort"), form: $("qa-form"), input: $("qa-input"),
          errorEl: $("qa-error"), canAsk: signedIn, canModerate: () => isMod(role()) });
if (!account.user) { $("nav-account").textContent = "Sign in"; $("nav-account").href = `/signin?next=${encodeURIComponent(location.pathname)}`; }
chat.connect().catch(() => { /* shown in the panel; it keeps retrying */ });
window.addEventListener("pagehide", () => chat.close());
