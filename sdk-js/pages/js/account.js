// The account page: profile, email, password, subscriptions (cancel), sessions, deletion. Values from the API go
// into the page as text (textContent, input values), never as markup.
import { Account, Money } from "/sdk/cascade.js";

const $ = (id) => document.getElementById(id);
const account = new Account();
const page = { user: null };
window.accountPage = page;
const show = (u) => {
  page.user = u;
  $("who").textContent = u.username; $("role").textContent = u.role;
  $("display_name").value = u.display_name; $("bio").value = u.bio;
  $("avatar_url").value = u.avatar_url; $("email").value = u.email;
};
const guard = (status, job) => async (e) => {
  e?.preventDefault();
  $(status).textContent = "…";
  try { await job(); $(status).textContent = "saved"; }
  catch (err) { $(status).textContent = err.message; }
};
try { show(await account.me()); }
catch { location.href = "/signin?next=/account"; }
$("profile").onsubmit = guard("profile-status", async () => show(await account.editProfile({
  display_name: $("display_name").value, bio: $("bio").value, avatar_url: $("avatar_url").value,
})));
$("email-form").onsubmit = guard("email-status", async () => {
  await account.changeEmail($("email-password").value, $("email").value); show(await account.me());
});
$("password-form").onsubmit = guard("password-status", () => account.changePassword($("current").value, $("new").value));
$("delete-form").onsubmit = guard("delete-status", async () => {
  await account.deleteAccount($("delete-password").value); location.href = "/";
});
$("signout").onclick = async () => { await account.signOut(); location.href = "/signin"; };
$("signout-all").onclick = async () => { await account.signOutEverywhere(); location.href = "/signin"; };

// Subscriptions: each with its state; an entitling one can be canceled (at once: the
// channel's subscribers-only streams refuse from the next join).
const money = new Money(account);
async function loadSubs() {
  const list = $("subs-list");
  try {
    const subs = await money.subscriptions();
    page.subscriptions = subs;
    const li = (s) => {
      const row = document.createElement("li");
      row.className = "row"; row.dataset.id = s.id;
      const a = document.createElement("a");
      a.href = `/watch/${encodeURIComponent(s.channel)}`; a.textContent = s.channel;
      const st = document.createElement("span");
      st.className = `badge${s.entitled ? " ok" : ""}`; st.textContent = s.status;
      row.append(a, st);
      if (s.status !== "canceled") {
        const b = document.createElement("button");
        b.type = "button"; b.className = "small danger cancel"; b.textContent = "Cancel subscription";
        b.onclick = async () => {
          $("subs-status").textContent = "";
          try { await money.cancel(s.id); } catch (err) { $("subs-status").textContent = err.message; }
          loadSubs();
        };
        row.append(b);
      }
      return row;
    };
    if (subs.length) list.replaceChildren(...subs.map(li));
    else { const e = document.createElement("li"); e.className = "muted"; e.textContent = "No subscriptions."; list.replaceChildren(e); }
  } catch (err) { $("subs-status").textContent = err.message; }
}
loadSubs();
