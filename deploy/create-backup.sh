#!/usr/bin/env bash
# The deployment guide's database backup, over eventgate. The guide's steps, in its order:
#   1. backup directory         $BACKUP_DIR, created if missing
#   2. pg_dump                  eventgate backup: pg_dump in its custom format, with each
#                               table's rows and checksum taken in the dump's own snapshot
#   3. compress                 the custom format is compressed already
#   4. verify                   --verify restores the dump into a scratch database and compares
#                               every table (the guide only checks that the .gz exists, which a
#                               failed pg_dump also leaves behind)
#   5. metadata                 <name>.json beside the dump: database, time, size, sha256,
#                               migration version, per-table rows and checksums
# BACKUP_RETENTION_DAYS (from .env.migration) then prunes older backups, never the newest
# verified one. SLACK_WEBHOOK_URL / EMAIL_ALERTS hear of the backup.
#
# Environment: as pre-migration-check.sh; BACKUP_DIR (default /backups/event-management-engine).
# Exit codes: 0 backed up and verified; 1 failed or not verified.
set -euo pipefail
SCRIPT_NAME=create-backup
source "$(dirname "${BASH_SOURCE[0]}")/guide-env.sh"

BACKUP_DIR="${BACKUP_DIR:-/backups/event-management-engine}"
mkdir -p "$BACKUP_DIR"
say "backing up into $BACKUP_DIR"
"${eventgate[@]}" backup --verify --backup-dir "$BACKUP_DIR"
say "backup created and verified"
