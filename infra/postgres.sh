#!/usr/bin/env bash
# Makes sure a PostgreSQL server is reachable and prints its owner URL
# (postgres://user@host:port) on stdout. Order of preference:
#   1. DATABASE_URL's server, if DATABASE_URL is set (without its database);
#   2. the local server on 127.0.0.1:5432 (started if it is installed but down);
#   3. a private server under .local/pg, created from the installed binaries.
# Where no PostgreSQL is installed it says, in one line, what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${DATABASE_URL:-}" ]; then
  # The server part only: callers append the database they need.
  rest="${DATABASE_URL#*://}"
  echo "${DATABASE_URL%%://*}://${rest%%/*}"
  exit 0
fi

ready() { pg_isready -q -h "$1" -p "$2" 2>/dev/null; }

if command -v pg_isready >/dev/null && ready 127.0.0.1 5432; then
  echo "postgres://${PGUSER:-$(id -un)}@127.0.0.1:5432"
  exit 0
fi

# The machine's own cluster, installed but stopped.
if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql/*/main >/dev/null 2>&1; then
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 2>/dev/null || true
  for _ in $(seq 1 30); do ready 127.0.0.1 5432 && break; sleep 0.5; done
  if ready 127.0.0.1 5432; then
    echo "postgres://${PGUSER:-$(id -un)}@127.0.0.1:5432"
    exit 0
  fi
fi

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  echo "no PostgreSQL server is reachable and none is installed: install PostgreSQL 15 or newer (Debian: apt-get install postgresql), or set DATABASE_URL" >&2
  exit 1
fi

# A private server for this checkout, on port 54329, trust auth on loopback.
data="$PWD/.local/pg"
port=54329
run_as=()
if [ "$(id -u)" = 0 ]; then
  # initdb refuses to run as root.
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  run_as=(runuser -u postgres --)
fi
if [ ! -s "$data/PG_VERSION" ]; then
  mkdir -p "$data"
  [ "$(id -u)" = 0 ] && chown -R postgres "$PWD/.local"
  "${run_as[@]}" "$bindir/initdb" -D "$data" -A trust -U postgres >/dev/null
fi
if ! ready 127.0.0.1 $port; then
  "${run_as[@]}" "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1" start >/dev/null
fi
echo "postgres://postgres@127.0.0.1:$port"
