#!/usr/bin/env bash
# Installs what the end-to-end tests need: Chromium from Debian for the browser
# test and the pinned socket.io-client / playwright-core from the npm lock file.
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
