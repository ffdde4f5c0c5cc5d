#!/usr/bin/env bash
# Rolling deploy: every node of ENV to VERSION, one at a time, the rest serving.
#
#   scripts/ops/deploy.sh ENV VERSION [--dry-run]
#   scripts/ops/deploy.sh ENV --rollback [--dry-run]     (scripts/ops/rollback.sh ENV)
#
# Per node: out of the load balancer (drained), restarted on VERSION, /health 200, back
# in, healthy in the load balancer; then the next. The first failure stops the deploy with
# the remaining nodes untouched, prints every node's state and the rollback command.
# ENV=local is the local cluster (VERSION from scripts/release.sh build); any other ENV
# is that Pulumi stack on AWS (VERSION uploaded to the artifact bucket). The version that
# ran before is recorded for the rollback.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

usage() { usage_text; exit 2; }

ENV_NAME=${1:-}; shift || true
VERSION="" ROLLBACK=""
for a in "$@"; do
  case $a in
    --dry-run) DRY_RUN=1 ;;
    --rollback) ROLLBACK=1 ;;
    -*) usage ;;
    *) [ -z "$VERSION" ] || usage; VERSION=$a ;;
  esac
done
[ -n "$ENV_NAME" ] || usage
OPS_NEEDS_LB=1 load_adapter "$ENV_NAME"

read -r CURRENT PREVIOUS < <(versions_get)
if [ -n "$ROLLBACK" ]; then
  [ -z "$VERSION" ] || die "--rollback takes no VERSION: it deploys the recorded previous one"
  [ "$PREVIOUS" != - ] || die "no previous version recorded for $ENV_NAME: nothing to roll back to"
  VERSION=$PREVIOUS
fi
[ -n "$VERSION" ] || usage
version_available "$VERSION" || die "version $VERSION is not available for $ENV_NAME (local: scripts/release.sh build $VERSION; AWS: upload it to the artifact bucket)"

mapfile -t NODES < <(list_nodes)
[ ${#NODES[@]} -gt 0 ] || die "$ENV_NAME has no nodes"
[ ${#NODES[@]} -gt 1 ] || warn "$ENV_NAME has a single node: it cannot serve while it restarts"

declare -A WAS STATE
for n in "${NODES[@]}"; do
  WAS[$n]=$(node_version "$n")
  STATE[$n]="untouched, runs ${WAS[$n]}, in the load balancer"
done
# What ran before this deploy: the recorded version, else what the first node runs.
BEFORE=$CURRENT
[ "$BEFORE" != - ] || BEFORE=${WAS[${NODES[0]}]}

report() {
  local n
  for n in "${NODES[@]}"; do
    printf '  %-10s %s\n' "$n" "${STATE[$n]}" >&2
  done
}

fail() {
  local node=$1 why=$2
  STATE[$node]="FAILED: $why; out of the load balancer"
  printf '\nerror: deploy of %s to %s stopped at %s: %s\nnode states:\n' "$ENV_NAME" "$VERSION" "$node" "$why" >&2
  report
  if [ -n "$ROLLBACK" ]; then
    printf 'the rollback itself failed: fix %s by hand (see its log), then run it again\n' "$node" >&2
  else
    printf 'to go back to %s on every node:  scripts/ops/rollback.sh %s   (make rollback ENV=%s)\n' "$BEFORE" "$ENV_NAME" "$ENV_NAME" >&2
  fi
  exit 1
}

T0=$(date +%s%N)
what=deploy; [ -n "$ROLLBACK" ] && what=rollback
say "$what of $ENV_NAME to $VERSION: ${#NODES[@]} nodes (${NODES[*]}), one at a time${DRY_RUN:+ (dry run: nothing is changed)}"
# Recorded first, so a deploy that stops half-way can be rolled back.
if [ -z "$ROLLBACK" ] && [ "$VERSION" != "$BEFORE" ]; then
  step "record: previous version $BEFORE, deploying $VERSION" versions_set "$VERSION" "$BEFORE"
fi

i=0
for n in "${NODES[@]}"; do
  i=$((i + 1))
  t=$(date +%s%N)
  if [ -z "$DRY_RUN" ] && [ "${WAS[$n]}" = "$VERSION" ] && node_healthy "$n" && lb_healthy "$n"; then
    STATE[$n]="runs $VERSION already, healthy in the load balancer (skipped)"
    say "[$i/${#NODES[@]}] $n already runs $VERSION and is healthy: skipped"
    continue
  fi
  say "[$i/${#NODES[@]}] $n: ${WAS[$n]} -> $VERSION"
  step "$n: out of the load balancer, draining" lb_drain "$n" || fail "$n" "could not take it out of the load balancer"
  STATE[$n]="out of the load balancer, still runs ${WAS[$n]}"
  step "$n: restart on $VERSION" node_run_version "$n" "$VERSION" || fail "$n" "did not start on $VERSION"
  step "$n: wait for /health 200 (up to ${HEALTH_TIMEOUT}s)" wait_until "$HEALTH_TIMEOUT" node_healthy "$n" \
    || fail "$n" "runs $VERSION but /health answers $(node_health "$n"), not 200"
  step "$n: back into the load balancer" lb_ready "$n" || fail "$n" "healthy on $VERSION but could not be put back"
  STATE[$n]="runs $VERSION, back in the load balancer, not yet healthy there"
  step "$n: wait until the load balancer reports it healthy (up to ${LB_TIMEOUT}s)" wait_until "$LB_TIMEOUT" lb_healthy "$n" \
    || { STATE[$n]="runs $VERSION, in the load balancer but $(lb_state "$n")"; fail "$n" "the load balancer does not report it healthy"; }
  STATE[$n]="runs $VERSION, healthy in the load balancer"
  say "[$i/${#NODES[@]}] $n done in $(elapsed "$t")"
done

[ -z "$ROLLBACK" ] || step "record: running $VERSION" versions_set "$VERSION" "$PREVIOUS"
step "every node runs $VERSION: new nodes start on it" versions_done "$VERSION"
say "$what of $ENV_NAME to $VERSION done in $(elapsed "$T0"):"
report
