#!/usr/bin/env bash
# Runs the official Engine.IO and Socket.IO protocol test suites (vendored unchanged
# under app/test/suites/, see its README) against Quibly's protocol layers, served by
# app/test/suites/adapter on 127.0.0.1:3000, the address the suites call.
# Output: test-output/protocol-suites/<suite>.txt. Fails when any suite test fails.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

command -v node >/dev/null || die "Node.js 20+ is required for the protocol suites"
suites=$ROOT/app/test/suites
out=${TEST_OUTPUT_DIR:-$ROOT/test-output}/protocol-suites
mkdir -p "$out"

stamp=$suites/node_modules/.quibly-lock.json
if ! cmp -s "$suites/package-lock.json" "$stamp"; then
  say "installing the protocol suites' packages (npm ci)"
  (cd "$suites" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$suites/package-lock.json" "$stamp"
fi

port_open 127.0.0.1 3000 && die "127.0.0.1:3000 is taken; the suites need it for the adapter"
go build -o "$ROOT/app/bin/suite-adapter" ./app/test/suites/adapter
pidfile=$out/adapter.pid
spawn "$pidfile" "$out/adapter.log" "$ROOT/app/bin/suite-adapter" -addr 127.0.0.1:3000
trap 'stop_pidfile "protocol suite adapter" "$pidfile" suite-adapter 5' EXIT
wait_for "the protocol suite adapter" 20 port_open 127.0.0.1 3000 || die "the adapter did not start (see $out/adapter.log)"

rc=0
for suite in engine.io-protocol socket.io-protocol; do
  say "running the official $suite test suite"
  # "localhost" must mean 127.0.0.1, where the adapter listens.
  if (cd "$suites/$suite" && NODE_OPTIONS=--dns-result-order=ipv4first \
      "$suites/node_modules/.bin/mocha" --reporter spec --exit test-suite.js) 2>&1 | tee "$out/$suite.txt"; then
    :
  else
    rc=1
  fi
done
exit $rc
