#!/usr/bin/env bash
# Static checks (make lint, part of make test): staticcheck over both Go modules,
# and ShellCheck (warnings and errors) over every script. Both are pinned and installed
# here: staticcheck by `go install` into $LOCAL/bin (the Go module proxy), shellcheck
# from Debian.
#
#   scripts/lint.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

STATICCHECK_VERSION=v0.6.1
staticcheck=$LOCAL/bin/staticcheck

if ! "$staticcheck" -version 2>/dev/null | grep -qF "(${STATICCHECK_VERSION#v})"; then
  say "installing staticcheck $STATICCHECK_VERSION into $LOCAL/bin"
  mkdir -p "$LOCAL/bin"
  GOBIN=$LOCAL/bin go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION" || die "go install staticcheck failed"
fi
apt_install shellcheck

rc=0
for module in app infra; do
  say "staticcheck $STATICCHECK_VERSION: $module"
  (cd "$ROOT/$module" && "$staticcheck" ./...) || rc=1
done
mapfile -t scripts < <(cd "$ROOT" && { find scripts -name '*.sh' -type f; echo .ci/run; } | sort)
say "shellcheck $(shellcheck --version | sed -n 's/^version: //p'): ${#scripts[@]} scripts"
(cd "$ROOT" && shellcheck -x -P SCRIPTDIR -S warning "${scripts[@]}") || rc=1
[ "$rc" -eq 0 ] || die "static checks failed (above)"
say "static checks passed"
