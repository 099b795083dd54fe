#!/usr/bin/env bash
# The local gateway stack, in the foreground (called by `make up`, which first builds the
# filters and the mock, and installs the venv and node_modules):
#
#   mock Claude API   127.0.0.1:8081  (target/release/tollgate-mock --demo)
#   dev IdP (OIDC)    127.0.0.1:8082  (scripts/idp.mjs; tokens: scripts/dev-token.sh)
#   Envoy gateway     127.0.0.1:10000 (admin 127.0.0.1:9901), config rendered from
#                     envoy/gateway.yaml.tmpl into .tollgate/envoy.yaml
#
# Ctrl-C (SIGINT) or SIGTERM stops every process it started, by pid.
#
# Environment:
#   TOLLGATE_UPSTREAM=anthropic   route to api.anthropic.com over TLS (needs ANTHROPIC_API_KEY;
#                                 no mock is started)
#   TOLLGATE_CHAIN=shipped|none|a,b   the filter chain (default: every shipped filter)
#   TOLLGATE_BUNDLE=1             run the chain as one module (tollgate_bundle.wasm)
#   TOLLGATE_LISTEN, TOLLGATE_ADMIN, TOLLGATE_MOCK, TOLLGATE_IDP   HOST:PORT overrides
#   TOLLGATE_RUN_DIR              where the rendered config, logs and IdP keys go (.tollgate)
set -euo pipefail

cd "$(dirname "$0")/.."
root="$PWD"
venv="${TOLLGATE_VENV:-$root/.venv}"
envoy_bin="$venv/bin/envoy"
run_dir="${TOLLGATE_RUN_DIR:-$root/.tollgate}"
listen="${TOLLGATE_LISTEN:-127.0.0.1:10000}"
admin="${TOLLGATE_ADMIN:-127.0.0.1:9901}"
mock_addr="${TOLLGATE_MOCK:-127.0.0.1:8081}"
idp_addr="${TOLLGATE_IDP:-127.0.0.1:8082}"
upstream="${TOLLGATE_UPSTREAM:-mock}"
chain="${TOLLGATE_CHAIN:-shipped}"
bundle=()
[[ "${TOLLGATE_BUNDLE:-}" == 1 ]] && bundle=(--bundle)
mock_bin="${CARGO_TARGET_DIR:-$root/target}/release/tollgate-mock"

say() { printf '\033[1mup.sh:\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

pids=()
cleanup() {
  trap - INT TERM EXIT
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    # give each a moment, then make sure
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ ${#pids[@]} -gt 0 ]]; then say "stopped (pids ${pids[*]})"; fi
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

port_in_use() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

# --- preflight -----------------------------------------------------------------------------
[[ -x "$envoy_bin" ]] || die "envoy not found at $envoy_bin: run \`make venv\` (pip install -r requirements.txt)"
command -v node >/dev/null || die "node not found: install Node.js (20+) for the dev identity provider"
[[ -d node_modules/oauth2-mock-server ]] || die "node_modules/oauth2-mock-server missing: run \`make node\`"
case "$upstream" in
  mock) [[ -x "$mock_bin" ]] || die "$mock_bin not built: run \`make up\` (or cargo build --release -p tollgate-mock)" ;;
  anthropic) [[ -n "${ANTHROPIC_API_KEY:-}" ]] || die "TOLLGATE_UPSTREAM=anthropic needs ANTHROPIC_API_KEY (your Claude API key) in the environment" ;;
  *) die "TOLLGATE_UPSTREAM must be mock or anthropic, not '$upstream'" ;;
esac
to_check=("$listen" "$admin" "$idp_addr")
[[ "$upstream" == mock ]] && to_check+=("$mock_addr")
for addr in "${to_check[@]}"; do
  if port_in_use "$addr"; then
    die "$addr is already in use (another \`make up\`? find it with: ss -ltnp 'sport = :${addr##*:}')"
  fi
done

mkdir -p "$run_dir"
chmod 700 "$run_dir"

# --- the upstream key: a fresh random dev key per run, or the user's real one ---------------
if [[ "$upstream" == mock ]]; then
  # only ever in the environment of the mock and Envoy, never in a file
  ANTHROPIC_API_KEY="sk-ant-dev-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
fi
export ANTHROPIC_API_KEY

