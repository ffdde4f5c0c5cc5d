#!/usr/bin/env bash
# A local Quibly cluster: NODES clustered nodes behind HAProxy, on 127.0.0.1.
#
#   scripts/cluster.sh up       start the services (services.sh up), build app/bin/quibly, start the
#                               nodes missing, (re)write the HAProxy config and start or reload HAProxy,
#                               wait until every node answers /health and HAProxy has them all UP
#   scripts/cluster.sh down     SIGTERM every node (they drain), then stop HAProxy; services keep running
#   scripts/cluster.sh status   each node's /health and HAProxy's view of it
#   scripts/cluster.sh node-start N [VERSION]  (re)start server-N from release VERSION (scripts/release.sh;
#                               none or "dev": app/bin/quibly), record it in run/server-N.version, wait /health 200
#   scripts/cluster.sh node-stop N  SIGTERM server-N (it drains) and wait for it to exit
#   scripts/cluster.sh version N    the version server-N was started from
#   scripts/cluster.sh health N      the HTTP status of server-N's /health (000: no answer)
#   scripts/cluster.sh lb-state N    HAProxy's status of server-N: UP, DOWN, DRAIN, MAINT, ...
#   scripts/cluster.sh lb-sessions N the sessions HAProxy has open to server-N
#   scripts/cluster.sh lb CMD   send CMD to HAProxy's admin socket (through socat), e.g.
#                                 scripts/cluster.sh lb "show servers state quibly"
#                                 scripts/cluster.sh lb "set server quibly/server-2 state drain"   (or ready, maint)
#
#   http://127.0.0.1:8080/   sticky (cookie QUIBLY_NODE): what clients use
#   http://127.0.0.1:8081/   round-robin without stickiness: only to show why stickiness is needed
#   http://127.0.0.1:8404/   HAProxy's stats page
#
# Settings (environment):
#   NODES=3                  node count; `NODES=4 scripts/cluster.sh up` on a running cluster adds
#                            server-4 and reloads HAProxy without dropping connections; `NODES=2` on a
#                            cluster of 3 takes server-3 out of HAProxy (drain, then maint), stops it
#                            (it drains its clients to the others) and reloads HAProxy without it
#   QUIBLY_NODE_VERSION=dev  the release new nodes start from (scripts/release.sh), dev = app/bin/quibly
#   QUIBLY_NODE_BASE_PORT=5000  server-N listens on base+N (5001, 5002, ...)
#   QUIBLY_LB_PORT=8080  QUIBLY_LB_RR_PORT=8081  QUIBLY_LB_STATS_PORT=8404
#   QUIBLY_CLUSTER_ENV="K=V ..."  extra environment for every node (e.g. "LOG_LEVEL=debug")
#   QUIBLY_PPROF_BASE_PORT=N      serve net/http/pprof on 127.0.0.1:N+i for node i (off when unset)
#   QUIBLY_SKIP_BUILD=1      use app/bin/quibly as it is
#
# Logs: .local/cluster/logs/server-N.log and haproxy.log. The JWT secret is generated once
# into .local/cluster/jwt-secret (mode 600) and never printed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

HOST=127.0.0.1
NODES=${NODES:-3}

BIN=$ROOT/app/bin/quibly
CDIR=$LOCAL/cluster
LOGS=$CDIR/logs
RUN=$CDIR/run
SECRET_FILE=$CDIR/jwt-secret
HAPROXY_CFG=$CDIR/haproxy.cfg
HAPROXY_SOCK=$CDIR/haproxy.sock
HAPROXY_PID=$RUN/haproxy.pid
HAPROXY_LOG=$LOGS/haproxy.log

usage() { usage_text; }

[[ $NODES =~ ^[1-9][0-9]?$ ]] || die "NODES must be a number from 1 to 99 (got '$NODES')"

