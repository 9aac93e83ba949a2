# Two commands matter: `make run` (set up, then serve the demo) and `make test`
# (set up, then run the whole suite). Everything else is a step of those.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000
# Debian's Chromium, which tests/e2e/test_browser.py drives through playwright-core.
CHROMIUM := /usr/bin/chromium

.PHONY: run test bench soak setup chromium redis lint pytest conformance-server clean

run: setup
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/daphne -b 127.0.0.1 -p 8000 project.asgi:application

test: setup chromium redis lint pytest

setup: $(VENV)/.installed node_modules/.installed static/vendor/socket.io.min.js

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# The demo page's client: the official socket.io-client browser bundle (never committed).
static/vendor/socket.io.min.js: node_modules/.installed
	mkdir -p static/vendor
	cp node_modules/socket.io-client/dist/socket.io.min.js $@

# Only the tests need a browser; `make run` does not.
chromium: $(CHROMIUM)

$(CHROMIUM):
	@echo "make: $@ is missing; installing Debian's chromium with apt-get (needs root)"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
	test -x $@

# The cluster tests start a private redis-server on a free port; it must be installed.
redis:
	@command -v redis-server >/dev/null || { \
		echo "make: redis-server is missing; installing Debian's redis-server with apt-get (needs root)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; }
	@command -v redis-server >/dev/null

lint: $(VENV)/.installed
	$(BIN)/ruff check .

pytest: setup chromium redis
	$(BIN)/python -m pytest

# Benchmarks against python-socketio on daphne and uvicorn (tests/bench/run.py); not part of `make test`.
# BENCH_ARGS="--quick --rounds 1" for a short run.
bench: setup redis $(VENV)/.bench
	$(BIN)/python -m tests.bench.run $(BENCH_ARGS)

$(VENV)/.bench: tests/bench/requirements.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r tests/bench/requirements.txt
	touch $@

# The soak (tests/soak/run.py): 5,000 clients on two daphne processes and Redis for 10 minutes,
# exit status non-zero on any error, lost message or RSS growth of 10 %; not part of `make test`.
# SOAK_ARGS="--seconds 60" for the CI's short run.
soak: setup redis
	$(BIN)/python -m tests.soak.run $(SOAK_ARGS)

# The public Engine.IO conformance suite (socketio/engine.io-protocol, test-suite/)
# expects an echo endpoint at /engine.io/ on localhost:$(PORT).
conformance-server: setup
	DJANGO_SETTINGS_MODULE=tests.conformance.settings $(BIN)/daphne \
		-e tcp:port=$(PORT):interface=127.0.0.1 -e 'tcp6:port=$(PORT):interface=\:\:1' \
		tests.conformance.asgi:application

clean:
	rm -rf $(VENV) node_modules static/vendor .pytest_cache .hypothesis tests/artifacts
