#!/usr/bin/env bash
# Rollback: the rolling deploy of the version that ran before the last deploy.
#   scripts/ops/rollback.sh ENV [--dry-run]
set -euo pipefail
[ -n "${1:-}" ] || { echo "usage: scripts/ops/rollback.sh ENV [--dry-run]" >&2; exit 2; }
exec "$(dirname "$0")/deploy.sh" "$1" --rollback "${@:2}"