node_port() { echo $((NODE_BASE_PORT + $1)); }
node_pidfile() { echo "$RUN/server-$1.pid"; }
# Nodes run app/bin/quibly or a release's $LOCAL/releases/<version>/quibly.
NODE_MATCH=/quibly
node_pid() { pidfile_pid "$(node_pidfile "$1")" "$NODE_MATCH"; }
node_version_file() { echo "$RUN/server-$1.version"; }
node_version() { cat "$(node_version_file "$1")" 2>/dev/null || echo dev; }
# node_bin VERSION prints the binary of VERSION; dev is app/bin/quibly.
node_bin() {
  if [ "$1" = dev ]; then echo "$BIN"; else echo "$LOCAL/releases/$1/quibly"; fi
}
# node_health N prints the /health HTTP status code of server-N (000 when it does not answer).
node_health() { curl -s -o /dev/null -m 3 -w '%{http_code}' "http://$HOST:$(node_port "$1")/health" || true; }
node_healthy() { [ "$(node_health "$1")" = 200 ]; }

# ------------------------------------------------------------------------- HAProxy

# haproxy_config NODES prints the HAProxy configuration for server-1..server-NODES.
haproxy_config() {
  local n=$1 i maxconn hard
  # HAProxy needs about two file descriptors per connection; stay inside the hard limit.
  hard=$(ulimit -Hn)
  [ "$hard" = unlimited ] && hard=1048576
  maxconn=$(((hard - 200) / 2))
  [ "$maxconn" -gt 50000 ] && maxconn=50000
  cat <<EOF
# Written by scripts/cluster.sh (haproxy_config); rewritten on every 'up'.
global
    log stdout format raw local0 info
    # Admin socket: drain/maint/ready for rolling deploys, e.g.
    #   echo "set server quibly/server-1 state drain" | socat stdio unix-connect:$HAPROXY_SOCK
    stats socket $HAPROXY_SOCK mode 600 level admin
    stats timeout 30s
    # A reload (-sf) lets the old process finish its websockets for at most this long.
    hard-stop-after 35s
    maxconn $maxconn

defaults
    mode http
    log global
    option httplog
    option dontlognull
    option forwardfor
    # A request whose sticky node is down goes to another one.
    option redispatch
    retries 2
    timeout connect 5s
    # Above the Engine.IO ping interval + timeout (25 s + 20 s) and a long-poll's wait.
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 10s
    # Upgraded websockets.
    timeout tunnel 1h
    timeout client-fin 5s
    # A node's /health bounds its own dependency checks at 2 s; a check may take that
    # long on a busy machine without the node being down.
    timeout check 3s
    default-server inter 1s fall 2 rise 2

frontend quibly
    bind $HOST:$LB_PORT
    default_backend quibly

backend quibly
    # Long-lived websockets: new clients go where the fewest connections are.
    balance leastconn
    # Sticky sessions: Engine.IO long-polling must reach the node that holds the session.
    cookie QUIBLY_NODE insert indirect nocache httponly
    option httpchk GET /health
    http-check expect status 200
    http-response set-header X-Quibly-Node %s
EOF
  for ((i = 1; i <= n; i++)); do
    echo "    server server-$i $HOST:$(node_port "$i") cookie server-$i check"
  done
  cat <<EOF

# Round-robin without stickiness: for the test that shows why stickiness is needed.
frontend quibly-nosticky
    bind $HOST:$LB_RR_PORT
    default_backend quibly-nosticky

backend quibly-nosticky
    balance roundrobin
    http-response set-header X-Quibly-Node %s
EOF
  for ((i = 1; i <= n; i++)); do
    # Follows the health (and drain/maint) of the sticky backend's server.
    echo "    server server-$i $HOST:$(node_port "$i") track quibly/server-$i"
  done
  cat <<EOF

listen stats
    bind $HOST:$LB_STATS_PORT
    stats enable
    stats uri /
    stats refresh 2s
EOF
}

# lb_cmd CMD sends one command to HAProxy's admin socket and prints the answer.
lb_cmd() {
  command -v socat >/dev/null || apt_install socat
  [ -S "$HAPROXY_SOCK" ] || die "HAProxy's admin socket $HAPROXY_SOCK is missing: is the cluster up?"
  printf '%s\n' "$*" | socat -t 5 stdio "unix-connect:$HAPROXY_SOCK"
}

