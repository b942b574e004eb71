// The home page's discovery: search, categories, live now (most watched first, with
// thumbnails), trending, and, signed in, the followed channels live now, recommendations
// and notifications (pushed as server-sent events, read with fetch: they need the
// Authorization header). Everything from the API goes into the page as text.
import { Account } from "/sdk/cascade.js";
import { el } from "/js/ui.js";

const $ = (id) => document.getElementById(id);
const account = new Account();
const signedIn = () => !!account.user;
const enc = encodeURIComponent;
let category = "";

// What a test (or a curious person) can read.
const home = { notifications: [], unread: 0, stream: "closed" };
window.home = home;

/** A channel's card: thumbnail (or a placeholder), title, channel, category, viewers. */
export function card(c) {
  const thumb = c.thumbnail
    ? el("img", { className: "thumb", src: c.thumbnail, alt: "", loading: "lazy" })
    : el("div", { className: "thumb none" }, c.live ? "LIVE" : "offline");
  const meta = el("p", { className: "muted" }, c.owner, c.category ? ` · ${c.category}` : "");
  const badge = c.live
    ? el("span", { className: "badge live" }, `${c.viewers} watching`)
    : el("span", { className: "badge" }, "offline");
  return el("li", { className: "cardlet", dataset: { channel: c.channel } },
    el("a", { href: `/watch/${enc(c.channel)}` }, thumb, el("b", { className: "title" }, c.title)),
    meta, badge);
}

function fill(id, list, empty) {
  $(id).replaceChildren(...(list.length ? list.map(card) : [el("li", { className: "muted" }, empty)]));
}

async function get(path, auth = false) {
  if (auth) return account.call("GET", path);
  const r = await fetch(`/api/v1${path}`);
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

async function categories() {
  const cats = await get("/categories");
  const chip = (slug, name, n) => {
    const b = el("button", { type: "button", className: `chip${slug === category ? " on" : ""}` },
      name, n ? ` · ${n}` : "");
    b.onclick = () => { category = slug; categories(); lists(); };
    return b;
  };
  $("categories").replaceChildren(chip("", "All", 0), ...cats.map((c) => chip(c.slug, c.name, c.live)));
}

async function lists() {
  try {
    fill("live-list", await get(`/live${category ? `?category=${enc(category)}` : ""}`), "Nobody is live in this category.");
    fill("trending-list", await get("/trending?limit=8"), "Nothing is trending yet.");
    if (signedIn()) {
      const following = await get("/me/following/live", true);
      $("following").hidden = false;
      fill("following-list", following, "No channel you follow is live.");
    }
    fill("recommended-list", await get("/recommendations?limit=8", signedIn()), "No recommendations yet.");
  } catch (e) { console.warn(e); }
}

$("search-form").onsubmit = async (e) => {
  e.preventDefault();
  const q = $("q").value.trim();
  $("results").hidden = !q;
  if (!q) return;
  $("results-q").textContent = q;
  const hits = await get(`/search?q=${enc(q)}`);
  $("result-list").replaceChildren(...(hits.length ? hits.map((h) =>
    el("li", { className: "row", dataset: { channel: h.channel } },
      el("a", { href: h.kind === "video" ? `/video/${enc(h.id)}` : `/watch/${enc(h.channel)}` }, h.title),
      el("span", { className: "badge" }, h.kind === "stream" ? "live" : h.kind),
      el("span", { className: "muted" }, h.category))) : [el("li", { className: "muted" }, "Nothing found.")]));
};

// ---- Notifications (signed in) ----
function showNotifications() {
  $("unread").textContent = String(home.unread);
  $("unread").hidden = home.unread === 0;
  $("notification-list").replaceChildren(...(home.notifications.length ? home.notifications.map((n) =>
    el("li", { className: `row${n.read_at ? " muted" : " unread"}` },
      el("a", { href: `/watch/${enc(n.channel)}` }, n.text),
      el("span", { className: "muted" }, new Date(n.created_at).toLocaleTimeString()))) :
    [el("li", { className: "muted" }, "No notifications.")]));
}

async function loadNotifications() {
  const n = await account.call("GET", "/me/notifications");
  home.notifications = n.items; home.unread = n.unread;
  showNotifications();
}

/** Reads the server-sent events of new notifications; reconnects after a pause. */
async function follow() {
  for (;;) {
    try {
      const token = await account.accessToken();
      if (!token) return;
      const resp = await fetch("/api/v1/me/notifications/events", { headers: { authorization: `Bearer ${token}` } });
      if (!resp.ok || !resp.body) throw new Error(`events: ${resp.status}`);
      home.stream = "open";
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, end); buf = buf.slice(end + 2);
          const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
          if (!/^event: ?notification$/m.test(frame) || !data) continue;
          const n = JSON.parse(data);
          if (!home.notifications.some((x) => x.id === n.id)) {
            home.notifications.unshift(n); home.unread++;
            showNotifications();
            lists();
          }
        }
      }
    } catch (e) { console.warn(e); }
    home.stream = "closed";
    await new Promise((r) => setTimeout(r, 3000));
  }
}

$("bell").onclick = () => { $("notifications").hidden = !$("notifications").hidden; };
$("read-all").onclick = async () => {
  await account.call("POST", "/me/notifications/read", {});
  await loadNotifications();
};

if (signedIn()) {
  $("nav-account").textContent = account.user.username;
  $("nav-account").href = "/account";
  $("bell").hidden = false;
  loadNotifications().catch(console.warn);
  follow();
}
categories().catch(console.warn);
lists();
setInterval(lists, 5000);
