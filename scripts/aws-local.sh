#!/usr/bin/env bash
# A local AWS API for the tests of what servers and scripts call on AWS at run time:
# moto's server (SSM, S3, Secrets Manager, KMS, ELBv2, EC2, RDS; no MSK) on 127.0.0.1,
# and the AWS CLI, both from PyPI in a virtualenv under $LOCAL/aws.
#
#   scripts/aws-local.sh up       install what is missing, start moto, wait until it answers
#   scripts/aws-local.sh down     stop it (its state is in memory: gone with it)
#   scripts/aws-local.sh status   exit 0 when it answers
#   scripts/aws-local.sh env      print the export lines the tests read: eval "$(scripts/aws-local.sh env)"
#
#   QUIBLY_AWS_PORT=15000  moto's port
#   The versions are pinned below; moto accepts any credentials (the env line sets dummy ones).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

HOST=127.0.0.1
MOTO_VERSION=5.2.5
AWSCLI_VERSION=1.46.3
DIR=$LOCAL/aws
VENV=$DIR/venv
PID=$DIR/moto.pid
LOG=$DIR/moto.log

usage() { usage_text; }

answers() { curl -fsS -m 2 -o /dev/null "http://$HOST:$AWS_PORT/moto-api/" 2>/dev/null; }

install() {
  pip_venv "$VENV" "$MOTO_VERSION $AWSCLI_VERSION" "moto $MOTO_VERSION and the AWS CLI $AWSCLI_VERSION" \
    "moto[server]==$MOTO_VERSION" "awscli==$AWSCLI_VERSION"
}

up() {
  mkdir -p "$DIR"
  install
  if answers; then say "moto already answers on $HOST:$AWS_PORT"; return 0; fi
  port_open "$HOST" "$AWS_PORT" && die "moto: port $AWS_PORT is taken by something else (see: ss -ltnp 'sport = :$AWS_PORT')"
  say "starting moto $MOTO_VERSION on $HOST:$AWS_PORT (log: $LOG)"
  # AWS's managed IAM policies (e.g. AmazonRDSEnhancedMonitoringRole) exist, as in an account.
  spawn "$PID" "$LOG" env MOTO_IAM_LOAD_MANAGED_POLICIES=true "$VENV/bin/moto_server" -H "$HOST" -p "$AWS_PORT"
  wait_for "moto ($HOST:$AWS_PORT)" 60 answers || { tail -n 20 "$LOG" >&2; die "moto did not answer on $HOST:$AWS_PORT within 60s; see $LOG"; }
}

down() { stop_pidfile moto "$PID" moto_server 10; }

print_env() {
  cat <<EOF
export QUIBLY_TEST_AWS_ENDPOINT=http://$HOST:$AWS_PORT
export QUIBLY_TEST_AWS_CLI=$VENV/bin/aws
EOF
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) if answers; then echo "moto  up    $HOST:$AWS_PORT"; else echo "moto  down  $HOST:$AWS_PORT"; exit 1; fi ;;
  env) print_env ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