# lb_stat prints, for each server of the sticky backend, "server-N<TAB>STATUS<TAB>SESSIONS"
# from HAProxy's CSV stats (field 2 the server, 18 the status, 5 the current sessions).
# A status can hold a space ("UP 1/2": up, one check failed), hence the tabs.
lb_stat() { lb_cmd "show stat" | awk -F, -v OFS='\t' '$1 == "quibly" && $2 ~ /^server-/ { print $2, $18, $5 }'; }
# lb_states prints "server-N STATUS" for each server (UP, DOWN, DRAIN, MAINT, UP 1/2, ...).
lb_states() { lb_stat | awk -F'\t' '{ print $1 " " $2 }'; }
# lb_field N COLUMN prints server-N's column of lb_stat (2 status, 3 sessions).
lb_field() { lb_stat | awk -F'\t' -v s="server-$1" -v c="$2" '$1 == s { print $c }'; }

lb_all_up() {
  local states i
  states=$(lb_states 2>/dev/null) || return 1
  for ((i = 1; i <= NODES; i++)); do
    grep -qx "server-$i UP" <<<"$states" || return 1
  done
}

haproxy_start() {
  local old=${1:-}
  local args=(-db -f "$HAPROXY_CFG")
  [ -n "$old" ] && args+=(-sf "$old")
  spawn "$HAPROXY_PID" "$HAPROXY_LOG" haproxy "${args[@]}"
}

haproxy_up() {
  apt_install haproxy
  command -v socat >/dev/null || apt_install socat
  local new=$CDIR/haproxy.cfg.new pid
  haproxy_config "$NODES" >"$new"
  haproxy -c -q -f "$new" >"$LOGS/haproxy-check.log" 2>&1 \
    || { cat "$LOGS/haproxy-check.log" >&2; die "HAProxy rejected the generated config $new"; }
  if pid=$(pidfile_pid "$HAPROXY_PID" haproxy); then
    if cmp -s "$new" "$HAPROXY_CFG"; then
      rm -f "$new"
      say "HAProxy already running (pid $pid)"
    else
      mv "$new" "$HAPROXY_CFG"
      say "reloading HAProxy with $NODES nodes (old pid $pid finishes its connections)"
      haproxy_start "$pid"
    fi
  else
    local p
    for p in "$LB_PORT" "$LB_RR_PORT" "$LB_STATS_PORT"; do
      port_open "$HOST" "$p" && die "HAProxy: port $p is taken by another process (see: ss -ltnp 'sport = :$p')"
    done
    mv "$new" "$HAPROXY_CFG"
    say "starting HAProxy on $HOST:$LB_PORT (sticky) and $HOST:$LB_RR_PORT (round-robin) (log: $HAPROXY_LOG)"
    haproxy_start
  fi
  wait_for "HAProxy ($HOST:$LB_PORT)" 20 port_open "$HOST" "$LB_PORT" \
    || die "HAProxy did not start; see $HAPROXY_LOG"
  wait_for "HAProxy backend quibly ($NODES servers UP)" 30 lb_all_up \
    || { lb_states >&2 || true; die "HAProxy does not see every node UP; see $HAPROXY_LOG and $LOGS/server-*.log"; }
}

# -------------------------------------------------------------------------- nodes

jwt_secret() {
  mkdir -p "$CDIR"
  if [ ! -s "$SECRET_FILE" ]; then
    (umask 077 && head -c 48 /dev/urandom | base64 | tr -d '\n/+=' >"$SECRET_FILE")
    say "generated the cluster's JWT secret into $SECRET_FILE (mode 600)"
  fi
  chmod 600 "$SECRET_FILE"
  cat "$SECRET_FILE"
}

build() {
  if [ -n "${QUIBLY_SKIP_BUILD:-}" ]; then
    [ -x "$BIN" ] || die "QUIBLY_SKIP_BUILD is set but $BIN does not exist"
    return 0
  fi
  say "building $BIN"
  (cd "$ROOT" && go build -o "$BIN" ./app/cmd/quibly) || die "go build failed"
}

