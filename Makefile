# Cairn: `make demo` runs the demo, `make test` runs the whole test suite. Both set up everything.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test setup browser lint types unit integration e2e bench schema clean node sdk sdk-check

demo: setup
	$(BIN)/cairn demo

test: setup browser lint types
	$(BIN)/pytest -q tests e2e

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Cairn needs $(PYTHON) (Python 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Debian's Chromium drives the end-to-end tests (never a downloaded browser build), and Debian's
# HAProxy balances the scale-out test's processes.
browser: node
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the end-to-end tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || { \
	  echo "installing Debian's haproxy for the scale-out test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; }

lint: setup sdk-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check app widgets recommender tests e2e

types: setup
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/cairn schema --check
	$(BIN)/cairn validate layouts
	$(BIN)/cairn policy test layouts

unit: setup
	$(BIN)/pytest -q tests/unit

integration: setup
	$(BIN)/pytest -q tests/integration

e2e: setup browser
	$(BIN)/pytest -q e2e

bench: setup
	$(BIN)/python -m tests.bench.run

schema: setup
	$(BIN)/cairn schema

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Node.js and npm (Debian's, when missing) and the web SDK's dev tools from web_sdk/package-lock.json:
# esbuild (the bundle), TypeScript (checks the declarations), axe-core (the accessibility scan of
# the e2e tests), and the peers the bundle's size is compared with.
NODE_STAMP := web_sdk/node_modules/.installed

node: $(NODE_STAMP)

$(NODE_STAMP): web_sdk/package.json web_sdk/package-lock.json
	@command -v npm >/dev/null || { \
	  echo "installing Debian's nodejs and npm for the web SDK's tools"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	cd web_sdk && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# Build web_sdk/dist (full and core bundles) and print their gzip sizes beside unleash-proxy-client
# and @growthbook/growthbook built the same way.
sdk: node
	cd web_sdk && node build.mjs

# The committed web_sdk/dist matches a fresh build, the core stays within 6 KB gzip, the modules of
# web_sdk/src type-check, and the hand-written declarations (src/cairn.d.ts) compile with the usage
# in web_sdk/test/types.ts.
sdk-check: node
	cd web_sdk && node build.mjs --check && node_modules/.bin/tsc -p . && node_modules/.bin/tsc -p admin
