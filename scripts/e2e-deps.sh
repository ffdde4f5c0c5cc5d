#!/usr/bin/env bash
# Installs what the end-to-end tests need: Chromium from Debian for the browser
# test, the pinned socket.io-client / playwright-core from the npm lock file, and
# python-socketio (pinned) in a virtualenv.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

command -v node >/dev/null || die "Node.js 20+ is required for the end-to-end tests"
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || apt_install chromium

e2e=$ROOT/app/test/e2e
# npm ci runs again only when the lock file changed since the last install.
stamp=$e2e/node_modules/.quibly-lock.json
if ! cmp -s "$e2e/package-lock.json" "$stamp"; then
  say "installing the end-to-end test packages (npm ci)"
  (cd "$e2e" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$e2e/package-lock.json" "$stamp"
fi

# python-socketio, the Python client users run, in a virtualenv of its own; pip runs
# again only when the pinned requirements changed.
venv=$e2e/.venv
req=$e2e/python/requirements.txt
if ! cmp -s "$req" "$venv/.quibly-requirements.txt"; then
  python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
  say "installing python-socketio for the end-to-end tests"
  python3 -m venv "$venv" || die "could not create a virtualenv in $venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" || die "pip could not install $req"
  cp "$req" "$venv/.quibly-requirements.txt"
fi
