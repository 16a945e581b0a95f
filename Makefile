# FDAGMM: `make install train` sets up a machine and runs the main experiment; `make test` tests.
PYTHON ?= python3
# A local copy of the KDDCUP99 10% file, linked into data/ by `make data` when it exists;
# without one the program downloads the file through scikit-learn.
KDD_FILE ?= ../shared/data/kddcup.data_10_percent.gz

# Optional dependency groups for `make install` (.ci/run adds flower: EXTRAS=dev,flower).
EXTRAS ?= dev

# `make bench BENCH_ARGS=` leaves out the Flower section (a few minutes; skipped without Flower).
BENCH_ARGS ?= --flower

# Where `make reproduce` writes its sweep; ARGS adds Hydra overrides (ARGS="data.path=...").
ifndef SWEEP_DIR
SWEEP_DIR := outputs/reproduce/$(shell date +%Y-%m-%d_%H-%M-%S)
endif

.PHONY: help install data train flower-demo reproduce privacy-cost bench test fuzz tensorboard clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install:  ## install the package with its pinned dependencies and test tools (EXTRAS=dev,flower adds Flower)
	$(PYTHON) -m pip install -e ".[$(EXTRAS)]"
	@$(MAKE) --no-print-directory data

data:  ## link $(KDD_FILE) into data/ if it exists and data/ has no copy yet
	@if [ -f "$(KDD_FILE)" ] && [ ! -e data/kddcup.data_10_percent.gz ]; then \
		mkdir -p data && ln -s "$$(realpath "$(KDD_FILE)")" data/kddcup.data_10_percent.gz && \
		echo "linked $(KDD_FILE) into data/"; fi

train:  ## FDAGMM on scenario 3, 20 rounds (the README's main command)
	$(PYTHON) src/train.py scenario=s3 fed.rounds=20

flower-demo:  ## 2 FDAGMM rounds through Flower: SuperLink + one SuperNode per client on 127.0.0.1
	@$(PYTHON) -c "import flwr" 2>/dev/null || $(PYTHON) -m pip install -e ".[flower]"
	$(PYTHON) src/train.py fed.backend=flower scenario=s3 fed.rounds=2 $(ARGS)

# A sweep with failed jobs (exit status 1) still gets its report, which lists them; make then fails.
reproduce:  ## the whole study (4 scenarios x 4 methods x 5 seeds), then its report
	@start=$$(date +%s); \
	$(PYTHON) src/train.py experiment=reproduce hydra.sweep.dir=$(SWEEP_DIR) $(ARGS); sweep=$$?; \
	[ -d "$(SWEEP_DIR)" ] || exit $$sweep; \
	wall=$$(( $$(date +%s) - start )); \
	$(PYTHON) src/report.py $(SWEEP_DIR) --wall-time-s $$wall || exit 1; \
	echo "make reproduce: wall time $$((wall / 60)) min $$((wall % 60)) s; report: $(SWEEP_DIR)/report.md"; \
	exit $$sweep

# Three sweeps (client-level DP at epsilon 1, 3, 8; no DP; DP with each client's own mixture),
# one job at a time, then the table and docs/figures/privacy_cost.png.
PRIVACY_DIR ?= outputs/privacy_cost
privacy-cost:  ## AUROC against epsilon (docs/privacy.md): 21 runs of 50 clients, then a table and a figure
	@start=$$(date +%s); \
	$(PYTHON) src/train.py experiment=privacy_cost hydra.sweep.dir=$(PRIVACY_DIR)/dp $(ARGS) && \
	$(PYTHON) src/train.py experiment=privacy_cost privacy=none privacy.target_epsilon=null hydra.sweep.dir=$(PRIVACY_DIR)/none $(ARGS) && \
	$(PYTHON) src/train.py experiment=privacy_cost fed.gmm_stats=local hydra.sweep.dir=$(PRIVACY_DIR)/local $(ARGS) || exit 1; \
	$(PYTHON) src/privacy_cost.py $(PRIVACY_DIR)/dp $(PRIVACY_DIR)/none $(PRIVACY_DIR)/local --wall-time-s $$(( $$(date +%s) - start ))

bench:  ## performance figures against baselines run in the same process, and a Flower round against an in-process one
	$(PYTHON) src/bench.py --data data/kddcup.data_10_percent.gz $(BENCH_ARGS)

test:  ## the test suite, slow end-to-end tests included (property-based ones in their quick profile)
	$(PYTHON) -m pytest

fuzz:  ## the property-based tests (readers, encoder, energy, scorer) with many more examples each
	HYPOTHESIS_PROFILE=fuzz $(PYTHON) -m pytest -m fuzz

tensorboard:  ## TensorBoard over every run under outputs/
	tensorboard --logdir outputs/

clean:  ## remove caches (outputs/ and data/ are kept)
	rm -rf .pytest_cache src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
