#!/usr/bin/env bash
# Rotate the servers' database password on an AWS stack: no restart, no failed request.
#
#   scripts/ops/rotate-db-password.sh ENV [--dry-run]
#
# A new password goes into the servers' login secret (stack output databaseAppSecretArn),
# then one node runs quibly-db-setup, which gives the role the secret's password as the
# master user. Servers read the secret for each new connection, read it again when the
# database refuses one and retry for about 11 s, so the seconds between the two steps
# cost a wait, not an error; open connections are not touched. If the role cannot be
# changed, the old password goes back into the secret. Last, the stack's config records
# the password (quibly:dbAppPassword, encrypted), so the next `pulumi up` keeps it.
# The master user's password is RDS's to rotate (every 7 days); servers never use it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

ENV_NAME=${1:-}
[ "${2:-}" = --dry-run ] && DRY_RUN=1
[ -n "$ENV_NAME" ] && [ $# -le 2 ] || { usage_text >&2; exit 2; }
[ "$ENV_NAME" != local ] || die "the local cluster logs in with the fixed password in its DATABASE_URL; rotation is for AWS stacks"
load_adapter "$ENV_NAME"
T0=$(date +%s%N)
say "rotate the servers' database password on $ENV_NAME${DRY_RUN:+ (dry run: nothing is changed)}"
db_password_rotate
say "rotated in $(elapsed "$T0"): the servers pick the new password up at their next new connection"
