#!/usr/bin/env bash
# Benchmarks, side by side and in one run (make bench; method and results: docs/BENCHMARKS.md):
# Quibly's 3-node cluster and the reference peer (bench/reference: Socket.IO 4.8 +
# @socket.io/redis-adapter, 3 instances) behind HAProxy on the same Redis, plus the
# machine's raw limits. Every figure is the median of RUNS runs.
#
#   scripts/bench.sh           run everything, write test-output/bench/results.json and
#                              regenerate the figures section of docs/BENCHMARKS.md
#
# Settings (environment):
#   RUNS=3                 runs per figure
#   IDLE_CONNS=10000       idle connections for memory per connection (spread over the 3 nodes)
#   SAT_CONNS=1000 SAT_CHANNELS=10 SAT_SENDERS=50 SAT_WINDOW=8   fan-out shape (each message
#                          reaches SAT_CONNS/SAT_CHANNELS members on all 3 nodes)
#   DURATION=10s WARMUP=3s measured time and warm-up per load run
#   SWEEP="10 25 50 75"    load steps, in % of each server's median saturation send rate
#                          (saturation itself is the 100 % step)
#   BENCH_CPU_SPLIT=1      run the load tool and both HAProxies in a CPU cgroup of their own
#                          (a third of the machine's weight) where the kernel lets us; 0: off
#   QUIBLY_PPROF_BASE_PORT=6060  Quibly's nodes serve pprof on base+1..3; node 1 is profiled
#                          through the measured window of the first 50 % run
#   QUIBLY_REF_BASE_PORT=7000 (peer instances on base+1..3)  QUIBLY_REF_LB_PORT=8090
#   QUIBLY_ECHO_PORT=7990  BENCH_OUT=test-output/bench  BENCH_DOC=docs/BENCHMARKS.md (empty: don't write)
#   BENCH_ONLY="raw store fanout memory"  the parts to run; a partial run keeps the other
#                          parts' JSON files in BENCH_OUT and regenerates the report from all
#   BENCH_MIX=0.1          part "mix": Quibly at 50 % of its saturation with messages only and
#                          with that share of sends changing messages instead (edits, reactions,
#                          read markers: quiblyload -mix), RUNS runs each, alternating
#   BENCH_BASE=REV         also run part "base": Quibly built from git revision REV and the
#                          working tree, each on a fresh schema and Kafka topic, at the same rate
#                          (50 % of the working tree's median saturation), RUNS runs each,
#                          alternating; the report gives both and their ratio
#   plus the ports of scripts/services.sh and scripts/cluster.sh (QUIBLY_*_PORT, QUIBLY_LOCAL)
#
# Quibly's nodes run with MESSAGE_RATE=100000 MESSAGE_BURST=100000 (the per-user send limit
# would otherwise cap the load tool, which shares a few hundred users over its connections).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

HOST=127.0.0.1
RUNS=${RUNS:-3}
IDLE_CONNS=${IDLE_CONNS:-10000}
SAT_CONNS=${SAT_CONNS:-1000}
SAT_CHANNELS=${SAT_CHANNELS:-10}
SAT_SENDERS=${SAT_SENDERS:-50}
SAT_WINDOW=${SAT_WINDOW:-8}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
SWEEP=${SWEEP:-10 25 50 75}
CPU_SPLIT=${BENCH_CPU_SPLIT:-1}
PPROF_BASE=${QUIBLY_PPROF_BASE_PORT:-6060}
USERS=${USERS:-200}
OUT=${BENCH_OUT:-$ROOT/test-output/bench}
BASE=${BENCH_BASE:-}
MIX=${BENCH_MIX:-0.1}
ONLY=${BENCH_ONLY:-raw store fanout mix memory${BASE:+ base}}
part() { [[ " $ONLY " == *" $1 "* ]]; }
DOC=${BENCH_DOC-$ROOT/docs/BENCHMARKS.md}
# Programs whose CPU time each load run reports (per 1,000 deliveries in the report).
CPU_PROGRAMS=quibly,node,java,redis-server,postgres,haproxy,quiblyload

