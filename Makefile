# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo lint test test-postgres install bench-ledger bench-upload bench-api bench-search bench-trade bench-floor bench-events bench-oversight bench-usage bench-trace bench-profile bench-dsp clean

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

# A demo market (parties, assets, listings, a regulator, months of trading: docs/demo.md) in the database `make run` uses.
demo: $(STAMP)
	$(BIN)/market db upgrade
	$(BIN)/market keys init
	$(BIN)/market demo --notice-period 0

# The code's shape: ruff's rules and mypy's types (configured in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check market ledger tests bench alembic
	$(BIN)/mypy market ledger

# Test files are spread over MARKET_TEST_WORKERS processes (default 2, `0` runs in this
# one); each worker has its own databases, data directory and localstripe.
TEST_ARGS = -n $${MARKET_TEST_WORKERS:-2} --dist loadfile

test: $(STAMP)
	$(BIN)/python -m pytest $(TEST_ARGS)

# The same suite against PostgreSQL (MARKET_TEST_DATABASE_URL, default: the local server).
test-postgres: $(STAMP)
	MARKET_TEST_DATABASE_URL=$${MARKET_TEST_DATABASE_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/test} \
		$(BIN)/python -m pytest $(TEST_ARGS)

bench-ledger: $(STAMP)
	$(BIN)/python bench/ledger.py

# Upload MB/s of 1 GiB and the server's memory; BENCH_STORE=s3 keeps content in an S3 API (moto) on this machine.
bench-upload: $(STAMP)
	$(BIN)/python bench/upload.py --store $${BENCH_STORE:-file}

# HTTP requests/s of hot routes against one server; BENCH_DB=postgresql://… for PostgreSQL.
bench-api: $(STAMP)
	$(BIN)/python bench/api.py --db $${BENCH_DB:-sqlite}

# Search latency and throughput at 100,000 listings against 1,000; BENCH_DB=postgresql://… for PostgreSQL.
bench-search: $(STAMP)
	$(BIN)/python bench/search.py --db $${BENCH_DB:-sqlite}

# Free-plan purchases/s (32 buyers) and delivery MB/s of a 1 GiB asset; BENCH_DB=postgresql://…, BENCH_WORKERS=N,
# BENCH_STORE=s3 (content in an S3 API, moto, on this machine).
bench-trade: $(STAMP)
	$(BIN)/python bench/trade.py --db $${BENCH_DB:-sqlite} --workers $${BENCH_WORKERS:-1} --store $${BENCH_STORE:-file}

# The floor under bench-trade: the same purchases on a bare Litestar app doing only a purchase's
# statements and signatures, a transaction each and grouped (BENCH_DB, BENCH_WORKERS as above).
bench-floor: $(STAMP)
	$(BIN)/python bench/floor.py --db $${BENCH_DB:-sqlite} --workers $${BENCH_WORKERS:-1}

# Every SQL statement of one free purchase and its contract, with offsets in ms; BENCH_DB=postgresql://…
bench-trace: $(STAMP)
	$(BIN)/python bench/purchase_trace.py --db $${BENCH_DB:-sqlite} --quiet

# The API process's CPU per purchase by package and function, profiled only while 32 buyers buy.
bench-profile: $(STAMP)
	$(BIN)/python bench/purchase_profile.py --db $${BENCH_DB:-sqlite}

# Purchases/s with 3 webhook endpoints against none (notify_cost), and events delivered/s
# against produced/s (drain_vs_produce); BENCH_DB=postgresql://…
bench-events: $(STAMP)
	$(BIN)/python bench/events.py --db $${BENCH_DB:-sqlite} --workers $${BENCH_WORKERS:-1}

# Overview p95 at 1,000,000 settled trades over 10,000, and the CSV export of them all; BENCH_DB=postgresql://…
bench-oversight: $(STAMP)
	$(BIN)/python bench/oversight.py --db $${BENCH_DB:-sqlite}

clean:
	rm -rf $(VENV) build *.egg-info

# A sandbox query on a 1,000,000-row table against a bare DuckDB; metered look-ups/s against /health.
bench-usage: $(STAMP)
	$(BIN)/python bench/usage.py --db $${BENCH_DB:-sqlite}

# DSP negotiations to FINALIZED per second against the native free-plan purchase, in one run.
bench-dsp: $(STAMP)
	$(BIN)/python bench/dsp.py --db $${BENCH_DB:-sqlite}
