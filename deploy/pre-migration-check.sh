#!/usr/bin/env bash
# The deployment guide's pre-migration check, over eventgate, in the guide's order:
#   1. database connection      eventgate preflight connects with the guide's DB_* settings
#                               (DB_PORT and DB_PASSWORD too, which the guide's psql line drops)
#   2. disk space               preflight checks free disk against the copy 010 makes, on the
#                               database's own filesystem (the guide's `df /` measures the root
#                               filesystem, which may hold neither the database nor the backups)
#   3. wedding events           preflight counts the legacy tables' rows, and names every row
#                               migration 010 would refuse
#   4. dependencies             the guide's `npm list`; here the engine and eventgate are one
#                               Python package: `eventgate --version` proves it is installed
# Also checked by preflight: sessions and locks in the way, a recent verified backup.
#
# Environment: the guide's .env.migration (ENV_FILE), or DB_HOST, DB_PORT, DB_NAME, DB_USER,
# DB_PASSWORD; BACKUP_DIR (default /backups/event-management-engine), PREFLIGHT_ARGS (extra
# flags for eventgate preflight, e.g. --skip-backup-check before the first backup).
# Exit codes: 0 ready; 1 not ready (preflight names what); 2 bad configuration.
set -euo pipefail
SCRIPT_NAME=pre-migration-check
source "$(dirname "${BASH_SOURCE[0]}")/guide-env.sh"

BACKUP_DIR="${BACKUP_DIR:-/backups/event-management-engine}"
read -r -a extra <<<"${PREFLIGHT_ARGS:-}"

say "checking the database, disk, legacy rows, sessions and backups"
"${eventgate[@]}" preflight --backup-dir "$BACKUP_DIR" "${extra[@]}"
say "dependencies: $("${eventgate[@]}" --version)"
say "pre-migration check passed"
