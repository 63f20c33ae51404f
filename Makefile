# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-postgres install bench-ledger bench-upload bench-api clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/market db upgrade
	$(BIN)/market keys init
	$(BIN)/market serve

test: $(STAMP)
	$(BIN)/python -m pytest

# The same suite against PostgreSQL (MARKET_TEST_DATABASE_URL, default: the local server).
test-postgres: $(STAMP)
	MARKET_TEST_DATABASE_URL=$${MARKET_TEST_DATABASE_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/test} \
		$(BIN)/python -m pytest

bench-ledger: $(STAMP)
	$(BIN)/python bench/ledger.py

bench-upload: $(STAMP)
	$(BIN)/python bench/upload.py

# HTTP requests/s of hot routes against one server; BENCH_DB=postgresql://… for PostgreSQL.
bench-api: $(STAMP)
	$(BIN)/python bench/api.py --db $${BENCH_DB:-sqlite}

clean:
	rm -rf $(VENV) build *.egg-info
