# Two commands matter: `make run` (set up, then serve the demo) and `make test`
# (set up, then run the whole suite). Everything else is a step of those.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 3000
# Debian's Chromium, which the browser tests drive through playwright-core; `make test CHROMIUM=/path` overrides it.
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM

.PHONY: run test bench soak faults hosts setup versions chromium redis iproute2 nginx openssl prometheus lint clients pytest conformance-server clean

run: setup
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/daphne -b 127.0.0.1 -p 8000 project.asgi:application

test: setup chromium redis iproute2 nginx openssl prometheus lint clients pytest

setup: versions $(VENV)/.installed node_modules/.installed static/vendor/socket.io.min.js

# Checked, not assumed: realtime needs Python 3.11+; the browser and client tests need Node 20+.
versions:
	@test -n "$(PYTHON)" || { echo "make: no python3 found; install Python 3.11 or later"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
		echo "make: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); realtime needs 3.11 or later (PYTHON=/path/to/python3.11 make ...)"; exit 1; }
	@command -v node >/dev/null || { echo "make: node is missing; the tests need Node 20 or later"; exit 1; }
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' || { \
		echo "make: node is $$(node --version); the tests (socket.io-client, playwright-core) need Node 20 or later"; exit 1; }

$(VENV)/.installed: requirements.txt pyproject.toml
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
	@# the Sentinel failover test (tests/e2e/test_sentinel.py) starts three of Debian's redis-sentinel
	@command -v redis-sentinel >/dev/null || { \
		echo "make: redis-sentinel is missing; installing Debian's redis-sentinel with apt-get (needs root)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-sentinel; }
	@command -v redis-sentinel >/dev/null

# The hosts test (tests/e2e/test_hosts.py) builds network namespaces with iproute2's ip (as root).
iproute2:
	@command -v ip >/dev/null || { \
		echo "make: ip is missing; installing Debian's iproute2 with apt-get (needs root)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2; }
	@command -v ip >/dev/null

# The Deploy test (tests/install/test_deploy.py) runs Debian's nginx on free ports with its own config,
# and makes its TLS certificate with openssl.
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { \
		echo "make: nginx is missing; installing Debian's nginx with apt-get (needs root)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx; }
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx

# The metrics test (tests/e2e/test_prometheus.py) scrapes two servers with Debian's prometheus on a free port.
prometheus:
	@command -v prometheus >/dev/null || { \
		echo "make: prometheus is missing; installing Debian's prometheus with apt-get (needs root)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus; }
	@command -v prometheus >/dev/null

openssl:
	@command -v openssl >/dev/null || { \
		echo "make: openssl is missing; installing Debian's openssl with apt-get (needs root)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl; }
	@command -v openssl >/dev/null

# ruff, mypy --strict on the package (django-stubs), and the import layers of ARCHITECTURE.md
# (import-linter contracts in pyproject.toml): each fails the build.
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy realtime
	$(BIN)/lint-imports

# The Java, Go and Rust scenario programs (tests/clients/), built once into tests/clients/.build/ and
# rebuilt only when their sources or lock files change; a missing toolchain is skipped, unless
# REALTIME_REQUIRE_NATIVE_CLIENTS=1 (.ci/run) makes it an error. Built here so that a cold build
# (mostly Rust's) happens before pytest, not inside a test.
clients: $(VENV)/.installed
	$(BIN)/python -m tests.clients.native

pytest: setup chromium redis iproute2 nginx openssl prometheus clients
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

# The broker faults of README's "Cluster faults" table, printing what each measured: Redis killed
# and stalled, a Sentinel failover (also part of `make test`), and the hosts apart (`make hosts`).
faults: setup redis clients
	$(BIN)/python -m pytest -s tests/e2e/test_cluster_faults.py tests/e2e/test_sentinel.py tests/e2e/test_hosts.py

hosts: setup redis iproute2 clients
	$(BIN)/python -m pytest -s tests/e2e/test_hosts.py

# The public Engine.IO conformance suite (socketio/engine.io-protocol, test-suite/)
# expects an echo endpoint at /engine.io/ on localhost:$(PORT).
conformance-server: setup
	DJANGO_SETTINGS_MODULE=tests.conformance.settings $(BIN)/daphne \
		-e tcp:port=$(PORT):interface=127.0.0.1 -e 'tcp6:port=$(PORT):interface=\:\:1' \
		tests.conformance.asgi:application

clean:
	rm -rf $(VENV) node_modules static/vendor .pytest_cache .hypothesis tests/artifacts dist build *.egg-info tests/clients/.build
