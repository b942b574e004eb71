// The studio: camera or test pattern, published over WHIP with the SDK. Going live is
// always a click on "Go live": a link must never be able to broadcast a visitor's camera,
// so no URL parameter starts publishing and none supplies the stream key. `?stream=` only
// preselects the stream (a signed-in user's own channel of that name), `?source=` the source.
import { publish, paintClock, Account } from "/sdk/cascade.js";

const $ = (id) => document.getElementById(id);
const q = new URLSearchParams(location.search);
const account = new Account();
if (q.get("stream")) $("stream").value = q.get("stream");
if (q.get("source") === "camera" || q.get("source") === "clock") $("source").value = q.get("source");
const showUrl = () => ($("whip").textContent = `${location.origin}/whip/${$("stream").value}`);
$("stream").oninput = showUrl; showUrl();

// No `start` here: only the button starts publishing (see the top of this file).
const studio = { state: "idle", session: null, error: null, channel: null, stop };
window.studio = studio;

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
}
async function loadChannels(select) {
  const list = await account.myChannels();
  $("channels").replaceChildren(...list.map((c) => new Option(`${c.title} (${c.slug})`, c.slug)));
  if (list.some((c) => c.slug === select)) $("channels").value = select;
  useChannel($("channels").value);
}
if (account.user) {
  try {
    $("me").textContent = (await account.me()).username;
    $("mine").hidden = false; $("signed-out").hidden = true;
    await loadChannels(q.get("stream"));
  } catch { /* signed out meanwhile: the plain studio stays */ }
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
    $("preview").srcObject = media;
    const url = `/whip/${encodeURIComponent($("stream").value)}`;
    studio.session = await publish(new URL(url, location.href).toString(), media, {
      token: $("key").value || undefined, simulcast: $("simulcast").checked,
    });
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
  studio.session = null; $("preview").srcObject = null;
  setState("idle"); $("start").disabled = false;
}
$("start").onclick = start; $("stop").onclick = stop;
