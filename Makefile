# Relais: the two set-up commands.
#   make run   - the embedded service on http://127.0.0.1:8000 (SQLite, in-process fan-out,
#                demo practitioners, development login)
#   make test  - lint, type-check and the whole test suite on PostgreSQL and Redis

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What running needs (the server and the CLI), and what testing adds (dev extra).
RUN_STAMP := $(VENV)/.run-stamp
STAMP := $(VENV)/.installed-stamp

# The tests' services; override for another machine.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/relais
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: run test test-deploy lint bench services clean web

# The web client (web/, docs/web.md): its npm packages from the lock file, then the
# esbuild bundles into webapp/static/webapp/dist/ (built here, never committed).
WEB_STAMP := web/node_modules/.package-lock.json
NPM_MISSING := the web client is built with Node.js and npm: apt-get install nodejs npm \
	(Debian), or see nodejs.org

$(WEB_STAMP): web/package-lock.json
	@command -v npm >/dev/null || { echo "$(NPM_MISSING)" >&2; exit 1; }
	cd web && npm ci --no-audit --no-fund --loglevel=error

web: $(WEB_STAMP)
	cd web && npm run --silent build

$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[client]"
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(RUN_STAMP) web
	mkdir -p var
	RELAIS_DEBUG=1 $(BIN)/python manage.py migrate --noinput
	RELAIS_DEBUG=1 $(BIN)/python manage.py seed_demo
	RELAIS_DEBUG=1 $(BIN)/python manage.py runserver 127.0.0.1:8000

services:
	scripts/services.sh ensure

lint: $(STAMP) $(WEB_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	RELAIS_DEBUG=1 $(BIN)/mypy .
	RELAIS_DEBUG=1 $(BIN)/python manage.py makemigrations --check --dry-run
	cd web && npm run --silent typecheck

# Test processes in parallel (pytest-xdist), one per core by default; TEST_WORKERS=0 runs
# the suite in one process.
TEST_WORKERS ?= auto

test: $(STAMP) services lint web
	RELAIS_DEBUG=1 \
	RELAIS_DATABASE_URL=$(TEST_DATABASE_URL) \
	RELAIS_REDIS_URL=$(TEST_REDIS_URL) \
	RELAIS_DB_CONN_MAX_AGE=0 \
	$(BIN)/pytest -n $(TEST_WORKERS)

bench: $(STAMP) services
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache web/node_modules web/build-tests \
		webapp/static/webapp/dist

# The loopback Pro Santé Connect-shaped OpenID provider of the identity tests
# (panva's oidc-provider, run by Node.js; docs/identity.md).
PSC_PROVIDER := tests/identity/provider
PSC_STAMP := $(PSC_PROVIDER)/node_modules/.package-lock.json

$(PSC_STAMP): $(PSC_PROVIDER)/package-lock.json
	@command -v npm >/dev/null || { echo "make test needs Node.js and npm for the test \
	Pro Santé Connect provider: apt-get install nodejs npm (Debian), or see nodejs.org" >&2; exit 1; }
	cd $(PSC_PROVIDER) && npm ci --no-audit --no-fund --loglevel=error

test: $(PSC_STAMP)

.PHONY: psc-provider
psc-provider: $(STAMP) $(PSC_STAMP)
	$(BIN)/python -m tests.identity.psc_provider --port 8400 --relais http://127.0.0.1:8000

# Recovery after 30-second PostgreSQL and Redis outages under load, on instances of the
# benchmark's own (docs/performance.md).
.PHONY: bench-outages
bench-outages: $(STAMP)
	$(BIN)/python -m bench.outages

# Directory import and search benchmark (1,000,000 synthetic rows; docs/identity.md).
.PHONY: bench-directory
bench-directory: $(STAMP) services
	$(BIN)/python -m bench.directory_import

# The production shape on loopback (tests/deploy, also part of make test): Debian's nginx
# with deploy/nginx/relais.conf, two uvicorn processes and the push worker as the systemd
# units run them, PostgreSQL, Redis, a PSC login and a push (docs/deployment.md).
test-deploy: $(STAMP) services $(PSC_STAMP)
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "the production \
	shape needs nginx: apt-get install nginx" >&2; exit 1; }
	RELAIS_DEBUG=1 \
	RELAIS_DATABASE_URL=$(TEST_DATABASE_URL) \
	RELAIS_REDIS_URL=$(TEST_REDIS_URL) \
	RELAIS_DB_CONN_MAX_AGE=0 \
	$(BIN)/pytest tests/deploy -v
