// The channel page's summary under the player: title, owner, followers and the follow
// button, an offline badge when the channel is not live, and its past broadcasts and
// videos (the profile's `videos`: the channel's public recordings and uploads). A stream of
// no channel (an open node's) has no summary.
import { Account } from "/sdk/cascade.js";
import { el } from "/js/ui.js";

const $ = (id) => document.getElementById(id);
const account = new Account();
const last = location.pathname.split("/").pop();
const slug = (() => { try { return decodeURIComponent(last); } catch { return last; } })();
const path = `/channels/${encodeURIComponent(slug)}`;
const channelPage = { following: null, followers: null, live: null };
window.channelPage = channelPage;

async function load() {
  let p;
  try {
    p = account.user ? await account.call("GET", `${path}/profile`)
      : await fetch(`/api/v1${path}/profile`).then((r) => (r.ok ? r.json() : null));
  } catch { p = null; }
  if (!p) return;
  Object.assign(channelPage, { following: p.following, followers: p.card.followers, live: p.card.live });
  $("about").hidden = false;
  $("about-title").textContent = p.card.title;
  $("about-owner").textContent = `by ${p.card.owner}${p.card.category ? ` · ${p.card.category}` : ""}`;
  $("followers").textContent = `${p.card.followers} follower${p.card.followers === 1 ? "" : "s"}`;
  $("offline").hidden = p.card.live;
  const follow = $("follow");
  follow.hidden = !account.user || account.user.username === p.card.owner;
  follow.textContent = p.following ? "Following ✓" : "Follow";
  follow.className = p.following ? "" : "primary";
  $("past").hidden = false;
  $("past-list").replaceChildren(...(p.videos.length ? p.videos.map((v) =>
    el("li", { className: "video" }, el("a", { href: v.url ?? "#" },
      v.thumbnail_url ? el("img", { className: "still", src: v.thumbnail_url, alt: "", loading: "lazy" }) : "",
      v.title ?? "video"))) :
    [el("li", { className: "muted" }, "No past broadcasts or videos yet.")]));
}

$("follow").onclick = async () => {
  await account.call(channelPage.following ? "DELETE" : "POST", `${path}/follow`);
  await load();
};

load();
setInterval(load, 15000);
