#!/usr/bin/env bash
# The crate graph is the architecture: a service's domain crate and the
# event-log contract must not depend on a database, HTTP or GraphQL crate.
set -euo pipefail
cd "$(dirname "$0")/.."
forbidden='^(sqlx|sqlx-core|sqlx-postgres|axum|axum-core|hyper|async-graphql|reqwest|tower-http) '
status=0
for crate in ventanilla-kernel ventanilla-eventlog ventanilla-tenants-domain ventanilla-tickets-domain ventanilla-social-domain; do
  found=$(cargo tree -p "$crate" -e normal --prefix none --format '{p}' | sort -u | grep -E "$forbidden" || true)
  if [ -n "$found" ]; then
    echo "$crate must not depend on: $(echo "$found" | tr '\n' ' ')"
    status=1
  fi
done
# Services never call each other: no service crate depends on another.
services='^(ventanilla-tenants|ventanilla-tickets|ventanilla-social|ventanilla-gateway) '
for crate in ventanilla-tenants ventanilla-tickets ventanilla-social; do
  found=$(cargo tree -p "$crate" -e normal --prefix none --format '{p}' | sort -u | grep -E "$services" | grep -v "^$crate " || true)
  if [ -n "$found" ]; then
    echo "$crate must not depend on another service: $(echo "$found" | tr '\n' ' ')"
    status=1
  fi
done
[ $status = 0 ] && echo "crate graph ok: domain crates and the event-log contract are free of sqlx, axum and async-graphql; no service depends on another"
exit $status
