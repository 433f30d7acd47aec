#!/usr/bin/env bash
# Blue-green switch, from the deployment guide, with the staging gate in front of the switch and
# the watch after it:
#
#   1. deploy green                  (docker-compose -f docker-compose.blue-green.yml up -d app-green)
#   2. wait until green is healthy   (GET $HEALTH_URL answers 2xx, within $HEALTH_TIMEOUT seconds)
#   3. run `eventgate gate` against green's database and engine, read-only
#   4. only on GO: switch traffic to green (traefik's dynamic.yml)
#   5. watch green under real traffic (`eventgate watch`, the guide's "monitor for 5 minutes")
#   6. only when the watch passes: stop blue. When it fails, switch traffic back to blue, keep
#      green running for inspection, say why and exit 4 (the watch has notified)
#
# On NO-GO, or when the verdict is missing or unreadable, traffic stays on blue: the script
# prints the failed gates and exits 1 without switching or stopping anything.
#
# Required environment:
#   GREEN_DATABASE_URL   green's database (postgresql://user:password@host:port/dbname)
#   GREEN_BASE_URL       green's engine (http://host:port)
# Optional environment:
#   REPORTS_DIR          where the gate writes junit.xml, allure-results/, verdict.json and the
#                        watch writes watch-verdict.json, watch-junit.xml (default: reports)
#   HEALTH_URL           polled before the gate (default: $GREEN_BASE_URL/health)
#   HEALTH_TIMEOUT       seconds to wait for green to be healthy (default: 120)
#   HEALTH_INTERVAL      seconds between polls (default: 2)
#   WATCH_DURATION       how long to watch green after the switch (default: 5m; 30s, 300, ...)
#   WATCH_INTERVAL       time between the watch's samples (default: 10s)
#   WATCH_THRESHOLDS     a TOML file of thresholds for the watch (eventgate watch --help)
#   EVENTGATE_CMD        how to run eventgate (default: eventgate; e.g. ".venv/bin/eventgate"
#                        or "python3 -m eventgate.cli"); split on spaces
#   COMPOSE              the compose command (default: docker-compose); split on spaces
#   COMPOSE_FILE         (default: docker-compose.blue-green.yml)
#   PUBLIC_HOST          the host traefik routes (needed by the default switch steps)
#   DEPLOY_GREEN_CMD, SWITCH_TRAFFIC_CMD, SWITCH_BACK_CMD, STOP_BLUE_CMD
#                        shell commands replacing the guide's docker-compose steps (run with
#                        bash -c), for other platforms and for testing without Docker
#
# Exit codes: 0 switched and blue stopped; 1 no-go or no usable verdict (not switched); 2 bad
# configuration; 3 green never became healthy; 4 the watch failed and traffic is back on blue
# (green kept); any other: the failing step's own code.
set -euo pipefail

COMPOSE_FILE="${COMPOSE_FILE:-docker-compose.blue-green.yml}"
REPORTS_DIR="${REPORTS_DIR:-reports}"
HEALTH_TIMEOUT="${HEALTH_TIMEOUT:-120}"
HEALTH_INTERVAL="${HEALTH_INTERVAL:-2}"
WATCH_DURATION="${WATCH_DURATION:-5m}"
WATCH_INTERVAL="${WATCH_INTERVAL:-10s}"
read -r -a compose <<<"${COMPOSE:-docker-compose}"
SCRIPT_NAME=blue-green
# say, step (an override given as a shell command, or else the guide's default step) and the
# eventgate command, shared with the guide's other scripts.
source "$(dirname "${BASH_SOURCE[0]}")/guide-env.sh"

refuse() {
    # $1: exit code; the rest: why. Traffic stays where it is.
    local code=$1
    shift
    printf '[blue-green] REFUSED: %s\n' "$*" >&2
    printf '[blue-green] traffic stays on blue; nothing was switched or stopped\n' >&2
    exit "$code"
}

# The URL with its password hidden, for messages. The URL goes through the environment, not
# argv, so the password does not show in the process list either.
redacted() {
    DSN_TO_REDACT="$1" python3 - <<'PY'
import os
import re

dsn = os.environ["DSN_TO_REDACT"]
# URL form: everything between "user:" and the last "@" before the host (a password may hold "@").
dsn = re.sub(r"(://[^:/@\s]*:)[^\s/]*(?=@[^@/\s]*(?:[/?\s]|$))", r"\g<1>****", dsn)
# key=value form, and ?password=... in a URL's query.
dsn = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", r"\g<1>****", dsn, flags=re.I)
print(dsn)
PY
}

