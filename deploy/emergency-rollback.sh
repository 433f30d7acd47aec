#!/usr/bin/env bash
# The deployment guide's emergency rollback, over eventgate, in the guide's order:
#   1. stop the application          docker-compose down (STOP_APP_CMD)
#   2. find the newest backup        in BACKUP_DIR: eventgate's newest verified backup, or the
#                                    guide's newest pre_migration_backup_*.sql.gz when that is
#                                    newer (BACKUP_FILE names one explicitly)
#   3. end the database's sessions,  eventgate restore: the backup is restored into a NEW
#   4. drop the database,            database and proven there first (checksums; a plain dump's
#   5. restore                       row counts per COPY block), then the sessions are ended and
#                                    the names swapped. The live database is never dropped: it
#                                    is kept as <db>_pre_restore_<time> (the guide's script drops
#                                    it before it knows the dump restores, and without
#                                    ON_ERROR_STOP a broken dump "restores" half)
#   6. start the rollback release    docker-compose -f docker-compose.rollback.yml up -d
#                                    (START_ROLLBACK_CMD)
#   7. health check                  HEALTH_URL answers 2xx within HEALTH_TIMEOUT, or exit 3
#   8. notify                        eventgate restore sends it (SLACK_WEBHOOK_URL, EMAIL_ALERTS)
#
# Environment: as pre-migration-check.sh; BACKUP_DIR (default /backups/event-management-engine),
# BACKUP_FILE, HEALTH_URL (default http://localhost:3000/health), HEALTH_TIMEOUT (default 60),
# COMPOSE (default docker-compose), STOP_APP_CMD, START_ROLLBACK_CMD (shell commands replacing
# the docker-compose steps).
# Exit codes: 0 rolled back and healthy; 1 the restore failed (the database is untouched);
# 2 no backup; 3 restored but the application never became healthy.
set -euo pipefail
SCRIPT_NAME=emergency-rollback
source "$(dirname "${BASH_SOURCE[0]}")/guide-env.sh"

BACKUP_DIR="${BACKUP_DIR:-/backups/event-management-engine}"
HEALTH_URL="${HEALTH_URL:-http://localhost:3000/health}"
HEALTH_TIMEOUT="${HEALTH_TIMEOUT:-60}"
read -r -a compose <<<"${COMPOSE:-docker-compose}"

say "EMERGENCY ROLLBACK"
step "1. stopping the application" "${STOP_APP_CMD:-}" "${compose[@]}" down

backup="${BACKUP_FILE:-}"
if [[ -z "$backup" ]]; then
    newest_plain=$(ls -t "$BACKUP_DIR"/*.sql.gz "$BACKUP_DIR"/*.sql 2>/dev/null | head -1 || true)
    newest_own=$(ls -t "$BACKUP_DIR"/*.dump 2>/dev/null | head -1 || true)
    if [[ -n "$newest_plain" && ( -z "$newest_own" || "$newest_plain" -nt "$newest_own" ) ]]; then
        backup="$newest_plain"
    elif [[ -z "$newest_own" ]]; then
        fail 2 "no backup in $BACKUP_DIR (neither eventgate's *.dump nor the guide's *.sql.gz); nothing was changed"
    fi
fi
if [[ -n "$backup" ]]; then
    say "2-5. restoring $backup"
    "${eventgate[@]}" restore --from "$backup" --yes \
        || fail 1 "the restore failed; the database is as it was (see above)"
else
    say "2-5. restoring the newest verified backup in $BACKUP_DIR"
    "${eventgate[@]}" restore --latest --backup-dir "$BACKUP_DIR" --yes \
        || fail 1 "the restore failed; the database is as it was (see above)"
fi

step "6. starting the rollback release" "${START_ROLLBACK_CMD:-}" \
    "${compose[@]}" -f docker-compose.rollback.yml up -d
say "7. waiting for $HEALTH_URL (at most ${HEALTH_TIMEOUT} s)"
wait_healthy "$HEALTH_URL" "$HEALTH_TIMEOUT" \
    || fail 3 "the database is restored, but $HEALTH_URL did not answer 2xx within ${HEALTH_TIMEOUT} s"
say "emergency rollback completed"