node_start() {
  local i=$1 secret=$2 version=${3:-${QUIBLY_NODE_VERSION:-dev}} port pid log dir bin
  port=$(node_port "$i")
  log=$LOGS/server-$i.log
  if pid=$(node_pid "$i"); then
    say "server-$i already running (pid $pid, port $port)"
    return 0
  fi
  port_open "$HOST" "$port" && die "server-$i: port $port is taken by another process (see: ss -ltnp 'sport = :$port')"
  dir=$CDIR/server-$i
  mkdir -p "$dir"
  bin=$(node_bin "$version")
  [ -x "$bin" ] || die "server-$i: version $version has no binary $bin (scripts/release.sh build $version)"
  local envs=(PATH="$PATH" HOME="${HOME:-/root}" SERVER_ID="server-$i" PORT="$port" JWT_SECRET="$secret"
    FRONTEND_URL="http://$HOST:$LB_PORT" LOG_LEVEL="${LOG_LEVEL:-info}"
    # Every client of the local cluster (tests, the bench's load tool) comes from
    # 127.0.0.1, so the per-address and per-user limits are opened up here.
    AUTH_RATE=100000 AUTH_BURST=100000 AUTH_USER_RATE=100000 AUTH_USER_BURST=100000
    MAX_CONNECTIONS_PER_IP=100000 MAX_CONNECTIONS_PER_USER=100000)
  local db
  db=$LOCAL_DATABASE_URL
  envs+=(REDIS_STRING="$HOST" REDIS_PORT_NO="$REDIS_PORT"
    KAFKA_BROKERS="$HOST:$KAFKA_PORT" DATABASE_URL="$db")
  [ -n "${QUIBLY_REDIS_PASSWORD:-}" ] && envs+=(REDIS_PASSWORD="$QUIBLY_REDIS_PASSWORD")
  [ -n "${QUIBLY_PPROF_BASE_PORT:-}" ] && envs+=(PPROF_ADDR="$HOST:$((QUIBLY_PPROF_BASE_PORT + i))")
  local extra
  # shellcheck disable=SC2206 # word splitting of "K=V K=V" is the point
  extra=(${QUIBLY_CLUSTER_ENV:-})
  envs+=("${extra[@]}")
  # A release may carry settings of its own (scripts/release.sh build --env K=V): they win.
  local rel_env=$LOCAL/releases/$version/env line
  if [ "$version" != dev ] && [ -s "$rel_env" ]; then
    while IFS= read -r line; do [ -n "$line" ] && envs+=("$line"); done <"$rel_env"
  fi
  echo "---- $(date -u +%FT%TZ) starting server-$i on $HOST:$port, version $version ($bin)" >>"$log"
  echo "$version" >"$(node_version_file "$i")"
  # A clean environment (no stray REDIS_STRING from the caller's shell), no .env file,
  # its own working directory.
  (cd "$dir" && spawn "$(node_pidfile "$i")" "$log" env -i "${envs[@]}" "$bin" -env-file=)
  say "started server-$i on $HOST:$port, version $version (log: $log)"
}

node_stop() { stop_pidfile "server-$1" "$(node_pidfile "$1")" "$NODE_MATCH" 40; }

