// A video's page (/video/{id}): its title, channel and description, and a <video> element
// that plays its media from the API; the browser seeks with HTTP range requests. A
// private or subscribers' video is fetched with the signed-in account, whose link then
// carries a token for it.
import { Account } from "/sdk/cascade.js";
import { explain } from "/js/ui.js";

const $ = (id) => document.getElementById(id);
const id = decodeURIComponent(location.pathname.split("/").pop() ?? "");
const account = new Account();
const page = { video: null, error: null };
window.page = page;

try {
  const v = await account.call("GET", `/videos/${encodeURIComponent(id)}`);
  page.video = v;
  document.title = `${v.title} — Cascade`;
  $("title").textContent = v.title;
  $("kind").textContent = v.kind === "recording" ? "past broadcast" : "video";
  $("channel").textContent = v.channel;
  $("channel").href = `/watch/${encodeURIComponent(v.channel)}`;
  $("duration").textContent = `${Math.round(v.duration_ms / 1000)} s`;
  $("description").textContent = v.description;
  if (v.thumbnail_url) $("video").poster = v.thumbnail_url;
  $("video").src = v.media_url;
} catch (err) {
  page.error = err;
  $("refused-text").textContent = err?.code === "subscription_required"
    ? "This video is for the channel's subscribers."
    : explain(err);
  $("refused").hidden = false;
}
