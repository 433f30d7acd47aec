#!/usr/bin/env bash
# The deployment guide's blue-green deployment: blue-green-switch.sh, which puts the staging
# gate between green's health check and the traffic switch (the guide's script switches and
# removes blue even when green's health check or tests failed). See deploy/README.md.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/blue-green-switch.sh" "$@"
