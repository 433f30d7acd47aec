# Shared by the guide's scripts in deploy/ (sourced, not run): the guide's settings and the way
# to call eventgate. The guide writes .env.migration and then never reads it; these scripts do,
# through eventgate (python-dotenv, the same precedence as every eventgate command: a flag, then
# the environment, then the env file), and the shell reads it only for the few values a shell
# step needs itself (backup directory, URLs).
#
#   ENV_FILE       the guide's settings file (default .env.migration in the working directory)
#   EVENTGATE_CMD  how to run eventgate (default: eventgate), split on spaces

ENV_FILE="${ENV_FILE:-.env.migration}"
if [[ -f "$ENV_FILE" ]]; then
    export EVENTGATE_ENV_FILE="$ENV_FILE"
    # Values already in the environment win, as in eventgate (python-dotenv, override=False).
    while IFS='=' read -r name value; do
        [[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
        [[ -n "${!name+set}" ]] && continue
        value="${value%\"}"; value="${value#\"}"; value="${value%\'}"; value="${value#\'}"
        export "$name=$value"
    done < <(grep -E '^[[:space:]]*(export[[:space:]]+)?[A-Za-z_][A-Za-z0-9_]*=' "$ENV_FILE" \
             | sed -E 's/^[[:space:]]*(export[[:space:]]+)?//')
fi
read -r -a eventgate <<<"${EVENTGATE_CMD:-eventgate}"

say() { printf '[%s] %s\n' "${SCRIPT_NAME:-deploy}" "$*"; }
fail() {
    # $1: exit code; the rest: what failed and what to do.
    local code=$1
    shift
    printf '[%s] FAILED: %s\n' "${SCRIPT_NAME:-deploy}" "$*" >&2
    exit "$code"
}

# Runs an override given as a shell command (for platforms without docker-compose, and for
# tests), or else the guide's own step.
step() {
    local name=$1 override=$2
    shift 2
    if [[ -n "$override" ]]; then
        say "$name: $override"
        bash -c "$override"
    else
        say "$name: $*"
        "$@"
    fi
}

# Polls a URL until it answers 2xx; the guide's `timeout N bash -c 'until curl -f …'` goes on
# after the timeout as if healthy, this returns 1 instead.
wait_healthy() {
    local url=$1 timeout=$2 interval=${3:-2} deadline
    deadline=$(( $(date +%s) + timeout ))
    until curl -fsS -o /dev/null --max-time 5 "$url"; do
        (( $(date +%s) < deadline )) || return 1
        sleep "$interval"
    done
}