BDIR=$LOCAL/bench
LOAD=$ROOT/app/bin/quiblyload
QUIBLY=$ROOT/app/bin/quibly
REFDIR=$ROOT/bench/reference
STARTED=()      # pid files of what this script started
SERVICES_WERE_UP=

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }
case ${1:-} in -h | --help | help) usage; exit 0 ;; esac

cleanup() {
  local f
  set +e
  for f in "${STARTED[@]}"; do stop_pidfile "$(basename "$f" .pid)" "$f" "" 15; done
  cpu_split_remove
  [ -n "${CLUSTER_UP:-}" ] && QUIBLY_SKIP_BUILD=1 "$ROOT/scripts/cluster.sh" down >/dev/null 2>&1
  [ -z "$SERVICES_WERE_UP" ] && [ -n "${SERVICES_STARTED:-}" ] && "$ROOT/scripts/services.sh" down >/dev/null 2>&1
}
trap cleanup EXIT

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# --------------------------------------------------------------------------- setup

setup() {
  mkdir -p "$OUT" "$BDIR/logs" "$BDIR/run"
  local p
  for p in $ONLY; do
    case $p in
      raw) rm -f "$OUT"/raw-*.json ;;
      store) rm -f "$OUT"/store-*.json ;;
      fanout) rm -f "$OUT"/saturation-*.json "$OUT"/sweep-*.json "$OUT"/pprof-* "$OUT"/half-*.json "$OUT"/light-*.json ;;
      memory) rm -f "$OUT"/memory-*.json ;;
      base) rm -f "$OUT"/base-*.json; [ -n "$BASE" ] || die "BENCH_ONLY has base: set BENCH_BASE to a git revision" ;;
      mix) rm -f "$OUT"/mix-*.json ;;
      *) die "BENCH_ONLY: unknown part '$p' (raw, store, fanout, mix, memory, base)" ;;
    esac
  done
  command -v node >/dev/null || die "node is needed for the reference peer (scripts/e2e-deps.sh installs it)"
  say "building quibly and quiblyload"
  (cd "$ROOT" && go build -o "$QUIBLY" ./app/cmd/quibly && go build -o "$LOAD" ./app/cmd/quiblyload) || die "go build failed"
  say "installing the reference peer's packages and the report's chart library (npm ci)"
  (cd "$REFDIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed in $REFDIR"
  (cd "$ROOT/bench" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed in $ROOT/bench"
  if "$ROOT/scripts/services.sh" status >/dev/null 2>&1; then SERVICES_WERE_UP=1; fi
  SERVICES_STARTED=1
  "$ROOT/scripts/services.sh" up
  apt_install haproxy
  quibly_up
  ref_up
  cpu_split_setup
}

quibly_up() {
  say "starting Quibly's cluster (3 nodes, MESSAGE_RATE=100000 MESSAGE_BURST=100000)"
  CLUSTER_UP=1
  QUIBLY_SKIP_BUILD=1 LOG_LEVEL=warn QUIBLY_PPROF_BASE_PORT=$PPROF_BASE QUIBLY_CLUSTER_ENV="MESSAGE_RATE=100000 MESSAGE_BURST=100000 CHANNELS_PER_USER_HOUR=100000 CHANNELS_PER_NODE_MINUTE=100000 ${QUIBLY_CLUSTER_ENV:-}" \
    "$ROOT/scripts/cluster.sh" up
}

# fresh_nodes TARGET restarts the target's 3 nodes, so that a memory run starts from
# processes that have never held connections (a runtime keeps freed memory for a while).
fresh_nodes() {
  local i
  if [ "$1" = quibly ]; then
    QUIBLY_SKIP_BUILD=1 "$ROOT/scripts/cluster.sh" down >/dev/null 2>&1
    quibly_up 2>/dev/null
  else
    for i in 1 2 3; do stop_pidfile "ref-$i" "$BDIR/run/ref-$i.pid" node 15; done
    ref_nodes
  fi
}

ref_up() {
  ref_nodes
  ref_lb
}

ref_nodes() {
  local i port pf
  for i in 1 2 3; do
    port=$((REF_BASE_PORT + i))
    port_open "$HOST" "$port" && die "reference peer: port $port is taken (set QUIBLY_REF_BASE_PORT)"
    pf=$BDIR/run/ref-$i.pid
    (cd "$REFDIR" && spawn "$pf" "$BDIR/logs/ref-$i.log" env PORT="$port" SERVER_ID="ref-$i" \
      REDIS_URL="redis://$HOST:$REDIS_PORT" node server.js)
    STARTED+=("$pf")
  done
  for i in 1 2 3; do
    wait_for "reference peer ref-$i" 30 curl -sf -m 2 "http://$HOST:$((REF_BASE_PORT + i))/health" \
      || die "reference peer ref-$i did not start; see $BDIR/logs/ref-$i.log"
  done
}

ref_lb() {
  local i
  cat >"$BDIR/haproxy-ref.cfg" <<EOF
# Written by scripts/bench.sh: the reference peer behind HAProxy, configured like Quibly's.
global
    maxconn 9000
defaults
    mode http
    option redispatch
    retries 2
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    default-server inter 1s fall 2 rise 2
frontend ref
    bind $HOST:$REF_LB_PORT
    default_backend ref
backend ref
    balance leastconn
    cookie REF_NODE insert indirect nocache httponly
    option httpchk GET /health
$(for i in 1 2 3; do echo "    server ref-$i $HOST:$((REF_BASE_PORT + i)) cookie ref-$i check"; done)
EOF
  port_open "$HOST" "$REF_LB_PORT" && die "reference HAProxy: port $REF_LB_PORT is taken (set QUIBLY_REF_LB_PORT)"
  spawn "$BDIR/run/haproxy-ref.pid" "$BDIR/logs/haproxy-ref.log" haproxy -db -f "$BDIR/haproxy-ref.cfg"
  STARTED+=("$BDIR/run/haproxy-ref.pid")
  wait_for "reference HAProxy ($HOST:$REF_LB_PORT)" 20 curl -sf -m 2 "http://$HOST:$REF_LB_PORT/health" \
    || die "reference HAProxy did not start; see $BDIR/logs/haproxy-ref.log"
}

# pids and URLs of each target's nodes
node_pids() {
  local i
  for i in 1 2 3; do
    if [ "$1" = quibly ]; then
      pidfile_pid "$LOCAL/cluster/run/server-$i.pid" "$QUIBLY"
    else
      pidfile_pid "$BDIR/run/ref-$i.pid" node
    fi
  done
}
node_urls() {
  local base=$NODE_BASE_PORT
  [ "$1" = peer ] && base=$REF_BASE_PORT
  echo "http://$HOST:$((base + 1)),http://$HOST:$((base + 2)),http://$HOST:$((base + 3))"
}
lb_url() { if [ "$1" = quibly ]; then echo "http://$HOST:$LB_PORT"; else echo "http://$HOST:$REF_LB_PORT"; fi; }

sum_rss() {
  local t=0 p
  for p in $(node_pids "$1"); do t=$((t + $(rss_kb "$p"))); done
  echo "$t"
}

# ------------------------------------------------------------------------ CPU split

# The load tool and the load balancers would otherwise compete for the two cores as
# equals of every server process. With the split on, they run in a cgroup of their own
# ("load") and everything they measure in another ("servers") at twice its weight:
# under contention the load side gets at most a third of the CPU, and any CPU the
# servers leave idle. CPU_SPLIT_NOTE says what was done, for the report.
CG_SERVERS='' CG_LOAD='' CG_WEIGHT_FILE='' CPU_SPLIT_NOTE="none: every process competes for the cores alone"
cpu_split_setup() {
  [ "$CPU_SPLIT" = 1 ] || { CPU_SPLIT_NOTE="none (BENCH_CPU_SPLIT=0)"; return 0; }
  local root servers_w load_w
  if [ -f /sys/fs/cgroup/cgroup.controllers ] && grep -qw cpu /sys/fs/cgroup/cgroup.controllers; then
    root=/sys/fs/cgroup CG_WEIGHT_FILE=cpu.weight servers_w=200 load_w=100 # cgroup v2
    echo +cpu >"$root/cgroup.subtree_control" 2>/dev/null || true
  elif [ -d /sys/fs/cgroup/cpu ] && [ -f /sys/fs/cgroup/cpu/cpu.shares ]; then
    root=/sys/fs/cgroup/cpu CG_WEIGHT_FILE=cpu.shares servers_w=2048 load_w=1024 # cgroup v1
  else
    CPU_SPLIT_NOTE="none: no cgroup CPU controller here"; warn "CPU split: $CPU_SPLIT_NOTE"; return 0
  fi
  CG_SERVERS=$root/quibly-bench-servers CG_LOAD=$root/quibly-bench-load
  if ! { mkdir -p "$CG_SERVERS" "$CG_LOAD" && echo "$servers_w" >"$CG_SERVERS/$CG_WEIGHT_FILE" &&
    echo "$load_w" >"$CG_LOAD/$CG_WEIGHT_FILE"; } 2>/dev/null; then
    CPU_SPLIT_NOTE="none: cannot create cgroups under $root (not root?)"; warn "CPU split: $CPU_SPLIT_NOTE"
    CG_SERVERS='' CG_LOAD=''; return 0
  fi
  CPU_SPLIT_NOTE="cgroups under $root: the load tool and both HAProxies in one ($CG_WEIGHT_FILE $load_w), the nodes, Kafka, Redis and PostgreSQL in another ($CG_WEIGHT_FILE $servers_w): under contention the load side gets at most a third of the machine's CPU, otherwise what the servers leave"
  say "CPU split: $CPU_SPLIT_NOTE"
  cpu_split_assign
}

# cpu_split_assign (re)places the running processes in their groups; nodes restarted by
# fresh_nodes need it again.
cpu_split_assign() {
  [ -n "$CG_SERVERS" ] || return 0
  local p
  for p in $(pgrep -x quibly; pgrep -f 'node server.js'; pgrep -f kafka.Kafka; pgrep -x redis-server; pgrep -x postgres); do
    echo "$p" >"$CG_SERVERS/cgroup.procs" 2>/dev/null || true
  done
  for p in $(pgrep -x haproxy); do echo "$p" >"$CG_LOAD/cgroup.procs" 2>/dev/null || true; done
}

# in_load_group CMD... runs CMD in the load group (or as is, without a split).
in_load_group() {
  if [ -n "$CG_LOAD" ]; then
    sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG_LOAD" "$@"
  else
    "$@"
  fi
}

cpu_split_remove() {
  [ -n "$CG_SERVERS" ] || return 0
  local g p root=${CG_SERVERS%/*}
  for g in "$CG_SERVERS" "$CG_LOAD"; do
    [ -d "$g" ] || continue
    for p in $(cat "$g/cgroup.procs" 2>/dev/null); do echo "$p" >"$root/cgroup.procs" 2>/dev/null || true; done
    rmdir "$g" 2>/dev/null || true
  done
}

# ---------------------------------------------------------------------- measurements

# memory TARGET RUN: RSS growth of the 3 nodes over IDLE_CONNS idle connections.
memory() {
  local target=$1 run=$2 before after ready=$BDIR/run/idle-ready.json pid connected
  rm -f "$ready"
  fresh_nodes "$target"
  sleep 5
  before=$(sum_rss "$target")
  "$LOAD" -target "$target" -url "$(node_urls "$target")" -conns "$IDLE_CONNS" -channels 100 -users "$USERS" \
    -source-ips 8 -idle -ready-file "$ready" -quiet >"$BDIR/logs/idle-$target.log" 2>&1 &
  pid=$!
  local deadline=$((SECONDS + 300))
  until [ -s "$ready" ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$BDIR/logs/idle-$target.log" >&2; die "idle load run for $target failed"; }
    [ $SECONDS -lt $deadline ] || die "idle load run for $target: connections not up within 300s"
    sleep 1
  done
  sleep 5 # let the connect burst settle (presence, session writes, GC)
  after=$(sum_rss "$target")
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" || true
  connected=$(sed -n 's/.*"connected":\([0-9]*\).*/\1/p' "$ready")
  say "memory $target run $run: RSS $before kB -> $after kB over $connected connections: $(((after - before) * 1024 / connected)) B/conn"
  printf '{"target":"%s","run":%d,"rss_before_kb":%d,"rss_after_kb":%d,"connected":%d,"bytes_per_conn":%d}\n' \
    "$target" "$run" "$before" "$after" "$connected" $(((after - before) * 1024 / connected)) >"$OUT/memory-$target-$run.json"
}

# settle TARGET: before a measurement (TARGET quibly, peer or none), let earlier work
# finish, so that a run does not pay for its predecessor: Quibly's batch writer must
# have stored everything (queue lag 0 on every node) and the machine must be quiet.
settle() {
  local deadline=$((SECONDS + 120)) lag i
  cpu_split_assign
  if [ "$1" = quibly ]; then
    while :; do
      lag=0
      for i in 1 2 3; do
        lag=$((lag + $(curl -sf -m 2 "http://$HOST:$((NODE_BASE_PORT + i))/metrics" | awk '/^quibly_queue_lag_messages /{printf "%d", $2}' || echo 0)))
      done
      [ "$lag" -eq 0 ] && break
      [ $SECONDS -lt $deadline ] || { warn "the batch writer still lags $lag messages after 120 s; measuring anyway"; break; }
      sleep 1
    done
  fi
  # The peer keeps working through a backlog after an overloaded run; wait until the
  # machine is quiet (under a quarter of its CPU busy over a second), at most 60 s.
  deadline=$((SECONDS + 60))
  until [ "$(cpu_busy_pct)" -lt 25 ]; do
    [ $SECONDS -lt $deadline ] || { warn "the machine is still $(cpu_busy_pct)% busy after 60 s; measuring anyway"; break; }
  done
  sleep 2
}

# cpu_busy_pct: the share of all cores busy over the next second, from /proc/stat.
cpu_busy_pct() {
  local a b
  a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
  sleep 1
  b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
  echo "$a $b" | awk '{d = $4 - $2; print (d > 0 ? int(100 * ($3 - $1) / d) : 0)}'
}

# chat TARGET NAME RATE: one fan-out run through the load balancer.
# With PROFILE=1 (Quibly only), node 1 is CPU-profiled through the measured window.
chat() {
  local target=$1 name=$2 rate=$3 extra=()
  settle "$target"
  if [ "$target" = quibly ]; then
    extra+=(-metrics "$(node_urls quibly)")
    [ "${PROFILE:-0}" = 1 ] && extra+=(-pprof "http://$HOST:$((PPROF_BASE + 1))" -pprof-out "$OUT/pprof-$name.pb.gz")
    [ -n "${CHANGES:-}" ] && extra+=(-mix "$CHANGES")
  fi
  in_load_group "$LOAD" -target "$target" -url "$(lb_url "$target")" -conns "$SAT_CONNS" -channels "$SAT_CHANNELS" \
    -senders "$SAT_SENDERS" -window "$SAT_WINDOW" -rate "$rate" -duration "$DURATION" -warmup "$WARMUP" -users "$USERS" \
    -source-ips 4 -label "$name" -cpu "$CPU_PROGRAMS" "${extra[@]}" -out "$OUT/$name.json" -quiet >"$BDIR/logs/$name.txt" 2>&1 \
    || { cat "$BDIR/logs/$name.txt" >&2; die "load run $name failed"; }
  if [ -s "$OUT/pprof-$name.pb.gz" ]; then
    # Flat (where the CPU is spent) and cumulative over Quibly's own functions (which
    # of its paths spend it).
    { go tool pprof -top -nodecount=25 "$QUIBLY" "$OUT/pprof-$name.pb.gz" >"$OUT/pprof-$name.txt" &&
      go tool pprof -top -cum -nodecount=25 -show=github.com/quibly "$QUIBLY" "$OUT/pprof-$name.pb.gz" \
        >"$OUT/pprof-$name-quibly.txt"; } 2>/dev/null || warn "could not read the profile of $name"
  fi
  say "$name: $(grep -E '^throughput' "$BDIR/logs/$name.txt" | sed 's/  */ /g'); $(grep -E '^send→' "$BDIR/logs/$name.txt" | awk '{printf "%s p50 %s p99 %s; ", $1, $4, $6}')"
}

# ------------------------------------------------------------ against a revision

# base_build builds REV into the release bench-base and the working tree's binary into
# bench-head; each release gets a schema and a Kafka topic of its own (release env), so
# neither pays for the other's rows and an older binary never sees a newer schema.
base_build() {
  local rev=$1 src=$BDIR/base-src db psql v
  rm -rf "$src" && mkdir -p "$src" "$LOCAL/releases/bench-base" "$LOCAL/releases/bench-head"
  git -C "$ROOT" archive "$rev" | tar -x -C "$src" || die "git archive $rev failed"
  say "building Quibly at $rev ($(git -C "$ROOT" log -1 --format=%s "$rev"))"
  (cd "$src" && go build -o "$LOCAL/releases/bench-base/quibly" ./app/cmd/quibly) || die "go build of $rev failed"
  cp "$QUIBLY" "$LOCAL/releases/bench-head/quibly"
  db=$LOCAL_DATABASE_URL
  psql=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -name psql -path '*/bin/*' | sort -V | tail -n1)
  [ -x "$psql" ] || die "psql not found (scripts/services.sh installs PostgreSQL)"
  for v in base head; do
    "$psql" -X -q -v ON_ERROR_STOP=1 "$db" -c "DROP SCHEMA IF EXISTS bench_$v CASCADE" -c "CREATE SCHEMA bench_$v" \
      || die "cannot make schema bench_$v"
    printf 'DATABASE_URL=%s&search_path=bench_%s\nKAFKA_TOPIC=quibly.bench-%s-%s\n' "$db" "$v" "$v" "$(date +%s)" \
      >"$LOCAL/releases/bench-$v/env"
  done
}

# base_switch VARIANT restarts Quibly's cluster on the release bench-VARIANT.
base_switch() {
  QUIBLY_SKIP_BUILD=1 "$ROOT/scripts/cluster.sh" down >/dev/null 2>&1
  QUIBLY_NODE_VERSION=bench-$1 quibly_up >/dev/null
}

base_compare() {
  local rev sat rate r v order
  rev=$(git -C "$ROOT" rev-parse --short "$BASE") || die "BENCH_BASE: '$BASE' is not a git revision"
  base_build "$rev"
  if ! ls "$OUT"/saturation-quibly-*.json >/dev/null 2>&1; then
    for ((r = 1; r <= RUNS; r++)); do chat quibly "saturation-quibly-$r" 0; done
  fi
  sat=$(median_sends "$OUT"/saturation-quibly-*.json)
  rate=$((sat / 2))
  [ "$rate" -ge 1 ] || rate=1
  printf '{"rev":"%s","subject":"%s","tree":"%s","rate":%d}\n' "$rev" \
    "$(git -C "$ROOT" log -1 --format=%s "$rev" | sed 's/["\\]/ /g')" \
    "$(git -C "$ROOT" describe --always --dirty 2>/dev/null)" "$rate" >"$OUT/base.info"
  say "the working tree against $rev at $rate messages/s (50 % of the working tree's saturation)"
  for ((r = 1; r <= RUNS; r++)); do
    # Alternate which goes first, so a drift of the machine does not favour one side.
    order="head base"
    [ $((r % 2)) = 0 ] && order="base head"
    for v in $order; do
      base_switch "$v"
      chat quibly "base-$v-$r" "$rate"
    done
  done
  fresh_nodes quibly >/dev/null 2>&1 # back to app/bin/quibly for what follows
}

