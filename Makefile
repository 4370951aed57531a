# Sentinel: `make run` starts the whole system and shows it working (it keeps running until
# `make down`); `make test` runs the whole suite.
# Both install the missing system packages first (infra/bootstrap.py: apt-get as root or with
# sudo), then .venv, and start the embedded servers they need on 127.0.0.1.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
# The system packages `make test` needs include those of `make run` (infra/bootstrap.py).
PURPOSE := $(if $(filter test lint unit integration,$(MAKECMDGOALS)),test,run)

.PHONY: help bootstrap install run test lint unit integration bench up down status clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

bootstrap:  ## install missing system packages (apt-get), or say how to get them
	@$(PYTHON) -m infra.bootstrap --for $(PURPOSE)

# The native parts (processors/native and schemas/native, Rust) are built by `pip install -e .`:
# a change to either reinstalls.
$(STAMP): pyproject.toml processors/native/Cargo.toml $(wildcard processors/native/src/*.rs) \
          schemas/native/Cargo.toml $(wildcard schemas/native/src/*.rs) | bootstrap
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@if [ -f connectors/contracts/package.json ]; then \
	  npm install --silent --no-audit --no-fund --prefix connectors/contracts; fi
	touch $(STAMP)

install: bootstrap $(STAMP)  ## create .venv and install Sentinel with its test tools

up: install  ## start servers and every service (supervised, logs in .data/logs); wait healthy
	$(BIN)/sentinel up

down:  ## stop every service, then the servers this checkout started
	$(BIN)/sentinel down

status:  ## servers and services: pid, health, consumer lag
	$(BIN)/sentinel status

run: up  ## `up`, then simulated traffic through the signed gateway; print what came out
	$(BIN)/sentinel demo

lint: install  ## ruff, then mypy over processors/ and the modules around it ([tool.mypy] in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/mypy

unit: install  ## unit tests only (no servers)
	$(BIN)/pytest -m unit -q

integration: install  ## integration tests (start the embedded servers)
	$(BIN)/pytest -m integration -q

test: lint  ## lint, then the whole suite (starts what it needs): unit tests on every core, then the rest
	$(BIN)/pytest -q -p no:cacheprovider -m unit -n auto
	$(BIN)/pytest -q -p no:cacheprovider -m "not unit"

bench: install  ## benchmarks, JSON reports under out/ (embedded servers, no services)
	$(BIN)/sentinel infra up
	$(BIN)/sentinel topics create
	$(BIN)/sentinel db migrate
	mkdir -p out
	$(BIN)/sentinel bench pipeline --out out/bench-pipeline.json
	$(BIN)/sentinel bench gateway --out out/bench-gateway.json
	$(BIN)/sentinel bench rules --out out/bench-rules.json

clean: down  ## stop servers and delete .data (topics, tables, keys)
	rm -rf .data
