# crypto-platform: `make run` starts the platform, `make test` runs every test against real services.
# Both set up what is missing first: the virtualenv, the Python packages and Kafka's jars.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup run test lint format kafka-start kafka-stop kafka-status clean

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## Create the virtualenv, install the package and fetch Kafka's jars (skips what is done)
	$(BIN)/crypto-platform kafka fetch

run: setup ## Start Kafka (unless KAFKA_BOOTSTRAP_SERVERS is set) and the platform; Ctrl-C stops all
	$(BIN)/crypto-platform run

test: setup ## Run the whole test suite against a real Kafka broker it starts and stops
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## Check style with ruff
	$(BIN)/ruff check crypto_platform crypto_platform_tests bench
	$(BIN)/ruff format --check crypto_platform crypto_platform_tests bench

format: $(STAMP) ## Format and fix imports with ruff
	$(BIN)/ruff check --fix crypto_platform crypto_platform_tests bench
	$(BIN)/ruff format crypto_platform crypto_platform_tests bench

kafka-start: setup ## Start only the local Kafka broker
	$(BIN)/crypto-platform kafka start

kafka-stop: $(STAMP) ## Stop the local Kafka broker
	$(BIN)/crypto-platform kafka stop

kafka-status: $(STAMP) ## Is the local broker answering?
	$(BIN)/crypto-platform kafka status

clean: ## Remove the virtualenv and caches (not the data folder)
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
