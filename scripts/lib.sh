# Shared helpers for the scripts in this folder; source it, don't run it.
# shellcheck shell=bash
# The settings below are for the scripts that source this file (SC2034: unused here).
# shellcheck disable=SC2034

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT
# Everything the local scripts start or download lives here, outside git.
LOCAL=${QUIBLY_LOCAL:-$ROOT/.local}
export LOCAL

# The local ports, in one place (each can be moved with its QUIBLY_ variable).
REDIS_PORT=${QUIBLY_REDIS_PORT:-16379}
PG_PORT=${QUIBLY_PG_PORT:-15432}
KAFKA_PORT=${QUIBLY_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${QUIBLY_KAFKA_CONTROLLER_PORT:-19093}
AWS_PORT=${QUIBLY_AWS_PORT:-15000}
NODE_BASE_PORT=${QUIBLY_NODE_BASE_PORT:-5000} # server-N listens on NODE_BASE_PORT + N
LB_PORT=${QUIBLY_LB_PORT:-8080}
LB_RR_PORT=${QUIBLY_LB_RR_PORT:-8081}
LB_STATS_PORT=${QUIBLY_LB_STATS_PORT:-8404}
# The local PostgreSQL's database, role and password (scripts/services.sh creates them),
# and the URL of that database: one definition for every script that needs it.
PG_DB=quibly PG_USER=quibly PG_PASSWORD=quibly
LOCAL_DATABASE_URL="postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB?sslmode=disable"
# The benchmark's peer cluster (ref-N on REF_BASE_PORT + N, its HAProxy) and echo server.
REF_BASE_PORT=${QUIBLY_REF_BASE_PORT:-7000}
REF_LB_PORT=${QUIBLY_REF_LB_PORT:-8090}
ECHO_PORT=${QUIBLY_ECHO_PORT:-7990}

# usage_text prints the calling script's header comment, its usage, without the '# '.
usage_text() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

say()  { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

# apt_install PKG... installs the Debian packages that are missing, updating the
# package lists once per run and only when something has to be installed.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "need root to install ${missing[*]} (run: sudo apt-get install ${missing[*]})"
  say "installing Debian packages: ${missing[*]}"
  if [ -z "${QUIBLY_APT_UPDATED:-}" ]; then
    apt-get update -qq || die "apt-get update failed"
    export QUIBLY_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

# pip_venv VENV STAMP WHAT PACKAGE... installs the pinned PyPI packages into the
# virtualenv VENV unless it already holds them (VENV/.versions says STAMP); WHAT names
# them in messages.
pip_venv() {
  local venv=$1 stamp=$2 what=$3
  shift 3
  [ "$(cat "$venv/.versions" 2>/dev/null)" = "$stamp" ] && return 0
  command -v python3 >/dev/null || die "python3 is needed for $what"
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  say "installing $what into $venv (about a minute, once)"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "could not create a virtualenv in $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$@" || die "pip could not install $*"
  echo "$stamp" >"$venv/.versions"
}

# wait_for DESCRIPTION SECONDS COMMAND... retries COMMAND until it succeeds.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
  say "$what is up"
}

# port_open HOST PORT succeeds when something accepts TCP connections there.
port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# pidfile_pid PIDFILE [MATCH] prints the pid in PIDFILE when that process is alive
# and, when MATCH is given, its command line contains MATCH (so a stale pid file
# whose number was reused by someone else's process is never acted on).
pidfile_pid() {
  local file=$1 match=${2:-} pid
  [ -s "$file" ] || return 1
  pid=$(head -n1 "$file" 2>/dev/null | tr -dc '0-9')
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  if [ -n "$match" ]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$match" || return 1
  fi
  echo "$pid"
}

# stop_pidfile NAME PIDFILE MATCH SECONDS sends SIGTERM to the process of PIDFILE
# (see pidfile_pid), waits up to SECONDS for it to exit, then SIGKILLs it, and
# removes the pid file. Does nothing when the process is not running.
stop_pidfile() {
  local name=$1 file=$2 match=$3 secs=$4 pid deadline
  if ! pid=$(pidfile_pid "$file" "$match"); then
    rm -f "$file"
    return 0
  fi
  say "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + secs))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      warn "$name (pid $pid) did not exit within ${secs}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$file"
}

# spawn PIDFILE LOG COMMAND... starts COMMAND in the background in a session of its
# own (a Ctrl-C in the calling shell does not reach it), stdin from /dev/null, stdout
# and stderr appended to LOG, and returns once PIDFILE holds the pid of COMMAND itself.
spawn() {
  local pidfile=$1 log=$2 i
  shift 2
  rm -f "$pidfile"
  # shellcheck disable=SC2016 # $$, $0 and $@ belong to the inner shell
  setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pidfile" "$@" </dev/null >>"$log" 2>&1 &
  for ((i = 0; i < 50; i++)); do
    [ -s "$pidfile" ] && return 0
    sleep 0.1
  done
  die "could not start $1 (no pid file $pidfile; see $log)"
}
