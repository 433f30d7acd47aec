#!/usr/bin/env bash
# The deployment guide's gradual rollback, over eventgate: 010, 009, 008, 007, 006 undone one at
# a time, newest first, in the guide's order. Each step is `eventgate rollback --to N-1`: its
# rollback script in one transaction, the schema after it compared with the one before the
# migration was applied (the guide runs `psql -f` without ON_ERROR_STOP and goes on past any
# failure), rows only the new schema can hold exported first; then `eventgate status` (the
# guide's `\dt`) and a pause.
#
# Environment: as pre-migration-check.sh; DOWN_TO (stop once this migration is undone; default
# 6, everything), ROLLBACK_PAUSE (seconds between steps, default 5, the guide's).
# Exit codes: 0 rolled back; otherwise eventgate rollback's own (the step named is not undone;
# the ones before it stay undone).
set -euo pipefail
SCRIPT_NAME=gradual-rollback
source "$(dirname "${BASH_SOURCE[0]}")/guide-env.sh"

DOWN_TO="${DOWN_TO:-6}"
ROLLBACK_PAUSE="${ROLLBACK_PAUSE:-5}"
for version in 10 9 8 7 6; do
    (( version >= DOWN_TO )) || break
    say "rolling back $(printf '%03d' "$version")"
    "${eventgate[@]}" rollback --to $(( version - 1 ))
    "${eventgate[@]}" status
    (( version == DOWN_TO )) || sleep "$ROLLBACK_PAUSE"
done
say "gradual rollback completed"
