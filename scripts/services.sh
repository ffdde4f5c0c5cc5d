#!/usr/bin/env bash
# Local backing services for Quibly's integration tests and local cluster:
# Redis, PostgreSQL and Apache Kafka (KRaft), all on 127.0.0.1, all under $LOCAL.
#
#   scripts/services.sh up [SVC...]     install what is missing, start what is not running, wait until each answers
#   scripts/services.sh down [SVC...]   stop what `up` started (pid files under .local/)
#   scripts/services.sh restart SVC...  stop and start again, data kept (SVC: redis, postgres, kafka)
#   scripts/services.sh status   show each service; exit 0 only when all three answer
#   scripts/services.sh env      print the export lines the tests read: eval "$(scripts/services.sh env)"
#   scripts/services.sh kafka-topics ARGS...   run Kafka's TopicCommand against the local broker
#
# Ports and versions (override through the environment):
#   QUIBLY_REDIS_PORT=16379  QUIBLY_PG_PORT=15432  QUIBLY_KAFKA_PORT=19092  QUIBLY_KAFKA_CONTROLLER_PORT=19093
#   QUIBLY_KAFKA_VERSION=3.9.2 (the Kafka jars come from Maven Central)
#   QUIBLY_REDIS_PASSWORD    optional: Redis requires this password (never printed)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

HOST=127.0.0.1
KAFKA_VERSION=${QUIBLY_KAFKA_VERSION:-3.9.2}
# The KRaft cluster id: base64url of the 16 bytes "QuiblyLocalKafka" (fixed, so a
# re-format after a wipe gives the same id).
KAFKA_CLUSTER_ID=UXVpYmx5TG9jYWxLYWZrYQ

DATABASE_URL=$LOCAL_DATABASE_URL

REDIS_DIR=$LOCAL/redis
PG_DIR=$LOCAL/postgres
PG_DATA=$PG_DIR/data
PG_LOG=$PG_DIR/postgres.log
KAFKA_DIR=$LOCAL/kafka
KAFKA_LIBS=$KAFKA_DIR/libs
KAFKA_LOG=$KAFKA_DIR/logs/server.log
KAFKA_OUT=$KAFKA_DIR/logs/kafka.out
KAFKA_PID=$KAFKA_DIR/kafka.pid

usage() { usage_text; }

# ---------------------------------------------------------------------------- Redis

redis_cli() {
  # The password travels in the environment, never on a command line or screen.
  REDISCLI_AUTH=${QUIBLY_REDIS_PASSWORD:-} redis-cli --no-auth-warning -h "$HOST" -p "$REDIS_PORT" "$@"
}
redis_ok() { [ "$(redis_cli ping 2>/dev/null)" = PONG ]; }

redis_up() {
  apt_install redis-server redis-tools
  if redis_ok; then say "Redis already answers on $HOST:$REDIS_PORT"; return 0; fi
  port_open "$HOST" "$REDIS_PORT" && die "Redis: port $REDIS_PORT is taken by something that does not answer PING (see: ss -ltnp 'sport = :$REDIS_PORT')"
  mkdir -p "$REDIS_DIR/data"
  local conf=$REDIS_DIR/redis.conf
  (
    umask 077 # the file may hold the password
    cat >"$conf" <<EOF
# Written by scripts/services.sh; rewritten on every 'up'.
bind $HOST
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile $REDIS_DIR/redis.pid
logfile $REDIS_DIR/redis.log
dir $REDIS_DIR/data
appendonly yes
appendfsync everysec
save ""
EOF
    if [ -n "${QUIBLY_REDIS_PASSWORD:-}" ]; then echo "requirepass $QUIBLY_REDIS_PASSWORD" >>"$conf"; fi
  )
  say "starting Redis on $HOST:$REDIS_PORT (log: $REDIS_DIR/redis.log)"
  redis-server "$conf" >>"$REDIS_DIR/redis.log" 2>&1 \
    || die "Redis did not start; see $REDIS_DIR/redis.log"
  wait_for "Redis ($HOST:$REDIS_PORT)" 20 redis_ok \
    || die "Redis did not answer PING on $HOST:$REDIS_PORT within 20s; see $REDIS_DIR/redis.log"
}

redis_down() { stop_pidfile Redis "$REDIS_DIR/redis.pid" "redis-server $HOST:$REDIS_PORT" 20; }

# ----------------------------------------------------------------------- PostgreSQL

