# Ventanilla — the front door. `make` alone lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
# The PostgreSQL server to use: DATABASE_URL's, the local one, or a private
# one under .local/pg (see infra/postgres.sh).
PG_SERVER = $(shell infra/postgres.sh)

help: ## Lists the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# `make run` is for a development machine: unless set, the credentials key is
# a fixed development one and the social networks are simulated (SIM=0 talks
# to the real ones, with your own key).
DEV_CREDENTIALS_KEY := ZGV2LWtleS1ub3QtZm9yLXByb2R1Y3Rpb24tdXNlISE=
# The same for the notification links' key (notify.key).
DEV_NOTIFY_KEY := ZGV2LW5vdGlmeS1rZXktbm90LWZvci1wcm9kdWN0aW8=

run: ## Starts the whole platform on this machine (http://127.0.0.1:8080; DEMO=0 skips the demo council, SIM=0 the simulated networks and the local mail sink)
	@server="$(PG_SERVER)"; [ -n "$$server" ] || exit 1; \
	url="$${DATABASE_URL:-$${server%/}/ventanilla}"; \
	if [ "$${SIM:-1}" != 0 ]; then \
	  export VENTANILLA__SOCIAL__SIMULATOR="$${VENTANILLA__SOCIAL__SIMULATOR:-true}"; \
	  export VENTANILLA__SOCIAL__CREDENTIALS_KEY="$${VENTANILLA__SOCIAL__CREDENTIALS_KEY:-$(DEV_CREDENTIALS_KEY)}"; \
	  export VENTANILLA__NOTIFY__MAIL_SINK="$${VENTANILLA__NOTIFY__MAIL_SINK:-true}"; \
	  export VENTANILLA__SOCIAL__POLL_INTERVAL_SECS="$${VENTANILLA__SOCIAL__POLL_INTERVAL_SECS:-5}"; \
	  export VENTANILLA__SOCIAL__MAIL_BIND="$${VENTANILLA__SOCIAL__MAIL_BIND:-127.0.0.1:2525}"; \
	  export VENTANILLA__NOTIFY__ALLOW_PRIVATE_WEBHOOKS="$${VENTANILLA__NOTIFY__ALLOW_PRIVATE_WEBHOOKS:-true}"; \
	fi; \
	export VENTANILLA__NOTIFY__KEY="$${VENTANILLA__NOTIFY__KEY:-$(DEV_NOTIFY_KEY)}"; \
	$(CARGO) build --quiet -p ventanilla && \
	echo "Ventanilla: database $${url%%\?*}" && \
	echo "Ventanilla: open http://$${VENTANILLA__HTTP__BIND:-127.0.0.1:8080}/  (health: /healthz, readiness: /readyz; Ctrl-C stops)" && \
	{ [ "$${DEMO:-1}" = 0 ] || VENTANILLA__DATABASE__URL="$$url" target/debug/ventanilla demo; } && \
	VENTANILLA__DATABASE__URL="$$url" exec target/debug/ventanilla serve

migrate: ## Creates the database if missing and applies the migrations
	@server="$(PG_SERVER)"; [ -n "$$server" ] || exit 1; \
	url="$${DATABASE_URL:-$${server%/}/ventanilla}"; \
	VENTANILLA__DATABASE__URL="$$url" $(CARGO) run --quiet -p ventanilla -- migrate

# tests/clients holds the test through independent GraphQL clients (npm
# packages); they are installed when missing or older than the lock file.
test: ## Runs every test (needs PostgreSQL: started if it is not running; and npm, for tests/clients)
	@if [ ! -f tests/clients/node_modules/.package-lock.json ] || \
	    [ tests/clients/package-lock.json -nt tests/clients/node_modules/.package-lock.json ]; then \
	  command -v npm >/dev/null || { echo "make test: npm is not installed; install Node.js 20 or later (with npm): tests/clients drives the API through npm's GraphQL clients" >&2; exit 1; }; \
	  echo "make test: installing tests/clients' packages (npm ci)"; \
	  npm ci --prefix tests/clients --no-audit --no-fund || exit 1; \
	fi
	@server="$(PG_SERVER)"; [ -n "$$server" ] || exit 1; \
	export VENTANILLA_TEST_DATABASE_URL="$${VENTANILLA_TEST_DATABASE_URL:-$${server%/}/postgres}"; \
	infra/sweep-test-databases.sh "$$VENTANILLA_TEST_DATABASE_URL"; \
	if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) test --quiet --workspace --doc --all-features && $(CARGO) nextest run --workspace --all-features --no-fail-fast; \
	else \
	  $(CARGO) test --workspace --all-features --no-fail-fast; \
	fi

check: ## fmt, clippy, the crate-graph rules and every test
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	$(MAKE) check-deps
	$(MAKE) test

check-deps: ## Proves that domain crates depend on no database, HTTP or GraphQL crate
	@infra/check-deps.sh

bench: ## Runs the benchmarks (release build) and prints BENCH lines
	@server="$(PG_SERVER)"; [ -n "$$server" ] || exit 1; \
	export VENTANILLA_TEST_DATABASE_URL="$${VENTANILLA_TEST_DATABASE_URL:-$${server%/}/postgres}"; \
	$(CARGO) run --release --quiet -p ventanilla-bench

fmt: ## Formats the code
	$(CARGO) fmt --all

.PHONY: help run migrate test check check-deps bench fmt
