# Quarry — two commands for a newcomer:
#   make run    install system packages, fetch + verify model assets, build (release),
#               create and index the demo workspace, serve http://127.0.0.1:8080
#   make test   the whole test suite, real model included (what CI runs)

SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/quarry/target
APT_PACKAGES := cmake clang libclang-dev
BIN := $(CARGO_TARGET_DIR)/release/quarry

.PHONY: run test deps ui-deps ui-test client-test assets build demo check fmt clippy fuzz-check fuzz

run: deps assets build
	$(BIN) serve

# System packages needed to build llama.cpp (via llama-cpp-2) and its bindings.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "Missing system packages:$$missing. Install them with: sudo apt-get install -y$$missing" >&2; exit 1; fi; \
	fi
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust from rustup first" >&2; exit 1; }

# What the browser tests need: Debian's Chromium (driven by playwright-core, no browser
# download) and Node.js.
ui-deps:
	@missing=""; dpkg -s chromium >/dev/null 2>&1 || missing="chromium"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "Missing system packages: $$missing. Install them with: sudo apt-get install -y $$missing" >&2; exit 1; fi; \
	fi

# The default model (1.5B), and the 0.5B the repository's adapter was trained for.
assets:
	scripts/fetch-assets.sh --model 1.5b
	scripts/fetch-assets.sh --model 0.5b

build:
	cargo build --release

# Recreate the demo warehouse and query log (make run creates them when missing).
demo: build
	$(BIN) demo

# The server backend's test runs the real model behind llama.cpp's llama-server (built once, cached).
# The PostgreSQL tests run against a throwaway cluster (scripts/with-postgres.sh: initdb in a
# temporary folder, 127.0.0.1, a free port; removed afterwards).
# Then the web page in headless Chromium against `quarry serve` (tests/ui, screenshots in
# tests/ui/artefacts).
test: deps assets ui-deps
	server="$$(scripts/build-llama-server.sh)" && QUARRY_E2E=1 QUARRY_LLAMA_SERVER="$$server" scripts/with-postgres.sh scripts/with-qdrant.sh cargo test --release
	$(MAKE) ui-test
	$(MAKE) client-test

ui-test: build
	cd tests/ui && npm ci --no-audit --no-fund --silent && QUARRY_BIN=$(BIN) npm test

# Real clients against `quarry serve` with the real model: the official MCP Python SDK (over
# /mcp and `quarry mcp` on stdio), openapi-spec-validator, Prometheus' text parser (tests/clients).
CLIENT_VENV := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/quarry/clients-venv
client-test: build
	@python3 -m venv --help >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; \
	  else echo "python3 -m venv is missing. Install it with: sudo apt-get install -y python3-venv" >&2; exit 1; fi; }
	@[ -x $(CLIENT_VENV)/bin/python ] || python3 -m venv $(CLIENT_VENV)
	$(CLIENT_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
	QUARRY_BIN=$(BIN) $(CLIENT_VENV)/bin/python -m pytest tests/clients -q

# The fuzz target builds from the library (without its runtime) and holds for a bounded run
# (CI: 60 s, leaving its 90 minutes to the tests with the real model); `make fuzz
# FUZZ_SECONDS=3600` for a longer one.
FUZZ_SECONDS ?= 60
fuzz-check:
	scripts/fuzz.sh $(FUZZ_SECONDS)

fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

check: fmt clippy

fmt:
	cargo fmt --check

clippy:
	cargo clippy --release --all-targets -- -D warnings
