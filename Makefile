# crypto-platform: `make run` starts the platform, `make test` runs every test against real services.
# Both set up what is missing first: the virtualenv, the Python packages and Kafka's jars.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
SOURCE ?= live

.DEFAULT_GOAL := help
.PHONY: help setup run test lint format constraints kafka-start kafka-stop kafka-status clean chromium

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,spark]'
	touch $(STAMP)

setup: $(STAMP) ## Create the virtualenv, install the package, fetch Kafka's and Spark's jars (skips what is done)
	$(BIN)/crypto-platform kafka fetch
	$(BIN)/crypto-platform spark fetch >/dev/null  # Spark's Kafka connector jars, for the Spark job

run: setup ## Start Kafka (unless KAFKA_BOOTSTRAP_SERVERS is set) and the platform; SOURCE=sim runs offline on the exchange simulator; Ctrl-C stops all
	$(BIN)/crypto-platform run --source $(SOURCE)

test: setup chromium ## Run the whole test suite against a real Kafka broker it starts and stops
	$(BIN)/python -m pytest $(PYTEST_ARGS)

CHROMIUM ?= /usr/bin/chromium
chromium: ## Install Debian's Chromium for the browser test, only when missing (apt-get, as root)
	@if [ -x $(CHROMIUM) ]; then \
	  echo "chromium: $(CHROMIUM)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends chromium; \
	else \
	  echo "chromium is missing and cannot be installed here (needs root and apt-get):" \
	    "the browser tests will be skipped"; \
	fi

lint: $(STAMP) ## Check style with ruff
	$(BIN)/ruff check crypto_platform crypto_platform_tests bench
	$(BIN)/ruff format --check crypto_platform crypto_platform_tests bench

format: $(STAMP) ## Format and fix imports with ruff
	$(BIN)/ruff check --fix crypto_platform crypto_platform_tests bench
	$(BIN)/ruff format crypto_platform crypto_platform_tests bench

.PHONY: bench
BENCH_ARGS ?=
bench: setup ## Benchmarks: ingestion, window computation, freshness (~30 min; BENCH_ARGS=--quick: ~8 min); JSON in bench/results/
	$(BIN)/python -m bench.ingest $(BENCH_ARGS)
	$(BIN)/python -m bench.windows $(BENCH_ARGS)
	$(BIN)/python -m bench.freshness $(BENCH_ARGS)

kafka-start: setup ## Start only the local Kafka broker
	$(BIN)/crypto-platform kafka start

kafka-stop: $(STAMP) ## Stop the local Kafka broker
	$(BIN)/crypto-platform kafka stop

kafka-status: $(STAMP) ## Is the local broker answering?
	$(BIN)/crypto-platform kafka status

constraints: $(STAMP) ## Re-pin constraints.txt to the versions installed in the virtualenv
	{ sed -n '1,3p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^crypto-platform'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean: ## Remove the virtualenv and caches (not the data folder)
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
