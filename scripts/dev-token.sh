#!/usr/bin/env bash
# Prints a token from the dev identity provider (scripts/idp.mjs, started by `make up`).
#
#   scripts/dev-token.sh                         # sub=dev-agent, groups=[agents]
#   scripts/dev-token.sh --group agents --group ops --sub alice --ttl 600
#   export ANTHROPIC_AUTH_TOKEN="$(scripts/dev-token.sh)"
#
# The IdP is at $TOLLGATE_IDP_URL (default http://127.0.0.1:8082). Dev only: the token endpoint
# used here (/tollgate/token) exists on the dev IdP, not on a real one.
set -euo pipefail

idp="${TOLLGATE_IDP_URL:-http://127.0.0.1:8082}"
sub="dev-agent"
ttl=3600
groups=()
extra="{}"

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --group) groups+=("${2:?--group needs a value}"); shift 2 ;;
    --sub) sub="${2:?--sub needs a value}"; shift 2 ;;
    --ttl) ttl="${2:?--ttl needs a value}"; shift 2 ;;
    --claims) extra="${2:?--claims needs a JSON object}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "dev-token.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done
[[ ${#groups[@]} -eq 0 ]] && groups=(agents)

body="$(python3 - "$sub" "$ttl" "$extra" "${groups[@]}" <<'PY'
import json, sys
sub, ttl, extra, groups = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4:]
claims = {"sub": sub, "groups": groups}
claims.update(extra)
print(json.dumps({"claims": claims, "expires_in": ttl}))
PY
)"

if ! answer="$(curl -fsS -X POST -H 'content-type: application/json' --data "$body" "$idp/tollgate/token" 2>&1)"; then
  echo "dev-token.sh: the dev IdP at $idp did not answer ($answer). Is \`make up\` running?" >&2
  exit 1
fi
python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' <<<"$answer"
