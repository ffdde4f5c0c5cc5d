# Shared by the operations in scripts/ops/: the environment's adapter, dry runs, and
# the deploy history. Source it, don't run it.
#
# ENV=local is the local cluster (adapters/local.sh, scripts/cluster.sh); any other ENV
# is the Pulumi stack of that name on AWS (adapters/aws.sh). The operations call only
# the adapter functions below, so the local and the AWS paths share their logic:
#
#   adapter_init                     check tools, read the stack (once)
#   list_nodes                       the node names, one a line (server-1 ...)
#   node_version NODE                the version NODE runs (as far as the operator knows)
#   lb_drain NODE                    take NODE out of the load balancer and let it drain
#   node_run_version NODE VERSION    make NODE run VERSION (restart it on it)
#   node_health NODE                 NODE's /health HTTP status (000: no answer)
#   lb_ready NODE                    put NODE back into the load balancer
#   lb_healthy NODE                  succeeds when the load balancer reports NODE healthy
#   lb_state NODE                    the load balancer's word for NODE (for the report)
#   version_available VERSION        the release exists
#   versions_get                     "CURRENT PREVIOUS" as recorded by deploys
#   versions_set CURRENT PREVIOUS    record them (at the start of a deploy: PREVIOUS is its rollback target)
#   versions_done VERSION            every node runs VERSION: make it what new nodes start on
#   node_stop NODE                   stop NODE (after lb_drain), for a scale-down
#   scale_apply N                    set the node count to N and apply it
#   database_url                     the PostgreSQL URL for backup and restore
# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

DRY_RUN=${DRY_RUN:-}
# shellcheck disable=SC2034 # used by the operations and the adapters that source this
HEALTH_TIMEOUT=${QUIBLY_HEALTH_TIMEOUT:-90} # seconds a restarted node has to answer /health 200
# shellcheck disable=SC2034
LB_TIMEOUT=${QUIBLY_LB_TIMEOUT:-120}        # seconds the load balancer has to report it healthy

# load_adapter ENV sources the adapter for ENV and initialises it.
load_adapter() {
  OPS_ENV=${1:-}
  [ -n "$OPS_ENV" ] || die "no ENV given (local, or the name of a Pulumi stack: small, medium, large)"
  [[ $OPS_ENV =~ ^[A-Za-z0-9._-]+$ ]] || die "ENV '$OPS_ENV' is not a stack name"
  export OPS_ENV
  # shellcheck disable=SC2034 # the local adapter keeps the deploy history here
  OPS_STATE=$LOCAL/ops/$OPS_ENV
  local adapter=aws
  [ "$OPS_ENV" = local ] && adapter=local
  # shellcheck source=/dev/null
  . "$(dirname "${BASH_SOURCE[0]}")/adapters/$adapter.sh"
  adapter_init
}

# step TEXT COMMAND... says TEXT and runs COMMAND. In a dry run COMMAND runs too, but its
# side effects only print what they would call (sh_cmd) and its waits return at once.
step() {
  local text=$1; shift
  if [ -n "$DRY_RUN" ]; then printf '  [dry-run] %s\n' "$text" >&2; else say "$text"; fi
  "$@"
}

# sh_cmd COMMAND... runs an external command, or prints it in a dry run (the adapters'
# side effects go through here, so a dry run shows exactly what would be called).
sh_cmd() {
  if [ -n "$DRY_RUN" ]; then
    { printf '      $'; printf ' %q' "$@"; printf '\n'; } >&2
    return 0
  fi
  "$@"
}

# wait_until SECONDS COMMAND... polls COMMAND (every second) until it succeeds.
wait_until() {
  local secs=$1 deadline; shift
  [ -n "$DRY_RUN" ] && return 0
  deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 1
  done
}

node_healthy() { [ "$(node_health "$1")" = 200 ]; }

elapsed() { printf '%d.%ds' $((($(date +%s%N) - $1) / 1000000000)) $(((($(date +%s%N) - $1) / 100000000) % 10)); }
