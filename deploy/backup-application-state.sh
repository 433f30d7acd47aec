#!/usr/bin/env bash
# The deployment guide's application-state backup, over eventgate: its configuration files
# (.env*, *.config.*, package.json, package-lock.json) and uploads/, from the application's
# directory (the working directory, or APP_DIR), archived into APP_BACKUP_DIR by
# `eventgate backup --app-state`, which reads the archive back file by file. The guide makes two
# archives with separately taken timestamps (config_*, uploads_*), and its tar fails on a glob
# that matches nothing; here the files that exist go into one archive, and a list of what it
# holds sits beside it. The env files' contents (passwords) go into the archive, never into the
# output.
#
# Environment: APP_DIR (default: the working directory), APP_BACKUP_DIR (default
# /backups/app-state, the guide's), APP_STATE_PATHS (replaces the guide's list, split on spaces).
# Exit codes: 0 archived and read back; 1 failed; 2 nothing to archive.
set -euo pipefail
SCRIPT_NAME=backup-application-state
source "$(dirname "${BASH_SOURCE[0]}")/guide-env.sh"

APP_BACKUP_DIR="${APP_BACKUP_DIR:-/backups/app-state}"
cd "${APP_DIR:-.}"
shopt -s nullglob dotglob
if [[ -n "${APP_STATE_PATHS:-}" ]]; then
    read -r -a paths <<<"$APP_STATE_PATHS"
else
    paths=()
    for candidate in .env* *.config.* package.json package-lock.json uploads; do
        [[ -e "$candidate" ]] && paths+=("$candidate")
    done
fi
(( ${#paths[@]} > 0 )) || fail 2 "no configuration file or uploads/ in $(pwd); nothing was archived"
say "archiving ${#paths[@]} path(s) into $APP_BACKUP_DIR"
"${eventgate[@]}" backup --app-state "${paths[@]}" --backup-dir "$APP_BACKUP_DIR"
say "application state backed up"
