#!/usr/bin/env bash
# What Envoy does after a tollgate filter traps, per failure policy (FAIL_CLOSED, FAIL_RELOAD
# with the default and a 100 ms reload backoff, and FAIL_OPEN as the control case): the status
# of the trapping request, valid requests every 100 ms after it, whether anything reached the
# upstream while the VM was failed, whether a request the filter must check ever went through
# unchecked. The figures are in docs/troubleshooting.md ("A filter trapped: failure policy").
#
#   scripts/failure-policy.sh [WASM_DIR]
#
# WASM_DIR (default $TOLLGATE_WASM_DIR, else target/wasm32-wasip1/release) holds the .wasm
# files: the probe fixture traps whenever told to (`x-probe: panic:request-headers`);
# tollgate_jwt_auth.wasm is measured too when it still traps on a non-UTF-8 header value (a
# build from before the byte-safe host seam, e.g. a copy kept aside); a fixed build is reported
# as "no trap". Needs Envoy (`make venv`) and the built filters (`make wasm`).
# The report is printed and written to target/failure-policy.txt.
#
# The measurement is the ignored test `hardening::failure_policy_measurement` of the e2e test
# binary; every Envoy it starts is killed by pid when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${1:-${TOLLGATE_WASM_DIR:-$root/target/wasm32-wasip1/release}}
mkdir -p target
export TOLLGATE_WASM_DIR=$dir
export TOLLGATE_FAILURE_POLICY_OUT=$root/target/failure-policy.txt
cargo test -q --locked -p tollgate-tests --test e2e hardening::failure_policy_measurement \
  -- --ignored --exact --nocapture
echo "report: $TOLLGATE_FAILURE_POLICY_OUT"
