#!/usr/bin/env bash
# The deployment guide's functional validation, over eventgate, in the guide's order:
#   1. GET /api/events                  as a tenant: the engine is multi-tenant and wants a
#                                       tenant's signed token (the guide's bare `curl` gets
#                                       401), so the check names a tenant, drawn from the
#                                       database (the one with the most events) unless
#                                       TENANT_ID says which, and authenticates with
#                                       TENANT_TOKEN or a token minted with the engine's
#                                       EVENTGATE_TOKEN_KEYS (eventgate token)
#   2. GET /api/events?type=wedding     the same, for the migrated weddings; it must list some
#   3-5. npm run test:database, test:plugins, test:compatibility
#                                       eventgate gate against the same database and engine,
#                                       read-only (-m green): the integrity suite (the database),
#                                       functional (the API, plugins, health, metrics) and
#                                       compat (the legacy names) — no npm scripts exist for
#                                       them; REPORTS_DIR gets junit.xml, allure-results/ and
#                                       verdict.json
#
# Environment: as pre-migration-check.sh; BASE_URL (default http://localhost:3000, the guide's),
# TENANT_ID (default: drawn from the database with psql and the DB_* settings), TENANT_TOKEN or
# EVENTGATE_TOKEN_KEYS (the gate then mints every tenant's token; with TENANT_TOKEN alone it has
# that tenant's only), REPORTS_DIR (default reports). Tokens never reach a command line.
# Exit codes: 0 passed; 1 a check failed (named); 2 bad configuration.
set -euo pipefail
SCRIPT_NAME=functional-validation
source "$(dirname "${BASH_SOURCE[0]}")/guide-env.sh"

BASE_URL="${BASE_URL:-http://localhost:3000}"
REPORTS_DIR="${REPORTS_DIR:-reports}"

if [[ -z "${TENANT_ID:-}" ]]; then
    [[ -n "${DB_NAME:-}" ]] || fail 2 "set TENANT_ID, or DB_HOST/DB_NAME/DB_USER (and DB_PASSWORD) so a tenant can be drawn from the database"
    # The password goes through the environment, never the command line (ps shows argv).
    TENANT_ID=$(PGPASSWORD="${DB_PASSWORD:-${PGPASSWORD:-}}" psql -X -q -At -v ON_ERROR_STOP=1 \
        -h "${DB_HOST:-localhost}" -p "${DB_PORT:-5432}" -U "${DB_USER:-$USER}" -d "$DB_NAME" \
        -c "SELECT tenant_id FROM events GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1") \
        || fail 2 "could not read a tenant from $DB_NAME on ${DB_HOST:-localhost}:${DB_PORT:-5432}"
    [[ -n "$TENANT_ID" ]] || fail 1 "the events table has no event: nothing to validate the API with"
fi
if [[ -z "${TENANT_TOKEN:-}" ]]; then
    [[ -n "${EVENTGATE_TOKEN_KEYS:-}${EVENTGATE_TOKEN_KEYS_FILE:-}" ]] \
        || fail 2 "set TENANT_TOKEN (a token of tenant $TENANT_ID) or EVENTGATE_TOKEN_KEYS (the engine's keys; eventgate token --help)"
    TENANT_TOKEN=$("${eventgate[@]}" token --tenant "$TENANT_ID" --ttl 30m --subject functional-validation) \
        || fail 2 "could not make a token for tenant $TENANT_ID with EVENTGATE_TOKEN_KEYS"
fi
if [[ -z "${EVENTGATE_TOKEN_KEYS:-}${EVENTGATE_TOKEN_KEYS_FILE:-}${EVENTGATE_TENANT_TOKENS:-}${EVENTGATE_TENANT_TOKEN_COMMAND:-}" ]]; then
    # The gate gets the one token it has been given, in a file only this user can read.
    tokens_file=$(mktemp)
    trap 'rm -f "$tokens_file"' EXIT
    printf '"%s" = "%s"\n' "$TENANT_ID" "$TENANT_TOKEN" > "$tokens_file"
    export EVENTGATE_TENANT_TOKENS="$tokens_file"
fi
say "tenant $TENANT_ID, engine $BASE_URL"

get() {
    # $1: path; prints the body, fails naming the status. The token goes to curl on stdin.
    local body status
    body=$(printf 'Authorization: Bearer %s\n' "$TENANT_TOKEN" \
           | curl -sS --max-time 15 -H @- -w '\n%{http_code}' "$BASE_URL$1") \
        || fail 1 "GET $1: the engine at $BASE_URL does not answer"
    status=${body##*$'\n'}
    body=${body%$'\n'*}
    [[ "$status" == 2* ]] || fail 1 "GET $1 answered $status: ${body:0:300}"
    printf '%s' "$body"
}

say "1. GET /api/events"
get "/api/events" >/dev/null
say "2. GET /api/events?type=wedding"
weddings=$(get "/api/events?type=wedding")
[[ "$weddings" == *'"event_type":"wedding"'* ]] \
    || fail 1 "GET /api/events?type=wedding listed no wedding for tenant $TENANT_ID: ${weddings:0:300}"
say "3-5. the database, plugins and compatibility: eventgate gate (read-only)"
"${eventgate[@]}" gate --base-url "$BASE_URL" --reports "$REPORTS_DIR" \
    || fail 1 "the gate said NO-GO: $REPORTS_DIR/verdict.json names the failed gates"
say "functional validation passed"
