# Shared helpers for the scripts in this folder; source it, don't run it.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT
# Everything the local scripts start or download lives here, outside git.
LOCAL=${QUIBLY_LOCAL:-$ROOT/.local}
export LOCAL

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
