#!/usr/bin/env bash
# Rolling deployment, from the deployment guide: the instances are updated to a new version one
# at a time, and each must answer its health check before the next is touched.
#
#   deploy/rolling-deployment.sh NEW_VERSION
#
# For each instance i of 1..INSTANCES:
#   1. stop it                       (docker stop app-instance-i)
#   2. start the new version         (docker run -d --name app-instance-i --env-file
#                                     $PRODUCTION_ENV_FILE $IMAGE:NEW_VERSION)
#   3. wait until it is healthy      (within HEALTH_TIMEOUT seconds)
#   4. wait SETTLE_SECONDS before the next one (the guide's 30 s)
#
# Unlike the guide's script, an instance that does not come up healthy stops the rollout: the
# instances after it are never touched and keep the old version, and the script says which
# instance failed and where each one stands (exit 3). The guide's `timeout 60 bash -c 'until
# ...'` went on to the next instance as if healthy.
#
# Optional environment:
#   INSTANCES            how many instances (default 3)
#   IMAGE                the image, without its tag (default your-app)
#   PRODUCTION_ENV_FILE  the instances' settings (default .env.production)
#   HEALTH_TIMEOUT       seconds each instance has to become healthy (default 60)
#   HEALTH_INTERVAL      seconds between health polls (default 5)
#   SETTLE_SECONDS       pause after an instance is healthy (default 30)
#   HEALTH_URL_TEMPLATE  a URL polled from here instead of curl inside the container, with {i}
#                        for the instance number (e.g. http://app-{i}.internal:3000/health)
#   STOP_INSTANCE_CMD, START_INSTANCE_CMD, INSTANCE_HEALTH_CMD
#                        shell commands replacing the guide's docker steps (run with bash -c,
#                        with INSTANCE and NEW_VERSION in their environment), as in
#                        blue-green-switch.sh: for other platforms and for testing without
#                        Docker; INSTANCE_HEALTH_CMD exits 0 when the instance is healthy
#
# Exit codes: 0 every instance on NEW_VERSION and healthy; 2 bad arguments or settings; 3 an
# instance did not become healthy (the rollout stopped there); any other: a failing step's code.
set -euo pipefail

INSTANCES="${INSTANCES:-3}"
IMAGE="${IMAGE:-your-app}"
PRODUCTION_ENV_FILE="${PRODUCTION_ENV_FILE:-.env.production}"
HEALTH_TIMEOUT="${HEALTH_TIMEOUT:-60}"
HEALTH_INTERVAL="${HEALTH_INTERVAL:-5}"
SETTLE_SECONDS="${SETTLE_SECONDS:-30}"
SCRIPT_NAME=rolling
source "$(dirname "${BASH_SOURCE[0]}")/guide-env.sh"

healthy_once() {
    # $1: the instance. 0 when it answers its health check now.
    local i=$1
    if [[ -n "${INSTANCE_HEALTH_CMD:-}" ]]; then
        INSTANCE="$i" NEW_VERSION="$NEW_VERSION" bash -c "$INSTANCE_HEALTH_CMD" >/dev/null 2>&1
    elif [[ -n "${HEALTH_URL_TEMPLATE:-}" ]]; then
        curl -fsS -o /dev/null --max-time 5 "${HEALTH_URL_TEMPLATE//\{i\}/$i}" 2>/dev/null
    else
        docker exec "app-instance-$i" curl -fsS -o /dev/null --max-time 5 \
            http://localhost:3000/health >/dev/null 2>&1
    fi
}

wait_instance() {
    # $1: the instance. 0 once healthy, 1 when HEALTH_TIMEOUT passed first.
    local i=$1 started=$SECONDS
    until healthy_once "$i"; do
        ((SECONDS - started < HEALTH_TIMEOUT)) || return 1
        sleep "$HEALTH_INTERVAL"
    done
    say "instance $i/$INSTANCES healthy on $NEW_VERSION after $((SECONDS - started)) s"
}

span() {
    # Instances $1 to $2 as a person reads them: none, 3, or 2-3.
    if (($1 > $2)); then echo none; elif (($1 == $2)); then echo "$1"; else echo "$1-$2"; fi
}

instance_step() {
    # $1: instance, $2: what, $3: override; the rest: the guide's command.
    local i=$1 name=$2 override=$3
    shift 3
    export INSTANCE="$i"
    step "instance $i/$INSTANCES: $name" "$override" "$@"
}

main() {
    NEW_VERSION="${1:-}"
    [[ -n "$NEW_VERSION" ]] || fail 2 "give the version to roll out: $0 NEW_VERSION"
    [[ "$NEW_VERSION" =~ ^[A-Za-z0-9_.-]+$ ]] \
        || fail 2 "NEW_VERSION '$NEW_VERSION' is not an image tag (letters, digits, . _ -)"
    [[ "$INSTANCES" =~ ^[1-9][0-9]*$ ]] || fail 2 "INSTANCES must be a whole number ≥ 1"
    [[ "$HEALTH_TIMEOUT" =~ ^[0-9]+$ && "$SETTLE_SECONDS" =~ ^[0-9]+([.][0-9]+)?$ \
        && "$HEALTH_INTERVAL" =~ ^[0-9]+([.][0-9]+)?$ ]] \
        || fail 2 "HEALTH_TIMEOUT must be whole seconds, HEALTH_INTERVAL and SETTLE_SECONDS seconds"
    export NEW_VERSION
    say "rolling $INSTANCES instances to $NEW_VERSION, one at a time"
    local i
    for i in $(seq 1 "$INSTANCES"); do
        instance_step "$i" "stop" "${STOP_INSTANCE_CMD:-}" docker stop "app-instance-$i"
        # The guide's `docker run --name` needs the stopped container gone first.
        [[ -n "${START_INSTANCE_CMD:-}" ]] || docker rm "app-instance-$i" >/dev/null
        instance_step "$i" "start $NEW_VERSION" "${START_INSTANCE_CMD:-}" docker run -d \
            --name "app-instance-$i" --env-file "$PRODUCTION_ENV_FILE" "$IMAGE:$NEW_VERSION"
        if ! wait_instance "$i"; then
            printf '[rolling] STOPPED: instance %s/%s did not become healthy on %s within %s s\n' \
                "$i" "$INSTANCES" "$NEW_VERSION" "$HEALTH_TIMEOUT" >&2
            printf '[rolling] updated and healthy: %s; failed: %s (left as it is, for ' \
                "$(span 1 $((i - 1)))" "$i" >&2
            printf 'inspection); untouched, on the old version: %s\n' \
                "$(span $((i + 1)) "$INSTANCES")" >&2
            exit 3
        fi
        if ((i < INSTANCES)) && [[ "$SETTLE_SECONDS" != 0 ]]; then
            sleep "$SETTLE_SECONDS"
        fi
    done
    say "rolled out: $INSTANCES/$INSTANCES instances on $NEW_VERSION and healthy"
}

main "$@"
