# nmt — one command each: `make train`, `make test`. Targets that need the environment depend on it.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
ARGS    ?=
NPROC   ?= 2
export NMT_DATA_ROOT ?= $(abspath ../shared/data)

.PHONY: install test test-fast train translate demo check bench sweep align train-ddp report clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,align,sweep,deploy]'
	touch $(STAMP)

# every test, one process per core (pytest-xdist; each test runs on one thread, tests/conftest.py);
# the 15 slowest are listed (CI's budget: 20 minutes on a 2-core CPU, AVX2 only)
test: $(STAMP)
	$(BIN)/python -m pytest tests -n auto --dist worksteal --durations=15

# the tests not marked slow (under a minute): for the edit-test loop; `make test` runs them all
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not slow"

train: $(STAMP)
	$(BIN)/nmt-train $(ARGS)

# make train-ddp NPROC=N [ARGS="..."]: DistributedDataParallel on one machine (gloo on CPU, NCCL on
# GPU). Several machines: run on each `make train-ddp NPROC=N NNODES=M RDZV=host:port [RDZV_ID=job]`
# (torchrun's c10d rendezvous at host:port, which must be reachable from every node).
train-ddp: $(STAMP)
	$(BIN)/torchrun $(if $(RDZV),--nnodes $(or $(NNODES),1) --rdzv_backend c10d --rdzv_endpoint $(RDZV) --rdzv_id $(or $(RDZV_ID),nmt),--standalone) --nproc_per_node $(NPROC) -m nmt.train $(ARGS)

translate: $(STAMP)
	$(BIN)/nmt-translate $(ARGS)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py $(ARGS)

# make bench [ARGS="--workloads rnn_bahdanau,transformer --steps 50 --precision bf16 --preprocess ..."]:
# the reference workload of every RNN attention and the Transformer, preprocessing at 29k/290k/2.9M
# lines; prints a table and writes bench.json (see scripts/bench.py --help).
bench: $(STAMP)
	$(BIN)/python scripts/bench.py $(ARGS)

# make sweep [SWEEP=cpu|cpu3|gpu|hard|sparse] [ARGS="seed=1,2,3 ..."]: conf/sweep/$(SWEEP).yaml, then
# the report of its folder (also when a run failed, so that the failure is listed); re-running
# skips the runs that finished. hard and sparse write beside the cpu preset's soft runs.
SWEEP_DIR = multirun/sweep-$(if $(filter hard sparse,$(SWEEP)),cpu,$(or $(SWEEP),cpu))
sweep: $(STAMP)
	$(BIN)/nmt-train -m +sweep=$(or $(SWEEP),cpu) $(ARGS); status=$$?; \
	$(BIN)/nmt-report $(SWEEP_DIR) && exit $$status

# make align [ARGS="+variant=luong_general,transformer ..."]: conf/sweep/align.yaml (both directions,
# unguided and guided), then the AER table (methods chosen on gold lines 1-100, reported on
# 101-508) in multirun/align/alignment.md, and the leaderboard with AER.
align: $(STAMP)
	$(BIN)/nmt-train -m +sweep=align $(ARGS); status=$$?; \
	$(BIN)/python -m nmt.align.sweep multirun/align && $(BIN)/nmt-report multirun/align && exit $$status

check: $(STAMP)
	$(BIN)/ruff check nmt tests scripts
	$(BIN)/ruff format --check nmt tests scripts
	$(BIN)/lint-imports

report: $(STAMP)
	$(BIN)/nmt-report $(or $(DIR),multirun)

clean:
	rm -rf outputs multirun .pytest_cache
