// Accounts for the browser tests: the API called as JSON, and sign-ups from addresses of
// their own (a node allows 5 sign-ups a minute per address; all of 127/8 is loopback, so
// each sign-up comes from 127.0.0.N). Shared by chat, money and ads tests.
import assert from "node:assert/strict";
import http from "node:http";

/** POSTs (or `method`s) JSON to the API; fails the test on an error status. */
export async function api(base, path, body, token, method = "POST") {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const resp = await fetch(`${base}/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!resp.ok) assert.fail(`${method} ${path}: ${resp.status} ${await resp.text()}`);
  const text = await resp.text();
  return text ? JSON.parse(text) : null;
}

let nextAddress = 2;

/** POSTs a sign-up from an address of its own (127.0.0.N: all of 127/8 is loopback), as
 * people signing up from their own machines would: the node allows 5 sign-ups a minute
 * per address. */
export function signup(base, body) {
  const url = new URL(`${base}/api/v1/auth/signup`);
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, path: url.pathname, method: "POST", localAddress: `127.0.0.${nextAddress++}`, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(data) } },
      (resp) => {
        resp.resume();
        resp.on("end", () => (resp.statusCode === 202 ? resolve() : reject(new Error(`sign-up: ${resp.statusCode}`))));
      },
    );
    req.on("error", reject);
    req.end(data);
  });
}

/** Signs `name` up and in; returns the stored session the pages keep ({access_token, refresh_token, user}). */
export async function account(base, name) {
  const password = `${name}'s long password`;
  await signup(base, { email: `${name}@example.com`, username: name, password });
  return api(base, "/auth/signin", { login: name, password });
}
