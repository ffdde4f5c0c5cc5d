#!/usr/bin/env bash
# Local releases: what a rolling deploy of the local cluster (ENV=local) switches nodes to.
#
#   scripts/release.sh build VERSION [--env K=V]...   build app/cmd/quibly into
#        $LOCAL/releases/VERSION/quibly (version stamped in -ldflags main.version, if the
#        program has one), with the git commit in $LOCAL/releases/VERSION/commit and the
#        --env settings, if any, in $LOCAL/releases/VERSION/env: a node started from the
#        release gets them on top of the cluster's own (a release's configuration, as a
#        unit file or task definition carries it)
#   scripts/release.sh list                           the releases built
#
# On AWS a release is s3://<artifactBucket>/quibly/VERSION/quibly-linux-<arch> (see README,
# Operations); this script only makes local ones.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

RELEASES=$LOCAL/releases

build() {
  local version=${1:-} envs=() dir tmp
  [ -n "$version" ] || die "usage: scripts/release.sh build VERSION [--env K=V]..."
  [[ $version =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] && [ "$version" != dev ] \
    || die "version '$version': letters, digits, '.', '_' and '-' only (and not 'dev', the name of app/bin/quibly)"
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --env) [[ ${2:-} =~ ^[A-Z_][A-Z0-9_]*= ]] || die "--env needs K=V (got '${2:-}')"; envs+=("$2"); shift 2 ;;
      *) die "unknown argument '$1'" ;;
    esac
  done
  dir=$RELEASES/$version
  tmp=$RELEASES/.$version.tmp
  rm -rf "$tmp" && mkdir -p "$tmp"
  say "building release $version into $dir"
  (cd "$ROOT" && go build -ldflags "-X main.version=$version" -o "$tmp/quibly" ./app/cmd/quibly) || die "go build failed"
  git -C "$ROOT" rev-parse HEAD >"$tmp/commit" 2>/dev/null || true
  [ ${#envs[@]} -eq 0 ] || printf '%s\n' "${envs[@]}" >"$tmp/env"
  # A release is immutable once built: replace it whole, never half.
  rm -rf "$dir" && mv "$tmp" "$dir"
  say "release $version ready${envs[*]:+ (settings: ${envs[*]})}"
}

list() {
  local d
  for d in "$RELEASES"/*/; do
    [ -x "$d/quibly" ] || continue
    printf '%s\t%s\t%s\n' "$(basename "$d")" "$(cat "$d/commit" 2>/dev/null || echo -)" "$(tr '\n' ' ' <"$d/env" 2>/dev/null)"
  done
}

case ${1:-} in
  build) shift; build "$@" ;;
  list) list ;;
  *) sed -n '2,13s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
