#!/bin/bash
# Envoy V8 worker time of secret-mask on a 63 KB streamed answer that arrives at once.
# usage: filters/secret-mask/perf/v8-direct.sh NAME WASM|"" [PORT]
# A one-worker Envoy answers every request with stream64k.sse as a route direct_response (no
# upstream, so only Envoy and the filter are measured), through secret-mask (the shipped policy,
# the given .wasm) or without it (""); oha c=16, 1 s warm-up, 3 x 3 s; prints RPS and worker
# time per request (1/RPS). Run the passthrough ("") in the same sitting and subtract.
# OUT (default /tmp/sm-v8) holds the configs, logs and metrics (NAME.stats.txt, NAME.hist.txt).
set -e
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../../.."
name=$1; wasm=$2; port=${3:-18200}; admin=$((port+1000)); D=${OUT:-/tmp/sm-v8}
mkdir -p $D
[ -f $D/stream64k.sse ] || python3 "$here/stream64k.py" $D > /dev/null
[ -f $D/4k.json ] || python3 -c "import json; print(json.dumps({'model':'claude-sonnet-4-5','max_tokens':256,'messages':[{'role':'user','content':'x'*3900}]}), end='')" > $D/4k.json
target/debug/tollgate-render --chain secret-mask | grep '^          - {"name":"tollgate' > $D/line.txt
target/debug/tollgate-render --chain none --listen 127.0.0.1:$port --admin 127.0.0.1:$admin --mock 127.0.0.1:18081 --idp 127.0.0.1:18082 --access-log /dev/null -o $D/$name.yaml
python3 - "$name" "$wasm" "$D" <<'PY'
import sys, json
name, wasm, D = sys.argv[1], sys.argv[2], sys.argv[3]
y = open(f"{D}/{name}.yaml").read()
if wasm:
    line = open(f"{D}/line.txt").read().rstrip("\n")
    import re
    line = re.sub(r'"filename":"[^"]*"', '"filename":"%s"' % wasm, line)
    y = y.replace("          # passthrough: no tollgate filters", line)
old = """                route:
                  cluster: upstream
                  timeout: 600s
                  host_rewrite_literal: "127.0.0.1:18081"
"""
assert old in y
y = y.replace(old, """                direct_response:
                  status: 200
                  body: { filename: "%s/stream64k.sse" }
                response_headers_to_add:
                - header: { key: content-type, value: text/event-stream }
                  append_action: OVERWRITE_IF_EXISTS_OR_ADD
""" % D)
y = y.replace("            name: claude\n", "            name: claude\n            max_direct_response_body_size_bytes: 1048576\n", 1)
open(f"{D}/{name}.yaml","w").write(y)
PY
.venv/bin/envoy -c $D/$name.yaml --concurrency 1 -l warning --disable-hot-restart --base-id $port > $D/$name.log 2>&1 &
pid=$!
for i in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:$admin/ready && break; sleep 0.2; done
if [ -n "$CHECK" ]; then curl -s -D - -X POST -H "content-type: application/json" -d @$D/4k.json http://127.0.0.1:$port/v1/messages > $D/$name.check.txt; fi
H=(-H "content-type: application/json" -H "anthropic-version: 2023-06-01")
.tollgate/tools/bin/oha --no-tui -z 1s -c 16 -m POST -D $D/4k.json "${H[@]}" http://127.0.0.1:$port/v1/messages > /dev/null
for r in 1 2 3; do
.tollgate/tools/bin/oha --no-tui -z 3s -c 16 -m POST -D $D/4k.json "${H[@]}" --output-format json http://127.0.0.1:$port/v1/messages | python3 -c "import json,sys; d=json.load(sys.stdin); s=d['summary']; print('$name', 'rps', round(s['requestsPerSec']), 'worker_us_per_req', round(1e6/s['requestsPerSec'],1), 'ok', s['successRate'], 'codes', d.get('statusCodeDistribution'))"
done
if [ -n "$wasm" ]; then curl -s http://127.0.0.1:$admin/stats | grep -E "held_back|secret_mask_(masked|streams)" | grep -v " 0$" | head -12 > $D/$name.stats.txt; curl -s "http://127.0.0.1:$admin/stats?filter=held_back&histogram_buckets=detailed" > $D/$name.hist.txt; fi
kill $pid; wait $pid 2>/dev/null || true
