#!/usr/bin/env bash
# Scale ENV to N nodes.
#
#   scripts/ops/scale.sh ENV N [--dry-run]
#
# Down: each node above N is taken out of the load balancer and drained, then stopped,
# before the count is applied (its clients reconnect to the others and recover). Up: the
# count is applied (AWS: quibly:fleet.instances and `pulumi up`; local: cluster.sh adds the
# nodes on the running version and reloads HAProxy), then each new node must answer
# /health 200 and be healthy in the load balancer.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

ENV_NAME=${1:-} N=${2:-}
[ "${3:-}" = --dry-run ] && DRY_RUN=1
[ -n "$ENV_NAME" ] && [[ $N =~ ^[1-9][0-9]?$ ]] || { sed -n '2,11s/^# \{0,1\}//p' "$0" >&2; exit 2; }
OPS_NEEDS_LB=1 load_adapter "$ENV_NAME"

mapfile -t BEFORE < <(list_nodes)
HAVE=${#BEFORE[@]}
T0=$(date +%s%N)
say "scale $ENV_NAME from $HAVE to $N nodes${DRY_RUN:+ (dry run: nothing is changed)}"
if [ "$N" -eq "$HAVE" ]; then say "nothing to do"; exit 0; fi

if [ "$N" -lt "$HAVE" ]; then
  for ((i = HAVE; i > N; i--)); do
    n=server-$i
    step "$n: out of the load balancer, draining" lb_drain "$n" || die "$n: could not take it out of the load balancer; nothing was removed yet"
    step "$n: stop (its clients move to the other nodes)" node_stop "$n" || die "$n: could not stop it; it is out of the load balancer"
  done
fi
step "apply: $N nodes" scale_apply "$N" || die "applying $N nodes failed; see above (make cluster-status / the stack outputs list the nodes)"
for ((i = HAVE + 1; i <= N; i++)); do
  n=server-$i
  step "$n: wait for /health 200" wait_until "$HEALTH_TIMEOUT" node_healthy "$n" || die "$n does not answer /health 200"
  step "$n: wait until the load balancer reports it healthy" wait_until "$LB_TIMEOUT" lb_healthy "$n" \
    || die "$n is not healthy in the load balancer ($(lb_state "$n"))"
done
say "scaled $ENV_NAME to $N nodes in $(elapsed "$T0")"
[ -n "$DRY_RUN" ] || list_nodes | while read -r n; do printf '  %-10s %s\n' "$n" "$(lb_state "$n")" >&2; done
