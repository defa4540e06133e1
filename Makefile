# EcoMarket: `make run` and `make test` work on a fresh machine with Python 3.11.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export DAGSTER_HOME := $(CURDIR)
export ECOMARKET_DAGSTER_STORAGE ?= $(CURDIR)/.dagster
export ECOMARKET_DAGSTER_COMPUTE_LOGS ?= $(CURDIR)/.dagster/logs
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false

.PHONY: run dev collector bench-collector bench-soak api bench-api bench-realtime live-stream test test-slow test-postgres test-all test-browser bench bench-clv bench-sentiment bench-forecast bench-rec bench-campaigns bench-scale bench-daily bench-real mlflow-ui rollback promote models lint clean install

install: $(STAMP)

# torch first and pinned: the CPU build lies on local disk; an unpinned torch pulls CUDA (GBs).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "EcoMarket needs Python 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	@mkdir -p $(ECOMARKET_DAGSTER_STORAGE)
	$(BIN)/python -m ecomarket_assets.run_all

dev: $(STAMP)
	@mkdir -p $(ECOMARKET_DAGSTER_STORAGE)
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

# The event collector on 127.0.0.1:8010 (API keys: ECOMARKET_COLLECTOR_KEYS=shop1:key1,...); docs at /docs.
collector: $(STAMP)
	$(BIN)/python -m ecomarket_assets.collector --host 127.0.0.1 --port $${COLLECTOR_PORT:-8010}

# The recommendation API on 127.0.0.1:8020 (GET /v1/recommendations/{user_id}?k=10&viewed=p1,p2); docs at /docs.
api: $(STAMP)
	$(BIN)/python -m ecomarket_assets.serving --host 127.0.0.1 --port $${API_PORT:-8020}

bench-api: $(STAMP)
	$(BIN)/python benchmarks/recommendation_api.py --data-dir $${ECOMARKET_DATA_DIR:-data}

# Two workers, one test file each at a time (module fixtures are built once): 2 cores, half the wall time.
test: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile --durations=15

test-slow: $(STAMP)
	$(BIN)/pytest -m slow

test-postgres: $(STAMP)
	$(BIN)/pytest -m postgres

test-all: $(STAMP)
	$(BIN)/pytest -m "slow or not slow"

# Headless Chromium against `dagster dev` and `mlflow server` (needs Debian's chromium); screenshots in screenshots/.
test-browser: $(STAMP)
	$(BIN)/pytest -m browser

bench: $(STAMP)
	$(BIN)/python benchmarks/ingestion.py
	$(BIN)/python benchmarks/shopify_source.py
	$(BIN)/python benchmarks/sql_source.py

# Collector throughput and latency: batches of 100 over HTTP against a real uvicorn (prints figures).
bench-collector: $(STAMP)
	$(BIN)/python benchmarks/collector.py

# Kill -9 soak of the collector: 20 SIGKILLs while posting 100,000 events with every awkward character, then each
# acknowledged event is looked for, unchanged, in the landing files, raw_events and the flow feed (prints figures).
bench-soak: $(STAMP)
	$(BIN)/python benchmarks/collector_soak.py

# Collector, triggered flows (event-to-send) and recommendation API latency; about 17 minutes with the demo build, prints figures.
bench-realtime: $(STAMP)
	$(BIN)/python benchmarks/realtime.py

# The simulator's live stream posted to the running collector: make live-stream KEY=s3cret [MINUTES=10] [SPEED=1]
live-stream: $(STAMP)
	$(BIN)/python -m ecomarket_assets.simulator.live --collector http://127.0.0.1:$${COLLECTOR_PORT:-8010} --key $(KEY) \
		--minutes $(or $(MINUTES),10) --speed $(or $(SPEED),1)

bench-clv: $(STAMP)
	$(BIN)/python benchmarks/clv_cdnow.py

bench-sentiment: $(STAMP)
	$(BIN)/python benchmarks/sentiment_eval.py

bench-forecast: $(STAMP)
	$(BIN)/python benchmarks/forecast_backtest.py

bench-rec: $(STAMP)
	$(BIN)/python benchmarks/recommender_eval.py

bench-campaigns: $(STAMP)
	$(BIN)/python benchmarks/campaign_eval.py

# user_features + demand aggregation at 1M/10M/50M events: local engine vs a 2-worker Dask LocalCluster.
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/scale.py

# A night (one new day) vs a full rebuild and the whole graph on Online Retail, warm retrain vs full search,
# each running state at 10M simulated events (about 1 h; the 10M shop is kept in $TMPDIR/ecomarket-scale).
bench-daily: $(STAMP)
	$(BIN)/python benchmarks/daily.py all

# Each model against its strongest simple rivals on Online Retail (and CDNOW), at three rolling 28-day origins (~25 min).
bench-real: $(STAMP)
	$(BIN)/python benchmarks/real.py

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db --host 127.0.0.1 --port 5000

lint: $(STAMP)
	$(BIN)/ruff check ecomarket_assets ecomarket_assets_tests benchmarks

clean:
	rm -rf data .dagster mlruns/mlflow.db mlruns/[0-9]* .pytest_cache

# Registry: who serves (`make models`) and one-command rollback (`make rollback MODEL=recommender`).
models: $(STAMP)
	$(BIN)/python -m ecomarket_assets.mlops.cli status

rollback: $(STAMP)
	@test -n "$(MODEL)" || { echo "usage: make rollback MODEL=demand_forecaster|recommender|campaign_uplift"; exit 2; }
	$(BIN)/python -m ecomarket_assets.mlops.cli rollback $(MODEL)

# Run a model's promotion step now (VERSION: default the challenger; ALLOW_ROLLED_BACK=1 to judge a rolled-back one).
promote: $(STAMP)
	@test -n "$(MODEL)" || { echo "usage: make promote MODEL=demand_forecaster|recommender|campaign_uplift [VERSION=n] [ALLOW_ROLLED_BACK=1]"; exit 2; }
	$(BIN)/python -m ecomarket_assets.mlops.cli promote $(MODEL) $(if $(VERSION),--version $(VERSION)) $(if $(ALLOW_ROLLED_BACK),--allow-rolled-back)