# mix_compare: messages alone against messages with a share of changes (BENCH_MIX), at
# 50 % of Quibly's saturation, runs alternating.
mix_compare() {
  local sat rate r
  if ! ls "$OUT"/saturation-quibly-*.json >/dev/null 2>&1; then
    for ((r = 1; r <= RUNS; r++)); do chat quibly "saturation-quibly-$r" 0; done
  fi
  sat=$(median_sends "$OUT"/saturation-quibly-*.json)
  rate=$((sat / 2))
  [ "$rate" -ge 1 ] || rate=1
  printf '{"mix":%s,"rate":%d}\n' "$MIX" "$rate" >"$OUT/mix.info"
  say "messages alone against $MIX of sends changing messages, at $rate sends/s"
  for ((r = 1; r <= RUNS; r++)); do
    if [ $((r % 2)) = 1 ]; then
      chat quibly "mix-plain-$r" "$rate"
      CHANGES=$MIX chat quibly "mix-changes-$r" "$rate"
    else
      CHANGES=$MIX chat quibly "mix-changes-$r" "$rate"
      chat quibly "mix-plain-$r" "$rate"
    fi
  done
}

# median_field FILES... FIELD: the median of a numeric JSON field over files.
median_sends() {
  node -e 'const fs=require("fs");const v=process.argv.slice(1).map(f=>JSON.parse(fs.readFileSync(f)).sends_per_s).sort((a,b)=>a-b);console.log(Math.round(v[Math.floor(v.length/2)]))' "$@"
}

