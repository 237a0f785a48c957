# Two commands for a new machine: `make demo` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEVSTAMP:= $(VENV)/.installed-dev
SRC     := pyproject.toml

.PHONY: demo test lint fleet simulate harness bench bench-peers bench-grid soak clean system-deps

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python $(SRC)
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEVSTAMP): $(BIN)/python $(SRC)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(STAMP)

demo: $(STAMP)
	$(BIN)/banditlb demo

test: $(DEVSTAMP) system-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -q

lint: $(DEVSTAMP)
	$(BIN)/ruff check src tests bench

fleet: $(STAMP)
	$(BIN)/banditlb fleet

simulate: $(STAMP)
	$(BIN)/banditlb simulate --strategies all --scenarios T1,T2,T3 --requests 1000 --seeds 20

harness: $(STAMP)
	$(BIN)/banditlb harness --strategies all --scenarios T1,T2,T3 --requests 100 --rps 10

# Speed figures of bench/README.md, one script per part (each prints its own table).
bench: $(DEVSTAMP)
	$(BIN)/python bench/strategy_micro.py
	$(BIN)/python bench/sim_speed.py
	$(BIN)/python bench/fleet_throughput.py
	$(BIN)/python bench/proxy_latency.py

# Peer benchmark (issue #6): throughput side by side (~5 min, pinned with taskset, not
# niced so the figures are the machine's), then auto vs nginx vs HAProxy scored live and
# simulated for every arrival process (uniform, poisson, burst:10, closed:10; ~45 min,
# niced; a seed runs again when the shared machine stalls). Other processes:
# `make bench-peers ARRIVALS=uniform,burst:20`.
# Rewrites docs/benchmarks.md and docs/img/peers-*.png from bench/peers/results/.
bench-peers: $(STAMP)
	$(BIN)/python -m bench.peers.throughput
	nice -n 5 $(BIN)/python -m bench.peers.run $(if $(ARRIVALS),--arrivals $(ARRIVALS))

# Robustness grid (issue #11): every strategy simulated on 8 limiter classes x 4 arrival
# modes (10 seeds x 1,000 requests a cell, ~150 CPU-s, 2-3 min), then auto vs nginx vs HAProxy
# live on 4 classes x 2 modes (3 seeds x 300 requests, ~4 min; niced). Other flags (see
# `python -m bench.grid.run --help`): `make bench-grid GRID_ARGS="--skip-live --seeds 20"`.
# Rewrites only the grid section of docs/benchmarks.md, and docs/img/robustness-grid.png.
bench-grid: $(STAMP)
	nice -n 5 $(BIN)/python -m bench.grid.run $(GRID_ARGS)

# Long reliability runs (issue #7, ~12 min): 1,000 req/s burst, 5-minute live soak,
# 24 h virtual soak, kill -9 crashes, slowloris; prints the figures of docs/reliability.md.
soak: $(DEVSTAMP)
	$(BIN)/python bench/soak/run_all.py

# Browser tests drive Debian's Chromium (no browser download at test time).
system-deps:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }
	@command -v redis-server >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
