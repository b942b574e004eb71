// The sign-up page: creates the account, signs in, opens the studio.
import { Account } from "/sdk/cascade.js";

const $ = (id) => document.getElementById(id);
const account = new Account();

$("form").onsubmit = async (e) => {
  e.preventDefault();
  $("submit").disabled = true; $("error").textContent = "";
  try {
    await account.signUp($("email").value, $("username").value, $("password").value);
    location.href = "/studio";
  } catch (err) {
    // A registered email signs up "successfully" (no enumeration) but cannot sign in.
    $("error").textContent = err.status === 401
      ? "Could not sign in to the new account. If you already have one, sign in instead."
      : err.message;
    $("submit").disabled = false;
  }
};