pg_bin() {
  local d
  d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

pg_as() { runuser -u postgres -- "$@"; }

pg_ok() {
  local bin=$1
  "$bin/pg_isready" -q -h "$HOST" -p "$PG_PORT" -d "$PG_DB" -U "$PG_USER" &&
    [ "$(PGPASSWORD=$PG_PASSWORD "$bin/psql" -X -A -t -w -h "$HOST" -p "$PG_PORT" -U "$PG_USER" -d "$PG_DB" -c 'select 1' 2>/dev/null)" = 1 ]
}

pg_check_access() {
  # The server runs as `postgres`, which must be able to walk every directory down to
  # $PG_DIR (a repository under a private home or a 0700 /tmp folder breaks this).
  if ! pg_as test -w "$PG_DIR" || ! pg_as test -x "$PG_DIR"; then
    namei -l "$PG_DIR" >&2 || true
    die "PostgreSQL: user 'postgres' cannot reach $PG_DIR (every directory above needs o+x, see above); give the folders o+x or set QUIBLY_LOCAL to a folder it can reach"
  fi
}

pg_up() {
  local bin
  bin=$(pg_bin) || { apt_install postgresql; bin=$(pg_bin) || die "PostgreSQL: no server binaries under /usr/lib/postgresql after installing"; }
  if pg_ok "$bin"; then say "PostgreSQL already answers on $HOST:$PG_PORT (database $PG_DB)"; return 0; fi
  if ! id postgres >/dev/null 2>&1; then
    say "creating the system user 'postgres'"
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
  mkdir -p "$PG_DIR"
  chown postgres:postgres "$PG_DIR"
  chmod 0750 "$PG_DIR"
  pg_check_access

  if [ ! -s "$PG_DATA/PG_VERSION" ]; then
    say "creating the PostgreSQL cluster in $PG_DATA"
    rm -rf "$PG_DATA"
    pg_as "$bin/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
      --auth-local=peer --auth-host=scram-sha-256 >"$PG_DIR/initdb.log" 2>&1 \
      || die "PostgreSQL: initdb failed; see $PG_DIR/initdb.log"
    echo "include_if_exists = 'quibly.conf'" | pg_as tee -a "$PG_DATA/postgresql.conf" >/dev/null
  fi
  # Our settings, rewritten on every 'up'. No Unix socket: TCP on 127.0.0.1 only.
  pg_as tee "$PG_DATA/quibly.conf" >/dev/null <<EOF
# Written by scripts/services.sh; rewritten on every 'up'.
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 200
shared_buffers = 128MB
EOF
  if [ ! -e "$PG_DATA/.quibly-bootstrapped" ]; then
    # Role and database through single-user mode, so no superuser login is ever opened.
    say "creating role $PG_USER and database $PG_DB"
    pg_as "$bin/postgres" --single -D "$PG_DATA" postgres >"$PG_DIR/bootstrap.log" 2>&1 <<EOF \
      || die "PostgreSQL: creating the role and database failed; see $PG_DIR/bootstrap.log"
CREATE ROLE $PG_USER LOGIN CREATEDB CREATEROLE PASSWORD '$PG_PASSWORD';
CREATE DATABASE $PG_DB OWNER $PG_USER;
EOF
    grep -q ERROR "$PG_DIR/bootstrap.log" && die "PostgreSQL: creating the role and database failed; see $PG_DIR/bootstrap.log"
    pg_as touch "$PG_DATA/.quibly-bootstrapped" "$PG_DATA/.quibly-createrole"
  fi
  if [ ! -e "$PG_DATA/.quibly-createrole" ]; then
    # Like RDS's master user, the test login creates the app's role (store.SetupRole).
    say "letting role $PG_USER create roles"
    echo "ALTER ROLE $PG_USER CREATEROLE;" | pg_as "$bin/postgres" --single -D "$PG_DATA" postgres >"$PG_DIR/createrole.log" 2>&1 \
      && ! grep -q ERROR "$PG_DIR/createrole.log" || die "PostgreSQL: ALTER ROLE $PG_USER CREATEROLE failed; see $PG_DIR/createrole.log"
    pg_as touch "$PG_DATA/.quibly-createrole"
  fi
  port_open "$HOST" "$PG_PORT" && die "PostgreSQL: port $PG_PORT is taken by something that does not accept the $PG_USER login (see: ss -ltnp 'sport = :$PG_PORT')"
  say "starting PostgreSQL on $HOST:$PG_PORT (log: $PG_LOG)"
  pg_as touch "$PG_LOG"
  pg_as "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null \
    || die "PostgreSQL did not start; see $PG_LOG"
  wait_for "PostgreSQL ($HOST:$PG_PORT, database $PG_DB)" 30 pg_ok "$bin" \
    || die "PostgreSQL does not accept queries as $PG_USER on $HOST:$PG_PORT; see $PG_LOG"
}

pg_down() {
  local bin
  bin=$(pg_bin) || return 0
  [ -s "$PG_DATA/postmaster.pid" ] || return 0
  if pg_as "$bin/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
    say "stopping PostgreSQL"
    pg_as "$bin/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null || die "PostgreSQL did not stop; see $PG_LOG"
  fi
}

# ---------------------------------------------------------------------------- Kafka

kafka_java() {
  # Runs a class from the Kafka jars with a quiet log4j setup (warnings to stderr).
  local class=$1; shift
  java -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j.configuration="file:$KAFKA_DIR/tools-log4j.properties" \
    -cp "$KAFKA_LIBS/*" "$class" "$@"
}

kafka_topics() { kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$KAFKA_PORT" "$@"; }

# A real client call: the admin client lists the topics (a Metadata request).
kafka_ok() { port_open "$HOST" "$KAFKA_PORT" && kafka_topics --list >/dev/null 2>&1; }

kafka_fetch() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  if [ "$(cat "$KAFKA_LIBS/.version" 2>/dev/null)" = "$KAFKA_VERSION" ]; then return 0; fi
  command -v mvn >/dev/null || apt_install maven
  say "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS (once)"
  local tmp=$KAFKA_DIR/libs.tmp
  rm -rf "$tmp"
  mkdir -p "$KAFKA_DIR"
  mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$KAFKA_DIR/mvn.log" 2>&1 \
    || { tail -n 30 "$KAFKA_DIR/mvn.log" >&2; die "Kafka: Maven could not fetch kafka_2.13:$KAFKA_VERSION; see $KAFKA_DIR/mvn.log"; }
  [ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || die "Kafka: kafka_2.13-$KAFKA_VERSION.jar missing after the Maven fetch; see $KAFKA_DIR/mvn.log"
  echo "$KAFKA_VERSION" >"$tmp/.version"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
}

kafka_write_config() {
  mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/logs"
  cat >"$KAFKA_DIR/server.properties" <<EOF
# Written by scripts/services.sh; rewritten on every 'up'. One node, broker and controller (KRaft).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DIR/data
# Topics are created by the application (as on MSK), never by a stray produce.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
group.initial.rebalance.delay.ms=0
log.retention.hours=168
EOF
  cat >"$KAFKA_DIR/log4j.properties" <<EOF
# Written by scripts/services.sh: the broker logs to $KAFKA_LOG.
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$KAFKA_LOG
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=3
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
EOF
  cat >"$KAFKA_DIR/tools-log4j.properties" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

kafka_up() {
  kafka_fetch
  local pid
  if pid=$(pidfile_pid "$KAFKA_PID" kafka.Kafka); then
    if kafka_ok; then say "Kafka already answers on $HOST:$KAFKA_PORT"; return 0; fi
    say "Kafka (pid $pid) is running; waiting for it to answer"
  elif kafka_ok; then
    say "Kafka already answers on $HOST:$KAFKA_PORT (not started by this script)"; return 0
  else
    port_open "$HOST" "$KAFKA_PORT" && die "Kafka: port $KAFKA_PORT is taken by something that does not answer as a Kafka broker (see: ss -ltnp 'sport = :$KAFKA_PORT')"
    port_open "$HOST" "$KAFKA_CONTROLLER_PORT" && die "Kafka: controller port $KAFKA_CONTROLLER_PORT is taken (see: ss -ltnp 'sport = :$KAFKA_CONTROLLER_PORT')"
    kafka_write_config
    if [ ! -s "$KAFKA_DIR/data/meta.properties" ]; then
      say "formatting Kafka storage in $KAFKA_DIR/data (cluster id $KAFKA_CLUSTER_ID)"
      kafka_java kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" -c "$KAFKA_DIR/server.properties" \
        --ignore-formatted >"$KAFKA_DIR/logs/format.log" 2>&1 \
        || die "Kafka: formatting the storage failed; see $KAFKA_DIR/logs/format.log"
    fi
    say "starting Kafka $KAFKA_VERSION (KRaft) on $HOST:$KAFKA_PORT, controller $HOST:$KAFKA_CONTROLLER_PORT (log: $KAFKA_LOG)"
    spawn "$KAFKA_PID" "$KAFKA_OUT" \
      java -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExplicitGCInvokesConcurrent \
      -Djava.awt.headless=true -Dkafka.logs.dir="$KAFKA_DIR/logs" \
      -Dlog4j.configuration="file:$KAFKA_DIR/log4j.properties" \
      -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_DIR/server.properties"
  fi
  kafka_wait
}

# kafka_wait waits until the broker answers an admin request; it gives up at once when
# the broker this script started has exited, showing the end of its log.
kafka_wait() {
  local deadline=$((SECONDS + 120))
  until kafka_ok; do
    if [ -s "$KAFKA_PID" ] && ! pidfile_pid "$KAFKA_PID" kafka.Kafka >/dev/null; then
      tail -n 15 "$KAFKA_LOG" "$KAFKA_OUT" >&2 2>/dev/null || true
      die "Kafka exited at start; see $KAFKA_LOG and $KAFKA_OUT"
    fi
    [ $SECONDS -lt $deadline ] || die "Kafka does not answer admin requests on $HOST:$KAFKA_PORT within 120s; see $KAFKA_LOG and $KAFKA_OUT"
    sleep 0.5
  done
  say "Kafka ($HOST:$KAFKA_PORT, topics listed) is up"
}

kafka_down() { stop_pidfile Kafka "$KAFKA_PID" kafka.Kafka 60; }

# --------------------------------------------------------------------------- commands

print_env() {
  cat <<EOF
export QUIBLY_TEST_REDIS=$HOST:$REDIS_PORT
export QUIBLY_TEST_DATABASE_URL='$DATABASE_URL'
export QUIBLY_TEST_KAFKA=$HOST:$KAFKA_PORT
EOF
}

summary() {
  cat >&2 <<EOF
  Redis       $HOST:$REDIS_PORT   log $REDIS_DIR/redis.log
  PostgreSQL  $DATABASE_URL   log $PG_LOG
  Kafka       $HOST:$KAFKA_PORT (controller $HOST:$KAFKA_CONTROLLER_PORT)   log $KAFKA_LOG
Tests: eval "\$(scripts/services.sh env)"; stop them: scripts/services.sh down
EOF
}

status() {
  local bad=0 bin pid
  if redis_ok; then echo "Redis       up    $HOST:$REDIS_PORT"; else echo "Redis       down  $HOST:$REDIS_PORT"; bad=1; fi
  if bin=$(pg_bin) && pg_ok "$bin"; then echo "PostgreSQL  up    $HOST:$PG_PORT/$PG_DB"; else echo "PostgreSQL  down  $HOST:$PG_PORT/$PG_DB"; bad=1; fi
  if [ -d "$KAFKA_LIBS" ] && kafka_ok; then
    echo "Kafka       up    $HOST:$KAFKA_PORT"
  elif pid=$(pidfile_pid "$KAFKA_PID" kafka.Kafka); then
    echo "Kafka       starting (pid $pid, not answering yet)  $HOST:$KAFKA_PORT"; bad=1
  else
    echo "Kafka       down  $HOST:$KAFKA_PORT"; bad=1
  fi
  return $bad
}

# still_answers NAME fails when the service still answers after its stop: it was
# started by another checkout (another $LOCAL), whose pid files this one cannot see.
still_answers() {
  local port
  case $1 in redis) port=$REDIS_PORT ;; postgres) port=$PG_PORT ;; kafka) port=$KAFKA_PORT ;; esac
  if port_open "$HOST" "$port"; then
    die "$1 still answers on $HOST:$port after stopping what $LOCAL started: another checkout (or QUIBLY_LOCAL) started it; stop it from there"
  fi
}

# services NAME... checks the names given (all three when none) and prints them
# in start order; stopping goes the other way.
services() {
  local name
  [ $# -gt 0 ] || set -- redis postgres kafka
  for name in "$@"; do
    case $name in redis | postgres | kafka) echo "$name" ;; *) die "unknown service '$name' (redis, postgres or kafka)" ;; esac
  done
}

case ${1:-} in
  up)
    shift
    mkdir -p "$LOCAL"
    for svc in $(services "$@"); do "${svc/postgres/pg}_up"; done
    say "services are up"
    summary
    ;;
  down)
    shift
    for svc in $(services "$@" | tac); do "${svc/postgres/pg}_down"; still_answers "$svc"; done
    say "services are stopped (data stays in $LOCAL; remove $LOCAL/{redis,postgres,kafka} to start afresh)"
    ;;
  restart)
    # A stop and a start with the data kept: what the failure tests use.
    shift
    [ $# -gt 0 ] || die "restart needs the services to restart: redis, postgres and/or kafka"
    for svc in $(services "$@"); do "${svc/postgres/pg}_down"; still_answers "$svc"; "${svc/postgres/pg}_up"; done
    ;;
  status) status ;;
  env) print_env ;;
  kafka-topics) shift; kafka_topics "$@" ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
