#!/usr/bin/env bash
# Fuzzes the control plane's OpenAPI document against a running `cascade serve` with
# schemathesis: no 5xx, and every response (status, content type, headers, body) as the
# document says. Run from the repository root after `cargo build --bin cascade`.
# Bounded: EXAMPLES test cases per operation (default 25), fixed seed.
set -euo pipefail
cd "$(dirname "$0")/../.."

work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
./target/debug/cascade serve --http 127.0.0.1:0 --data-dir "$work/data" >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do
  grep -q "cascade listening on" "$work/out" 2>/dev/null && break
  sleep 0.1
done
base=$(sed -n 's/^cascade listening on //p' "$work/out")
[ -n "$base" ] || { cat "$work/err"; echo "server did not start"; exit 1; }

# An admin with a channel, so authenticated operations get past the token check.
curl -sf -o /dev/null -X POST "$base/api/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"fuzz@example.com","username":"fuzz","password":"fuzz password"}'
token=$(curl -sf -X POST "$base/api/v1/auth/signin" -H 'content-type: application/json' \
  -d '{"login":"fuzz","password":"fuzz password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
curl -sf -o /dev/null -X POST "$base/api/v1/channels" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{"slug":"fuzz-tv","title":"Fuzz"}'

# signout-all and the email/password changes would end the fuzzer's own session, and
# DELETE /me would remove its account: they run last, in a second pass.
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
run() {
  schemathesis run "$base/api/v1/openapi.json" --url "$base" \
    -H "Authorization: Bearer $token" --checks "$checks" \
    --phases examples,coverage,fuzzing -n "${EXAMPLES:-25}" --seed 7 --workers 1 \
    --request-timeout 10 --warnings off "$@"
}
# The notifications' event stream never ends (it would only time out): left out.
# A tus chunk (PATCH /api/v1/uploads/{id}, operation `patch`) is
# application/offset+octet-stream, which schemathesis cannot generate; tests/api/uploads.rs
# and tests/e2e/vod.test.mjs (tus-js-client) drive it. A node's recording (POST
# /api/v1/cluster/recordings) is video/webm, which it cannot make either;
# tests/it/cluster_recording.rs drives it, bad input included.
run --exclude-path-regex '^/api/v1/(auth/signout-all|me/email|me/password|me/notifications/events|cluster/recordings)$' --exclude-by 'method == "DELETE" and path == "/api/v1/me"' \
  --exclude-operation-id patch
run --include-path-regex '^/api/v1/(auth/signout-all|me/email|me/password|me)$'
if grep -q "panicked" "$work/err"; then
  grep -B2 -A5 panicked "$work/err"
  exit 1
fi
echo "schemathesis: no failures"
