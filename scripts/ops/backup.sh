#!/usr/bin/env bash
# Backup and restore of ENV's PostgreSQL.
#
#   scripts/ops/backup.sh backup ENV [DIR]            pg_dump custom format into
#        DIR (default $LOCAL/backups)/quibly-ENV-<UTC timestamp>.dump, with the row count
#        of every table next to it in the same name .counts
#   scripts/ops/backup.sh restore ENV FILE DB          restore FILE into database DB of
#        ENV's server (created when missing; objects in it replaced), then check every
#        table's row count against FILE's .counts
#
# Redis holds only ephemeral state (sessions for recovery, presence, the leader lease):
# nothing to back up. Kafka is a buffer in front of PostgreSQL and relies on replication
# (factor 3, min.insync.replicas 2 on AWS). See README, Operations.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$0")/common.sh"

usage() { usage_text >&2; exit 2; }

# db_counts URL prints "table count" for every table of the public schema, sorted.
db_counts() {
  local url=$1 t
  for t in $(psql "$url" -v ON_ERROR_STOP=1 -At -c "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"); do
    printf '%s %s\n' "$t" "$(psql "$url" -v ON_ERROR_STOP=1 -At -c "SELECT count(*) FROM public.\"$t\"")"
  done
}

# dump_counts FILE prints "table count" for every public table in the dump, counted from
# its COPY data (one line a row), so they are exactly what the dump holds, however the
# live database moved on meanwhile.
dump_counts() {
  pg_restore --data-only --file=- "$1" | awk '
    /^COPY public\./ { t = $2; sub(/^public\./, "", t); gsub(/"/, "", t); n[t] = 0; in_copy = 1; next }
    in_copy && $0 == "\\." { in_copy = 0; next }
    in_copy { n[t]++ }
    END { for (t in n) print t, n[t] }' | sort
}

# with_db URL DB prints URL with its database replaced by DB.
with_db() { sed -E "s#^(postgres(ql)?://[^/]+/)[^?]*#\1$2#" <<<"$1"; }

backup() {
  local env=${1:-} dir=${2:-$LOCAL/backups} url file t0
  [ -n "$env" ] || usage
  load_adapter "$env"
  mkdir -p "$dir"
  file=$dir/quibly-$env-$(date -u +%Y%m%dT%H%M%SZ).dump
  if [ -n "$DRY_RUN" ]; then printf '  [dry-run] pg_dump --format=custom --no-owner --file=%s <database of %s>\n' "$file" "$env"; return; fi
  url=$(database_url)
  t0=$(date +%s%N)
  say "backing up $env's database into $file"
  # pg_dump reads one consistent snapshot; .part so a half-written dump never looks done.
  pg_dump --format=custom --no-owner --file="$file.part" "$url" || die "pg_dump failed"
  mv "$file.part" "$file"
  dump_counts "$file" >"$file.counts"
  say "backup done in $(elapsed "$t0"): $file ($(du -h "$file" | cut -f1)); rows: $(tr '\n' ' ' <"$file.counts")"
  echo "$file"
}

restore() {
  local env=${1:-} file=${2:-} db=${3:-} url target t0 want got
  [ -n "$env" ] && [ -n "$file" ] && [ -n "$db" ] || usage
  [ -s "$file" ] || die "no backup file $file"
  [[ $db =~ ^[a-z_][a-z0-9_]*$ ]] || die "database name '$db': lower-case letters, digits and _ only"
  load_adapter "$env"
  if [ -n "$DRY_RUN" ]; then printf '  [dry-run] createdb %s; pg_restore --clean --if-exists --no-owner --dbname=%s %s; compare row counts\n' "$db" "$db" "$file"; return; fi
  url=$(database_url)
  target=$(with_db "$url" "$db")
  t0=$(date +%s%N)
  if ! psql "$url" -At -c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
    say "creating database $db"
    psql "$url" -v ON_ERROR_STOP=1 -q -c "CREATE DATABASE \"$db\"" || die "cannot create database $db"
  fi
  say "restoring $file into database $db"
  # --clean --if-exists: what the backup holds replaces what DB has; one transaction, so a
  # failed restore leaves DB as it was.
  pg_restore --clean --if-exists --no-owner --single-transaction --exit-on-error --dbname="$target" "$file" \
    || die "pg_restore into $db failed (DB is unchanged)"
  if [ -s "$file.counts" ]; then want=$(cat "$file.counts"); else want=$(dump_counts "$file"); fi
  got=$(db_counts "$target" | awk 'NR==FNR { want[$1] = 1; next } ($1 in want)' <(echo "$want") -)
  if [ "$(sort <<<"$want")" != "$(sort <<<"$got")" ]; then
    diff <(sort <<<"$want") <(sort <<<"$got") >&2 || true
    die "row counts of $db differ from the backup (< backup, > restored)"
  fi
  say "restored into $db in $(elapsed "$t0"); row counts match the backup: $(tr '\n' ' ' <<<"$want")"
}

cmd=${1:-}; shift || true
args=()
for a in "$@"; do if [ "$a" = --dry-run ]; then DRY_RUN=1; else args+=("$a"); fi; done
case $cmd in
  backup) backup "${args[@]}" ;;
  restore) restore "${args[@]}" ;;
  *) usage ;;
esac
