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

install() { pip_venv "$VENV" "$CHECKOV_VERSION" "checkov $CHECKOV_VERSION" "checkov==$CHECKOV_VERSION"; }

case ${1:-} in
  install) install ;;
  env) echo "export QUIBLY_CHECKOV=$VENV/bin/checkov" ;;
  -h | --help | help) usage_text ;;
  *) usage_text >&2; exit 2 ;;
esac
