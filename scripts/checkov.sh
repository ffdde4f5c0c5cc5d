#!/usr/bin/env bash
# checkov, the IaC scanner the infra tests run over each tier's Terraform plan, pinned
# and installed from PyPI into a virtualenv under $LOCAL/checkov.
#
#   scripts/checkov.sh install   install it unless the pinned version is there (about a minute, once)
#   scripts/checkov.sh env       print the export line the tests read: eval "$(scripts/checkov.sh env)"
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

CHECKOV_VERSION=3.3.30
VENV=$LOCAL/checkov/venv

install() {
  if [ "$(cat "$VENV/.version" 2>/dev/null)" = "$CHECKOV_VERSION" ] && [ -x "$VENV/bin/checkov" ]; then
    return 0
  fi
  command -v python3 >/dev/null || die "python3 is needed for checkov"
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  say "installing checkov $CHECKOV_VERSION into $VENV (about a minute, once)"
  rm -rf "$VENV"
  python3 -m venv "$VENV" || die "could not create a virtualenv in $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION" \
    || die "pip could not install checkov==$CHECKOV_VERSION"
  echo "$CHECKOV_VERSION" >"$VENV/.version"
}

case ${1:-} in
  install) install ;;
  env) echo "export QUIBLY_CHECKOV=$VENV/bin/checkov" ;;
  -h | --help | help) usage_text ;;
  *) usage_text >&2; exit 2 ;;
esac