main() {
  local t0=$SECONDS r target
  setup
  if part raw; then
  settle none
  say "raw limits: Redis pub/sub and loopback websocket echo"
  spawn "$BDIR/run/echo.pid" "$BDIR/logs/echo.log" "$LOAD" -mode echo-server -listen "$HOST:$ECHO_PORT"
  STARTED+=("$BDIR/run/echo.pid")
  wait_for "echo server" 10 port_open "$HOST" "$ECHO_PORT"
  for ((r = 1; r <= RUNS; r++)); do
    "$LOAD" -mode redis -redis "$HOST:$REDIS_PORT" -publishers 4 -subscribers 3 -window 64 -duration 5s -quiet \
      -out "$OUT/raw-redis-$r.json"
    "$LOAD" -mode echo -url "ws://$HOST:$ECHO_PORT/" -conns 100 -window 8 -duration 5s -warmup 1s -quiet \
      -out "$OUT/raw-echo-$r.json"
  done
  fi
  if part store; then
  settle none
  say "batch writer against raw COPY (PostgreSQL, fresh schema per run)"
  local db
  db=$LOCAL_DATABASE_URL
  for ((r = 1; r <= RUNS; r++)); do
    "$LOAD" -mode store -database-url "$db" -rows 100000 -batch 1000 -quiet -out "$OUT/store-$r.json"
  done
  fi
  if part fanout; then
  local sat pct rate
  for target in quibly peer; do
    for ((r = 1; r <= RUNS; r++)); do chat "$target" "saturation-$target-$r" 0; done
    sat=$(median_sends "$OUT"/saturation-"$target"-*.json)
    for pct in $SWEEP; do
      rate=$((sat * pct / 100))
      [ "$rate" -ge 1 ] || rate=1
      say "$target at $pct % of its saturation: $rate messages/s"
      for ((r = 1; r <= RUNS; r++)); do
        PROFILE=$([ "$pct" = 50 ] && [ "$r" = 1 ] && echo 1 || echo 0) chat "$target" "sweep-$target-$pct-$r" "$rate"
      done
    done
  done
  fi
  if part mix; then
    mix_compare
  fi
  if part base; then
    base_compare
  fi
  if part memory; then
  for target in quibly peer; do
    for ((r = 1; r <= RUNS; r++)); do memory "$target" "$r"; done
  done
  fi
  local took=$((SECONDS - t0))
  cut -d' ' -f1-3 /proc/loadavg >"$OUT/loadavg"
  local note=""
  [ "$ONLY" = "raw store fanout memory" ] || note="BENCH_ONLY=\"$ONLY\" re-run; the other parts are from an earlier run"
  (cd "$ROOT" && node bench/report.mjs --dir "$OUT" --doc "$DOC" --seconds "$took" --note "$note" --cpu-split "$CPU_SPLIT_NOTE" \
    --shape "$SAT_CONNS connections, $SAT_CHANNELS channels, $SAT_SENDERS senders x $SAT_WINDOW in flight; $IDLE_CONNS idle connections; $RUNS runs")
  say "make bench took ${took}s; results: $OUT/results.json${DOC:+, figures: $DOC}"
}

main "$@"