# remove_extra_nodes stops the nodes above NODES, each taken out of HAProxy first: drain
# (no new clients), then maint (not even cookie-pinned ones, as an ALB deregistration),
# then SIGTERM, so its clients reconnect to the nodes that stay.
remove_extra_nodes() {
  local f i
  for f in "$RUN"/server-*.pid; do
    [ -e "$f" ] || continue
    i=${f##*/server-}; i=${i%.pid}
    [ "$i" -gt "$NODES" ] || continue
    if [ -S "$HAPROXY_SOCK" ] && pidfile_pid "$HAPROXY_PID" haproxy >/dev/null; then
      say "server-$i: out of HAProxy (drain, then maint) before it stops"
      lb_cmd "set server quibly/server-$i state drain" >/dev/null || true
      sleep "${QUIBLY_DRAIN_WAIT:-2}"
      lb_cmd "set server quibly/server-$i state maint" >/dev/null || true
    fi
    node_stop "$i"
    rm -f "$(node_version_file "$i")"
  done
}

node_wait() {
  local i=$1
  local log=$LOGS/server-$i.log deadline=$((SECONDS + 60))
  until node_healthy "$i"; do
    if ! node_pid "$i" >/dev/null; then
      tail -n 5 "$log" >&2
      die "server-$i exited at start; see $log"
    fi
    [ $SECONDS -lt $deadline ] || die "server-$i does not answer /health with 200 on port $(node_port "$i") within 60s; see $log"
    sleep 0.3
  done
  say "server-$i is up ($(curl -s -m 3 "http://$HOST:$(node_port "$i")/health" | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p'))"
}

# ----------------------------------------------------------------------- commands

up() {
  mkdir -p "$LOGS" "$RUN"
  "$ROOT/scripts/services.sh" up
  command -v curl >/dev/null || apt_install curl
  build
  local secret i
  secret=$(jwt_secret)
  # A node restarted after a crash keeps the version it ran (see node-start).
  for ((i = 1; i <= NODES; i++)); do node_start "$i" "$secret" "${QUIBLY_NODE_VERSION:-$(node_version "$i")}"; done
  for ((i = 1; i <= NODES; i++)); do node_wait "$i"; done
  remove_extra_nodes
  haproxy_up
  say "cluster of $NODES nodes is up: http://$HOST:$LB_PORT/ (round-robin, no stickiness: http://$HOST:$LB_RR_PORT/, stats: http://$HOST:$LB_STATS_PORT/)"
  say "logs: $LOGS/   stop: scripts/cluster.sh down"
}

down() {
  local f name
  # Every node that has a pid file, whatever NODES says now, all at once: each drains
  # (up to SHUTDOWN_TIMEOUT, at most 30 s) in parallel.
  for f in "$RUN"/server-*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid)
    stop_pidfile "$name" "$f" "$NODE_MATCH" 40 &
  done
  wait
  rm -f "$RUN"/server-*.version
  stop_pidfile HAProxy "$HAPROXY_PID" haproxy 10
  say "cluster stopped; the services (Redis, PostgreSQL, Kafka) keep running: scripts/services.sh down (make services-down) stops them"
}

status() {
  local f i code pid line bad=0 states=""
  for f in "$RUN"/server-*.pid; do
    [ -e "$f" ] || continue
    i=${f##*/server-}; i=${i%.pid}
    code=$(node_health "$i")
    if pid=$(node_pid "$i"); then
      echo "server-$i  pid $pid  $HOST:$(node_port "$i")  /health $code  version $(node_version "$i")"
    else
      echo "server-$i  not running  $HOST:$(node_port "$i")"
    fi
    [ "$code" = 200 ] || bad=1
  done
  if pid=$(pidfile_pid "$HAPROXY_PID" haproxy); then
    echo "haproxy   pid $pid  sticky http://$HOST:$LB_PORT/  round-robin http://$HOST:$LB_RR_PORT/"
    states=$(lb_states 2>/dev/null) || true
    [ -z "$states" ] || while read -r line; do echo "  lb $line"; done <<<"$states"
  else
    echo "haproxy   not running"
    bad=1
  fi
  return $bad
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  node-start)
    [[ ${2:-} =~ ^[0-9]+$ ]] || die "usage: scripts/cluster.sh node-start N [VERSION]"
    mkdir -p "$LOGS" "$RUN"
    node_stop "$2"
    node_start "$2" "$(jwt_secret)" "${3:-${QUIBLY_NODE_VERSION:-dev}}"
    node_wait "$2" ;;
  node-stop) [[ ${2:-} =~ ^[0-9]+$ ]] || die "usage: scripts/cluster.sh node-stop N"; node_stop "$2" ;;
  version) [[ ${2:-} =~ ^[0-9]+$ ]] || die "usage: scripts/cluster.sh version N"; node_version "$2" ;;
  lb) shift; [ $# -gt 0 ] || die "usage: scripts/cluster.sh lb 'COMMAND'"; lb_cmd "$*" ;;
  health) [[ ${2:-} =~ ^[0-9]+$ ]] || die "usage: scripts/cluster.sh health N"; node_health "$2" ;;
  lb-state) [[ ${2:-} =~ ^[0-9]+$ ]] || die "usage: scripts/cluster.sh lb-state N"; lb_field "$2" 2 ;;
  lb-sessions) [[ ${2:-} =~ ^[0-9]+$ ]] || die "usage: scripts/cluster.sh lb-sessions N"; lb_field "$2" 3 ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