route_to() {
    # $1: app-green or app-blue. PUBLIC_HOST and the colour travel by environment (exec -e), so
    # no shell inside the container ever parses them as code; the single quotes are meant.
    # shellcheck disable=SC2016
    "${compose[@]}" -f "$COMPOSE_FILE" exec -T -e PUBLIC_HOST="$PUBLIC_HOST" -e TO="$1" \
        traefik sh -c 'echo "Host(\`$PUBLIC_HOST\`) -> $TO" > /etc/traefik/dynamic.yml'
}
default_switch_traffic() { route_to app-green; }
default_switch_back() { route_to app-blue; }

# The watch's verdict in one line (its summary), or why there is none.
watch_summary() {
    WATCH_VERDICT="$1" python3 - <<'PY'
import json
import os

path = os.environ["WATCH_VERDICT"]
try:
    with open(path, encoding="utf-8") as f:
        print(" ".join(str(json.load(f)["summary"]).split()))
except (OSError, ValueError, KeyError, TypeError) as exc:
    print(f"no usable watch verdict in {path}: {type(exc).__name__}")
PY
}

wait_until_healthy() {
    local url=$1 deadline=$((SECONDS + HEALTH_TIMEOUT))
    say "waiting up to ${HEALTH_TIMEOUT} s for $url"
    while ((SECONDS < deadline)); do
        if command -v curl >/dev/null 2>&1; then
            if curl -fsS --max-time 5 -o /dev/null "$url" 2>/dev/null; then
                return 0
            fi
        elif HEALTH_PROBE_URL="$url" python3 -c '
import os, sys, urllib.request
try:
    with urllib.request.urlopen(os.environ["HEALTH_PROBE_URL"], timeout=5) as response:
        sys.exit(0 if 200 <= response.status < 300 else 1)
except Exception:
    sys.exit(1)' 2>/dev/null; then
            return 0
        fi
        sleep "$HEALTH_INTERVAL"
    done
    return 1
}

# Reads verdict.json: prints the verdict and the failed gates; exit 0 only on a readable "go"
# about an external target, 1 on no-go, 2 when the file is missing or unreadable.
read_verdict() {
    VERDICT_FILE="$1" python3 - <<'PY'
import json
import os
import sys

path = os.environ["VERDICT_FILE"]
try:
    with open(path, encoding="utf-8") as f:
        verdict = json.load(f)
    word = str(verdict["verdict"])
    target = str(verdict.get("target", "?"))
    failed = verdict.get("failed") or []
    suites = verdict.get("suites") or {}
    if not isinstance(failed, list) or not isinstance(suites, dict):
        raise TypeError("'failed' is not a list or 'suites' is not an object")
except FileNotFoundError:
    print(f"no verdict: {path} was not written (the gate did not finish)")
    sys.exit(2)
except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
    print(f"unreadable verdict {path}: {type(exc).__name__}: {exc}")
    sys.exit(2)


def one_line(value):
    return " ".join(str(value).split())


print(f"verdict: {one_line(word).upper()} for {one_line(target)} "
      f"in {verdict.get('duration_s', '?')} s")
for suite, tally in suites.items():
    if isinstance(tally, dict):
        print(f"  {suite}: {tally.get('passed', 0)} passed, {tally.get('failed', 0)} failed, "
              f"{tally.get('skipped', 0)} skipped")
for gate in failed:
    if isinstance(gate, dict):
        print(f"  FAILED {one_line(gate.get('suite', '?'))}: {one_line(gate.get('test', '?'))}"
              f" -- {one_line(gate.get('reason', ''))}")
if verdict.get("problem"):
    print(f"  problem: {one_line(verdict['problem'])}")
if word != "go":
    sys.exit(1)
if not target.startswith("external "):
    # A go about an embedded throwaway database says nothing about green.
    print(f"the verdict is about {one_line(target)}, not about green's database")
    sys.exit(2)
PY
}

