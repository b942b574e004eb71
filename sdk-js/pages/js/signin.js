// The sign-in page. `?next=` says where to go afterwards; anyone can write that link, so
// only a path on this origin is followed (see `safeNext`).
import { Account } from "/sdk/cascade.js";

const $ = (id) => document.getElementById(id);
const account = new Account();

/**
 * `raw` if it is a path on this origin, else "/studio". A `javascript:` URL would run in
 * this origin and read the tokens in localStorage; `//host`, `/\host` and `https://host`
 * would send a freshly signed-in user to someone else's page. The URL parser also drops
 * tabs and newlines (`/\t/host` becomes `//host`), so the resolved origin is checked too.
 */
function safeNext(raw) {
  if (!raw || raw[0] !== "/" || raw[1] === "/" || raw[1] === "\\") return "/studio";
  let url;
  try { url = new URL(raw, location.origin); } catch { return "/studio"; }
  return url.origin === location.origin ? url.pathname + url.search + url.hash : "/studio";
}

$("form").onsubmit = async (e) => {
  e.preventDefault();
  $("submit").disabled = true; $("error").textContent = "";
  try {
    await account.signIn($("login").value, $("password").value);
    location.assign(safeNext(new URLSearchParams(location.search).get("next")));
  } catch (err) {
    $("error").textContent = err.status === 429 ? "Too many attempts: wait a minute." : err.message;
    $("submit").disabled = false;
  }
};