# --- render the Envoy config (the same renderer as the tests and compose) ------------------
render() {
  # TOLLGATE_RENDER: a prebuilt tollgate-render (the tests pass theirs)
  ${TOLLGATE_RENDER:-cargo run -q --locked -p tollgate-tests --bin tollgate-render --} \
    --listen "$listen" --admin "$admin" --mock "$mock_addr" --idp "$idp_addr" \
    --upstream "$upstream" --chain "$chain" "${bundle[@]}" "$@"
}
say "rendering .tollgate/envoy.yaml from envoy/gateway.yaml.tmpl"
render -o "$run_dir/envoy.yaml" || die "rendering the Envoy config failed (see above)"
mapfile -t filters < <(render --list-chain)

# --- start the processes ------------------------------------------------------------------
if [[ "$upstream" == mock ]]; then
  : >"$run_dir/mock.log"
  MOCK_API_KEY="$ANTHROPIC_API_KEY" "$mock_bin" --listen "$mock_addr" --demo >>"$run_dir/mock.log" 2>&1 &
  pids+=($!)
  say "mock Claude API pid $! (log .tollgate/mock.log)"
fi

: >"$run_dir/idp.log"
node scripts/idp.mjs --host "${idp_addr%:*}" --port "${idp_addr##*:}" \
  --issuer "http://$idp_addr" --keys "$run_dir/idp-keys.json" >>"$run_dir/idp.log" 2>&1 &
pids+=($!)
say "dev identity provider pid $! (log .tollgate/idp.log)"

wait_for() { # what, seconds, command...
  local what="$1" secs="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null || die "$what: a process exited early; see .tollgate/*.log"
    done
    ((SECONDS < deadline)) || die "$what not ready after ${secs}s; see .tollgate/*.log"
    sleep 0.2
  done
}
[[ "$upstream" == mock ]] && wait_for "mock Claude API" 60 grep -q "tollgate-mock listening on" "$run_dir/mock.log"
wait_for "dev identity provider" 60 grep -q "tollgate-idp listening on" "$run_dir/idp.log"

# Envoy: its log (warnings and up) and the JSON access log go to this terminal.
"$envoy_bin" -c "$run_dir/envoy.yaml" --disable-hot-restart -l warning \
  --file-flush-interval-msec 500 --concurrency "${TOLLGATE_CONCURRENCY:-2}" &
pids+=($!)
say "Envoy pid $!"
wait_for "Envoy" 120 curl -fsS "http://$admin/ready"

# --- how to use it --------------------------------------------------------------------------
has() { local f; for f in "${filters[@]}"; do [[ "$f" == "$1" ]] && return 0; done; return 1; }
url="http://$listen"
auth_curl=() auth_env=()
if has jwt-auth || has key-inject; then
  auth_curl+=("-H \"authorization: Bearer \$(scripts/dev-token.sh)\"")
  auth_env+=("ANTHROPIC_AUTH_TOKEN=\"\$(scripts/dev-token.sh)\"")
fi
if ! has key-inject; then
  # no key-inject: the client itself must present the upstream's key
  if [[ "$upstream" == mock ]]; then key_text="$ANTHROPIC_API_KEY"; else key_text='$ANTHROPIC_API_KEY'; fi
  auth_curl+=("-H \"x-api-key: $key_text\"")
  auth_env+=("ANTHROPIC_API_KEY=\"$key_text\"")
fi

cat >&2 <<EOF

  tollgate is up: $url  (upstream: $upstream; filters: ${filters[*]:-none, passthrough}${bundle:+ as one module})
  admin: http://$admin   dev IdP: http://$idp_addr   logs: .tollgate/

  Streamed answer with curl:
    curl -N $url/v1/messages ${auth_curl[*]} \\
      -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \\
      -d '{"model":"claude-sonnet-4-5","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"What does a gateway do?"}]}'

  The Anthropic Python SDK (in .venv):
    ANTHROPIC_BASE_URL=$url ${auth_env[*]} .venv/bin/python -c '
    import anthropic
    with anthropic.Anthropic().messages.stream(model="claude-sonnet-4-5", max_tokens=256,
            messages=[{"role": "user", "content": "What does a gateway do?"}]) as s:
        for text in s.text_stream: print(text, end="", flush=True)
    print()'

  Ctrl-C stops everything.

EOF

# --- run until a child exits or we are told to stop --------------------------------------------
set +e
wait -n "${pids[@]}"
status=$?
say "a process exited (status $status); stopping the stack"
exit "$status"