main() {
    if [[ -z "${GREEN_DATABASE_URL:-}" || -z "${GREEN_BASE_URL:-}" ]]; then
        refuse 2 "set GREEN_DATABASE_URL (green's database) and GREEN_BASE_URL (green's engine)"
    fi
    if [[ -z "${SWITCH_TRAFFIC_CMD:-}" && -z "${PUBLIC_HOST:-}" ]]; then
        # Found out now, not after green is deployed and the gate has run.
        refuse 2 "set PUBLIC_HOST (the host traefik routes to green) or SWITCH_TRAFFIC_CMD"
    fi
    if ! [[ "$HEALTH_TIMEOUT" =~ ^[0-9]+$ && "$HEALTH_INTERVAL" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
        refuse 2 "HEALTH_TIMEOUT must be whole seconds and HEALTH_INTERVAL seconds"
    fi
    GREEN_BASE_URL="${GREEN_BASE_URL%/}"
    local health_url="${HEALTH_URL:-$GREEN_BASE_URL/health}"
    say "green database: $(redacted "$GREEN_DATABASE_URL")"
    say "green engine:   $GREEN_BASE_URL"

    step "deploy green" "${DEPLOY_GREEN_CMD:-}" \
        "${compose[@]}" -f "$COMPOSE_FILE" up -d app-green

    if ! wait_until_healthy "$health_url"; then
        refuse 3 "green did not answer $health_url with 2xx within ${HEALTH_TIMEOUT} s"
    fi
    say "green is healthy"

    # The gate: green tests only, read-only, against green's database and engine. A verdict
    # left from an earlier run must never stand in for this one.
    mkdir -p "$REPORTS_DIR"
    local verdict_file="$REPORTS_DIR/verdict.json"
    rm -f "$verdict_file"
    say "running the staging gate (reports in $REPORTS_DIR/)"
    local gate_rc=0
    EVENTGATE_DSN="$GREEN_DATABASE_URL" \
        "${eventgate[@]}" gate --base-url "$GREEN_BASE_URL" --reports "$REPORTS_DIR" \
        || gate_rc=$?

    local verdict_rc=0 summary
    summary=$(read_verdict "$verdict_file") || verdict_rc=$?
    printf '%s\n' "$summary" | sed 's/^/[blue-green] /'
    case "$verdict_rc" in
        0) ;;
        1) refuse 1 "the staging gate says NO-GO (failed gates above; $verdict_file)" ;;
        *) refuse 1 "no usable verdict from the staging gate (exit code $gate_rc)" ;;
    esac
    if ((gate_rc != 0)); then
        refuse 1 "the gate exited with $gate_rc although verdict.json says go"
    fi

    step "switch traffic to green" "${SWITCH_TRAFFIC_CMD:-}" default_switch_traffic

    # The watch: green under real traffic, before blue is gone. Any outcome but a pass (a
    # regression, green unreachable, the watch itself failing) sends traffic back.
    local watch_rc=0 watch_args=()
    [[ -n "${WATCH_THRESHOLDS:-}" ]] && watch_args+=(--thresholds "$WATCH_THRESHOLDS")
    rm -f "$REPORTS_DIR/watch-verdict.json"
    say "watching green for $WATCH_DURATION (every $WATCH_INTERVAL) before blue is stopped"
    "${eventgate[@]}" watch --base-url "$GREEN_BASE_URL" --duration "$WATCH_DURATION" \
        --interval "$WATCH_INTERVAL" --reports "$REPORTS_DIR" "${watch_args[@]}" \
        || watch_rc=$?
    if ((watch_rc != 0)); then
        step "switch traffic back to blue" "${SWITCH_BACK_CMD:-}" default_switch_back
        printf '[blue-green] SWITCHED BACK: %s\n' \
            "$(watch_summary "$REPORTS_DIR/watch-verdict.json")" >&2
        printf '[blue-green] traffic is on blue again; blue was not stopped; green is kept ' >&2
        printf 'running for inspection (%s/watch-verdict.json)\n' "$REPORTS_DIR" >&2
        exit 4
    fi

    step "stop blue" "${STOP_BLUE_CMD:-}" \
        "${compose[@]}" -f "$COMPOSE_FILE" stop app-blue
    say "switched: traffic goes to green, the watch passed, blue is stopped"
}

main "$@"
