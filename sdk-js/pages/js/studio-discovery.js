// The studio's side of discovery, for a signed-in owner: the live stream's title and
// category (shown in every list while live), and a thumbnail: while live, a frame of the
// preview drawn into a canvas and sent as a JPEG, soon after going live and then every
// 30 s. `window.studio` (studio.js) says which channel and whether it is live.
import { Account } from "/sdk/cascade.js";
import { el } from "/js/ui.js";

const $ = (id) => document.getElementById(id);
const account = new Account();
const THUMB_EVERY = 30_000;
const enc = encodeURIComponent;
// What a test can read: thumbnails sent, the last error.
const discovery = { thumbnails: 0, error: null };
window.studioDiscovery = discovery;

let shownFor = null;
async function showInfo(slug) {
  shownFor = slug;
  const [cats, info] = await Promise.all([
    fetch("/api/v1/categories").then((r) => r.json()),
    account.call("GET", `/channels/${enc(slug)}/stream-info`),
  ]);
  $("stream-category").replaceChildren(el("option", { value: "" }, "(the channel's)"),
    ...cats.map((c) => el("option", { value: c.name }, c.name)));
  $("stream-title").value = info.title;
  $("stream-category").value = info.category;
}

$("stream-info").onsubmit = async (e) => {
  e.preventDefault();
  const slug = window.studio?.channel;
  if (!slug) return;
  try {
    await account.call("PUT", `/channels/${enc(slug)}/stream-info`,
      { title: $("stream-title").value, category: $("stream-category").value });
    $("stream-info-status").textContent = "saved";
  } catch (err) { $("stream-info-status").textContent = String(err.message ?? err); }
};

/** Draws the preview into a 480×270 canvas and sends it as a JPEG. */
async function sendThumbnail(slug) {
  const video = $("preview");
  if (!video.videoWidth) return;
  const canvas = document.createElement("canvas");
  canvas.width = 480; canvas.height = 270;
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  const blob = await new Promise((r) => canvas.toBlob(r, "image/jpeg", 0.7));
  if (!blob) return;
  const token = await account.accessToken();
  const resp = await fetch(`/api/v1/channels/${enc(slug)}/thumbnail`, {
    method: "PUT", headers: { "content-type": "image/jpeg", authorization: `Bearer ${token}` }, body: blob,
  });
  if (resp.ok) discovery.thumbnails++;
  else discovery.error = `${resp.status} ${await resp.text()}`;
}

let liveSince = 0, lastSent = 0;
setInterval(() => {
  const s = window.studio;
  if (!account.user || !s?.channel) return;
  if (shownFor !== s.channel) showInfo(s.channel).catch((e) => { discovery.error = String(e); });
  if (s.state !== "live") { liveSince = 0; return; }
  const now = Date.now();
  if (!liveSince) liveSince = now;
  // The first frame 2 s after going live (the encoder and preview have started).
  if (now - liveSince >= 2000 && now - lastSent >= THUMB_EVERY) {
    lastSent = now;
    sendThumbnail(s.channel).catch((e) => { discovery.error = String(e); });
  }
}, 1000);
