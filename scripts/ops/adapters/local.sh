# Adapter for ENV=local: the cluster of scripts/cluster.sh behind HAProxy (see ../common.sh).
# shellcheck shell=bash

CLUSTER=$ROOT/scripts/cluster.sh

adapter_init() {
  command -v psql >/dev/null || die "psql is not installed (scripts/services.sh up installs it)"
  # Deploy and scale need the cluster; backup and restore only PostgreSQL.
  [ -n "$DRY_RUN" ] || [ -z "${OPS_NEEDS_LB:-}" ] || "$CLUSTER" lb "show info" >/dev/null 2>&1 \
    || die "the local cluster is not running (make cluster, or scripts/cluster.sh up)"
}

node_num() { echo "${1#server-}"; }

# The nodes that have a pid file, in number order.
list_nodes() {
  local f
  for f in "$LOCAL"/cluster/run/server-*.pid; do
    [ -e "$f" ] || continue
    f=${f##*/}; echo "${f%.pid}"
  done | sort -t- -k2 -n
}

node_version() { "$CLUSTER" version "$(node_num "$1")"; }

lb_cmd() { "$CLUSTER" lb "$@"; }

# HAProxy's drain admits no new client but still routes cookie-pinned ones to the node;
# maint routes nobody, as an ALB deregistration. So: drain, let what can go go (bounded:
# a websocket stays until its node says reconnect), then maint.
lb_drain() {
  sh_cmd "$CLUSTER" lb "set server quibly/$1 state drain" >/dev/null
  [ -n "$DRY_RUN" ] || wait_until "${QUIBLY_DRAIN_WAIT:-2}" lb_no_sessions "$1" || true
  sh_cmd "$CLUSTER" lb "set server quibly/$1 state maint" >/dev/null
}

lb_no_sessions() { [ "$("$CLUSTER" lb-sessions "$(node_num "$1")")" = 0 ]; }

# The node drains on SIGTERM (health 503, clients told to reconnect), then starts on VERSION.
node_run_version() { sh_cmd "$CLUSTER" node-start "$(node_num "$1")" "$2" >&2; }

node_health() { "$CLUSTER" health "$(node_num "$1")"; }

lb_ready() { sh_cmd "$CLUSTER" lb "set server quibly/$1 state ready" >/dev/null; }

lb_state() { "$CLUSTER" lb-state "$(node_num "$1")" 2>/dev/null; }
lb_healthy() { [ "$(lb_state "$1")" = UP ]; }

version_available() { [ "$1" = dev ] || [ -x "$LOCAL/releases/$1/quibly" ]; }

versions_get() {
  local cur prev
  cur=$(cat "$OPS_STATE/current" 2>/dev/null || true)
  prev=$(cat "$OPS_STATE/previous" 2>/dev/null || true)
  echo "${cur:--} ${prev:--}"
}

versions_set() {
  [ -n "$DRY_RUN" ] && return 0
  mkdir -p "$OPS_STATE"
  echo "$1" >"$OPS_STATE/current"
  echo "$2" >"$OPS_STATE/previous"
}

# Each local node's version is its own already (cluster.sh's run/server-N.version).
versions_done() { :; }

node_stop() { sh_cmd "$CLUSTER" node-stop "$(node_num "$1")" >&2; }

# New nodes start on the version the cluster runs; cluster.sh removes nodes above N
# (those are drained and stopped already by scale.sh) and reloads HAProxy.
scale_apply() {
  local cur
  read -r cur _ < <(versions_get)
  [ "$cur" = - ] && cur=dev
  sh_cmd env NODES="$1" QUIBLY_SKIP_BUILD=1 QUIBLY_NODE_VERSION="$cur" "$CLUSTER" up >&2
}

database_url() { echo "$LOCAL_DATABASE_URL"; }
