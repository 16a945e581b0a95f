# FDAGMM: `make install train` sets up a machine and runs the main experiment; `make test` tests.
PYTHON ?= python3
# Local copies of the built-in data sets' files (KDDCUP99, NSL-KDD, UNSW-NB15), linked into
# data/ by `make data` when the folder exists; without them KDDCUP99 is downloaded through
# scikit-learn and the others are passed by path (docs/data.md).
DATA_SOURCE ?= ../shared/data

# Optional dependency groups for `make install`: the test tools and the scoring service
# (.ci/run adds flower: EXTRAS=dev,flower,serve).
EXTRAS ?= dev,serve

# `make bench BENCH_ARGS=` leaves out the Flower and secure-aggregation sections (minutes each; skipped without Flower).
BENCH_ARGS ?= --flower --secure-aggregation
# `make bench SERVE_BENCH_ARGS="--model <run dir> --clients 8"`: the load test's options (src/bench_serve.py --help).
SERVE_BENCH_ARGS ?=

# Where an experiment target writes its sweeps: outputs/<target>/<date_time> (`make reproduce`:
# outputs/reproduce/...); ARGS adds Hydra overrides (ARGS="data.train_path=...").
ifndef SWEEP_DIR
SWEEP_DIR := outputs/$(or $(firstword $(MAKECMDGOALS)),reproduce)/$(shell date +%Y-%m-%d_%H-%M-%S)
endif

.PHONY: help install data train flower-demo reproduce privacy-cost private-learning record-dp baselines model-selection model-ablations model-refinement modern-benchmarks data-poor-site benchmark strategy-tuning strategies who-gains who-gains-attacks personalisation-selection bench bench-gpu test fuzz tensorboard clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install:  ## install the package with its pinned dependencies, test tools and the scoring service (EXTRAS=dev,serve,flower adds Flower)
	$(PYTHON) -m pip install -e ".[$(EXTRAS)]"
	@$(MAKE) --no-print-directory data

data:  ## link the data files of $(DATA_SOURCE) into data/ (those data/ has no copy of yet)
	@mkdir -p data; for f in "$(DATA_SOURCE)"/*.gz "$(DATA_SOURCE)"/*.txt "$(DATA_SOURCE)"/*.csv; do \
		[ -f "$$f" ] && [ ! -e "data/$$(basename "$$f")" ] && ln -s "$$(realpath "$$f")" "data/$$(basename "$$f")" && \
		echo "linked $$f into data/"; done; true

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

NO_DP := privacy=none privacy.target_epsilon=null
# private-learning's setting: private_learning (UNSW-NB15) or private_benchmark (the DAGMM benchmark, KDDCUP99).
PRIVATE_LEARNING ?= private_learning
# private-learning's tuning (docs/privacy.md, "Tuning DP-FedAvg"): name:overrides(comma-separated) per
# candidate, in the rule's order, each run on validation data (DP_VALIDATION); the private sweep then
# runs the one src/privacy_cost.py chooses. Empty (private_learning's default): no tuning.
ifeq ($(PRIVATE_LEARNING),private_benchmark)
DP_CANDIDATES ?= 1_base: 2_clip_0.005:privacy.clip_norm=0.005 3_clip_0.1:privacy.clip_norm=0.1 \
	4_adaptive:privacy.adaptive_clipping=true,privacy.clipped_count_stddev=2 \
	5_momentum:strategy=fedavgm,strategy.server_momentum=0.9 \
	6_server_lr:strategy=fedavgm,strategy.server_momentum=0,strategy.server_learning_rate=0.1 \
	7_per_round_30:fed.clients_per_round=30 8_rounds_100:fed.rounds=100
DP_VALIDATION ?= data.test_fraction=0.5 data.evaluate_on=validation privacy.target_epsilon=3 seed=0
endif
private-learning:  ## does DP-FedAvg learn where training matters? 100 clients (PRIVATE_LEARNING=private_learning: UNSW-NB15; private_benchmark: the DAGMM benchmark, tuned on validation data first): epsilon 1/3/8, no DP, an untrained network, clients 0-9 alone, seeds 0-2 (45 jobs; private_benchmark 8 validation jobs before them), then a table and a figure
	@start=$$(date +%s); validation=""; \
	for candidate in $(DP_CANDIDATES); do \
		name=$${candidate%%:*}; overrides=$$(echo $${candidate#*:} | tr , ' '); \
		$(PYTHON) src/train.py experiment=$(PRIVATE_LEARNING) $$overrides $(DP_VALIDATION) hydra.sweep.dir=$(SWEEP_DIR)/validation/$$name $(ARGS) || exit 1; \
		validation="$$validation $(SWEEP_DIR)/validation/$$name"; \
	done; \
	chosen=""; if [ -n "$$validation" ]; then chosen=$$($(PYTHON) src/privacy_cost.py --print-choice --validation $$validation) || exit 1; \
		echo "make private-learning: chosen on validation data: $${chosen:-the setting as it is}"; fi; \
	$(PYTHON) src/train.py experiment=$(PRIVATE_LEARNING) $$chosen hydra.sweep.dir=$(SWEEP_DIR)/dp $(ARGS) && \
	$(PYTHON) src/train.py experiment=$(PRIVATE_LEARNING) $(NO_DP) hydra.sweep.dir=$(SWEEP_DIR)/none $(ARGS) && \
	$(PYTHON) src/train.py experiment=$(PRIVATE_LEARNING) $(NO_DP) model.optimizer.lr=1e-12 hydra.sweep.dir=$(SWEEP_DIR)/untrained $(ARGS) && \
	$(PYTHON) src/train.py experiment=$(PRIVATE_LEARNING) $(NO_DP) method=local method.home_client=0,1,2,3,4,5,6,7,8,9 fed.clients_per_round=null hydra.sweep.dir=$(SWEEP_DIR)/alone $(ARGS) || exit 1; \
	$(PYTHON) src/privacy_cost.py $(foreach s,dp none untrained alone,$(SWEEP_DIR)/$(s)) $${validation:+--validation $$validation} --figure docs/figures/$(PRIVATE_LEARNING).png --wall-time-s $$(( $$(date +%s) - start ))

# record-dp: per setting, name:overrides(comma-separated):learning-rate grid. With a grid, the private
# runs sweep it on validation data and on the test set, and the table keeps, per epsilon, the rate the
# validation runs choose (docs/privacy.md); without one, they run at the configuration's own rate.
RECORD_DP_SETTINGS ?= nsl_kdd:data=nsl_kdd,partition=data_poor:1e-3,1e-4,1e-5 unsw_nb15:data=unsw_nb15,partition=data_poor:1e-3,1e-4,1e-5 s1:scenario=s1: s2:scenario=s2: s3:scenario=s3: s4:scenario=s4:
record-dp:  ## what record-level DP costs the data-poor client 0: epsilon 1/3/8 (learning rate chosen on validation data where a grid is given), no DP, an untrained network, client 0 alone, seeds 0-2, per setting of RECORD_DP_SETTINGS, then a table per setting
	@start=$$(date +%s); status=0; \
	for setting in $(RECORD_DP_SETTINGS); do \
		name=$${setting%%:*}; rest=$${setting#*:}; overrides=$$(echo $${rest%%:*} | tr , ' '); grid=$${rest#*:}; dir=$(SWEEP_DIR)/$$name; \
		run="$(PYTHON) src/train.py experiment=record_dp_cost $$overrides"; \
		if [ -n "$$grid" ]; then \
			$$run model.optimizer.lr=$$grid data.evaluate_on=validation hydra.sweep.dir=$$dir/dp_validation $(ARGS) && \
			$$run model.optimizer.lr=$$grid hydra.sweep.dir=$$dir/dp $(ARGS) && validation="--validation $$dir/dp_validation"; \
		else \
			$$run hydra.sweep.dir=$$dir/dp $(ARGS) && validation=""; \
		fi && \
		$$run $(NO_DP) hydra.sweep.dir=$$dir/none $(ARGS) && \
		$$run $(NO_DP) model.optimizer.lr=1e-12 hydra.sweep.dir=$$dir/untrained $(ARGS) && \
		$$run $(NO_DP) method=local method.home_client=0 hydra.sweep.dir=$$dir/alone $(ARGS) && \
		$(PYTHON) src/privacy_cost.py $$dir/dp $$dir/none $$dir/untrained $$dir/alone $$validation --figure $$dir/record_dp.png || status=1; \
	done; \
	wall=$$(( $$(date +%s) - start )); \
	echo "make record-dp: wall time $$((wall / 60)) min $$((wall % 60)) s; tables: $(SWEEP_DIR)/*/privacy_cost.md"; \
	exit $$status

# The detection study's experiments (docs/results.md): each runs one job at a time into SWEEP_DIR, then writes its report there.
baselines:  ## Isolation Forest and PCA reconstruction, client 0 alone and pooled, s1-s4 x seeds 0-4 (80 jobs)
	$(PYTHON) src/train.py experiment=baselines hydra.sweep.dir=$(SWEEP_DIR) $(ARGS); \
	$(PYTHON) src/report.py $(SWEEP_DIR)

# NSL-KDD and UNSW-NB15 (benign traffic trains). Sweeps run one job at a time; one thread per
# job (two processes on two cores with more threads each slow each other down many times over).
MODERN_DATA ?= nsl_kdd unsw_nb15
PAPER_DAGMM = model=dagmm model.net.latent_dim=1 model.net.distance_feature=relative model.net.n_components=4 model.optimizer.lr=0.0001
# The configuration grid of the rule in docs/results.md ("Choosing the configuration").
SELECTION_GRID = model.net.latent_dim=1,4,8,16 model.net.distance_feature=relative,log_relative model.net.n_components=4,8 seed=0,1

model-selection:  ## choose DAGMM's configuration for benign-training data sets on validation data (34 jobs per data set), then selection.md
	@start=$$(date +%s); \
	for d in $(MODERN_DATA); do \
		$(PYTHON) src/train.py experiment=model_selection data=$$d $(SELECTION_GRID) hydra.sweep.dir=$(SWEEP_DIR)/grid/$$d $(ARGS) || exit 1; \
		$(PYTHON) src/train.py experiment=model_selection data=$$d $(PAPER_DAGMM) seed=0,1 hydra.sweep.dir=$(SWEEP_DIR)/paper/$$d $(ARGS) || exit 1; \
	done; \
	$(PYTHON) src/report.py $(foreach d,$(MODERN_DATA),$(SWEEP_DIR)/grid/$(d) $(SWEEP_DIR)/paper/$(d)) --select || exit 1; \
	wall=$$(( $$(date +%s) - start )); echo "make model-selection: wall time $$((wall / 60)) min $$((wall % 60)) s"

# One factor at a time around each data set's model, on validation data (reported, not chosen
# on), and the classical detectors on the same validation data.
ABLATIONS = model.lambda_energy=0.01,0.5 model.lambda_cov=0,0.05 fed.rounds=20,120 \
	data.scaling=federated_minmax,federated_standard,federated_robust,federated_quantile \
	model.net.reconstruction_features=false model.net.detach_reconstruction_features=true \
	model.lr_schedule=cosine model.cov_jitter=0.0001 \
	method=iforest_pooled,pca_pooled,ecod_pooled,autoencoder_pooled
model-ablations:  ## one-factor ablations of the chosen configuration on validation data, seeds 0-1, then ablation.md
	@start=$$(date +%s); \
	for d in $(MODERN_DATA); do \
		$(PYTHON) src/train.py experiment=model_selection data=$$d seed=0,1 hydra.sweep.dir=$(SWEEP_DIR)/chosen/$$d $(ARGS) || exit 1; \
		for a in $(ABLATIONS); do \
			$(PYTHON) src/train.py experiment=model_selection data=$$d $$a seed=0,1 hydra.sweep.dir=$(SWEEP_DIR)/$${a%%=*}/$$d $(ARGS) || exit 1; \
		done; \
	done; \
	$(PYTHON) src/report.py $(foreach a,chosen $(foreach x,$(ABLATIONS),$(firstword $(subst =, ,$(x)))),$(foreach d,$(MODERN_DATA),$(SWEEP_DIR)/$(a)/$(d))) --ablation || exit 1; \
	wall=$$(( $$(date +%s) - start )); echo "make model-ablations: wall time $$((wall / 60)) min $$((wall % 60)) s"

# The third round (docs/results.md): around the second round's configuration (federated_quantile),
# on validation data; REFINEMENTS: one setting each.
REFINEMENTS = 'model.net.hidden_dims=[64,32],[128,64,32]' model.net.detach_reconstruction_features=true model.lambda_energy=0.5
model-refinement:  ## the third round of the choice: the compression network's width and two settings, on validation data, seeds 0-1, then ablation.md
	@start=$$(date +%s); \
	for d in $(MODERN_DATA); do \
		$(PYTHON) src/train.py experiment=model_selection data=$$d data.scaling=federated_quantile seed=0,1 hydra.sweep.dir=$(SWEEP_DIR)/quantile/$$d $(ARGS) || exit 1; \
		for a in $(REFINEMENTS); do \
			$(PYTHON) src/train.py experiment=model_selection data=$$d data.scaling=federated_quantile "$$a" seed=0,1 hydra.sweep.dir=$(SWEEP_DIR)/$${a%%=*}/$$d $(ARGS) || exit 1; \
		done; \
	done; \
	$(PYTHON) src/report.py $(foreach a,quantile $(foreach x,$(REFINEMENTS),$(firstword $(subst =, ,$(subst ',,$(x))))),$(foreach d,$(MODERN_DATA),$(SWEEP_DIR)/$(a)/$(d))) --ablation || exit 1; \
	wall=$$(( $$(date +%s) - start )); echo "make model-refinement: wall time $$((wall / 60)) min $$((wall % 60)) s"

modern-benchmarks:  ## DAGMM (chosen and paper configurations), FDAGMM and four classical detectors on the NSL-KDD and UNSW-NB15 test sets, seeds 0-4
	@start=$$(date +%s); status=0; \
	for d in $(MODERN_DATA); do \
		$(PYTHON) src/train.py experiment=modern_benchmarks data=$$d hydra.sweep.dir=$(SWEEP_DIR)/$$d $(ARGS) || status=1; \
		$(PYTHON) src/train.py experiment=modern_benchmarks data=$$d method=pooled $(PAPER_DAGMM) hydra.sweep.dir=$(SWEEP_DIR)/$${d}_paper $(ARGS) || status=1; \
		$(PYTHON) src/report.py $(SWEEP_DIR)/$$d || status=1; \
		$(PYTHON) src/report.py $(SWEEP_DIR)/$${d}_paper || status=1; \
	done; \
	$(PYTHON) src/report.py $(foreach d,$(MODERN_DATA),$(SWEEP_DIR)/$(d) $(SWEEP_DIR)/$(d)_paper) --figures "pooled, latent 8" || status=1; \
	wall=$$(( $$(date +%s) - start )); \
	echo "make modern-benchmarks: wall time $$((wall / 60)) min $$((wall % 60)) s; reports: $(SWEEP_DIR)/*/report.md"; \
	exit $$status

data-poor-site:  ## a data-poor site (1/5/10% of the benign records) with one data-rich site: alone, FedAvg, FedAdam, pooled, classical detectors alone; seeds 0-4
	@start=$$(date +%s); status=0; \
	for d in $(MODERN_DATA); do \
		$(PYTHON) src/train.py experiment=data_poor_site data=$$d hydra.sweep.dir=$(SWEEP_DIR)/$$d $(ARGS) || status=1; \
		$(PYTHON) src/train.py experiment=data_poor_site data=$$d method=fdagmm strategy=fedadam hydra.sweep.dir=$(SWEEP_DIR)/$${d}_fedadam $(ARGS) || status=1; \
		$(PYTHON) src/report.py $(SWEEP_DIR)/$$d $(SWEEP_DIR)/$${d}_fedadam || status=1; \
	done; \
	wall=$$(( $$(date +%s) - start )); \
	echo "make data-poor-site: wall time $$((wall / 60)) min $$((wall % 60)) s; reports: $(SWEEP_DIR)/*/report.md"; \
	exit $$status

benchmark:  ## DAGMM on the paper's KDDCUP99 protocol, trained and untrained, seeds 0-4 (10 jobs)
	$(PYTHON) src/train.py experiment=dagmm_benchmark hydra.sweep.dir=$(SWEEP_DIR) $(ARGS); \
	$(PYTHON) src/report.py $(SWEEP_DIR)

strategy-tuning:  ## each strategy's main hyper-parameter, 2 values, s1 and s3, seeds 5-9 (80 jobs), then the value the rule picks
	$(PYTHON) src/train.py experiment=strategies scenario=s1,s3 seed=5,6,7,8,9 strategy=fedavgm strategy.server_momentum=0.5,0.9 hydra.sweep.dir=$(SWEEP_DIR)/fedavgm $(ARGS)
	$(PYTHON) src/train.py experiment=strategies scenario=s1,s3 seed=5,6,7,8,9 strategy=fedadam strategy.eta=0.001,0.01 hydra.sweep.dir=$(SWEEP_DIR)/fedadam $(ARGS)
	$(PYTHON) src/train.py experiment=strategies scenario=s1,s3 seed=5,6,7,8,9 strategy=fedprox strategy.proximal_mu=0.01,0.1 hydra.sweep.dir=$(SWEEP_DIR)/fedprox $(ARGS)
	$(PYTHON) src/train.py experiment=strategies scenario=s1,s3 seed=5,6,7,8,9 strategy=fedper fed.gmm_stats=global,local hydra.sweep.dir=$(SWEEP_DIR)/fedper $(ARGS)
	$(PYTHON) src/report.py $(SWEEP_DIR)/fedavgm --by strategy.server_momentum
	$(PYTHON) src/report.py $(SWEEP_DIR)/fedadam --by strategy.eta
	$(PYTHON) src/report.py $(SWEEP_DIR)/fedprox --by strategy.proximal_mu
	$(PYTHON) src/report.py $(SWEEP_DIR)/fedper --by fed.gmm_stats

strategies:  ## the strategies, FedAvg, DAGMM C0 and the pooled bound on s1-s4 x seeds 0-4 (140 jobs; seed 0 measured every round), then one report
	$(PYTHON) src/train.py experiment=strategies seed=1,2,3,4 hydra.sweep.dir=$(SWEEP_DIR)/federated $(ARGS)
	$(PYTHON) src/train.py experiment=strategies seed=0 eval.every_n_rounds=1 hydra.sweep.dir=$(SWEEP_DIR)/federated_seed0 $(ARGS)
	$(PYTHON) src/train.py experiment=strategies strategy=fedavg method=local,pooled seed=0,1,2,3,4 hydra.sweep.dir=$(SWEEP_DIR)/alone_and_pooled $(ARGS)
	$(PYTHON) src/report.py $(SWEEP_DIR)/federated $(SWEEP_DIR)/federated_seed0 $(SWEEP_DIR)/alone_and_pooled

who-gains:  ## K=10 Dirichlet clients: FedAvg, FedAdam (experiment=best's strategy) and each client alone, alpha 0.1/0.5/5 x seeds 0-4 (180 jobs), then who_gains.md and its figure for each federation
	$(PYTHON) src/train.py experiment=who_gains method=fdagmm hydra.sweep.dir=$(SWEEP_DIR)/fedavg $(ARGS)
	$(PYTHON) src/train.py experiment=who_gains method=local method.home_client=0,1,2,3,4,5,6,7,8,9 hydra.sweep.dir=$(SWEEP_DIR)/alone $(ARGS)
	$(PYTHON) src/train.py experiment=who_gains method=fdagmm strategy=fedadam hydra.sweep.dir=$(SWEEP_DIR)/fedadam $(ARGS)
	$(PYTHON) src/report.py $(SWEEP_DIR)/fedavg --who-gains $(SWEEP_DIR)/alone
	$(PYTHON) src/report.py $(SWEEP_DIR)/fedadam --who-gains $(SWEEP_DIR)/alone

# K organisations where benign traffic trains, each testing on its own attacks; WHO_GAINS_K: the federations' sizes.
WHO_GAINS_K ?= 5 10
# The federations `make who-gains-attacks` compares with each client alone (name: overrides).
WHO_GAINS_FEDERATIONS ?= fedavg
FEDERATION_fedavg := method=fdagmm
FEDERATION_fedadam := method=fdagmm strategy=fedadam
FEDERATION_own_mixture := method=fdagmm fed.gmm_stats=local
FEDERATION_fedper := method=fdagmm strategy=fedper
FEDERATION_fedper_own_mixture := method=fdagmm strategy=fedper fed.gmm_stats=local
who-gains-attacks:  ## NSL-KDD and UNSW-NB15, K=5 and 10 organisations with their own attacks (attack_alpha 0.1/0.5/5) and unequal sizes, seeds 0-4: each client alone and FedAvg, then who_gains.md per federation
	@start=$$(date +%s); status=0; \
	for d in $(MODERN_DATA); do for k in $(WHO_GAINS_K); do \
		run="$(PYTHON) src/train.py experiment=who_gains_attacks data=$$d partition.num_clients=$$k"; \
		$$run method=local method.home_client=$$(seq -s, 0 $$((k - 1))) hydra.sweep.dir=$(SWEEP_DIR)/$$d/k$$k/alone $(ARGS) || status=1; \
		$(foreach f,$(WHO_GAINS_FEDERATIONS),$$run $(FEDERATION_$(f)) hydra.sweep.dir=$(SWEEP_DIR)/$$d/k$$k/$(f) $(ARGS) || status=1; \
		$(PYTHON) src/report.py $(SWEEP_DIR)/$$d/k$$k/$(f) --who-gains $(SWEEP_DIR)/$$d/k$$k/alone || status=1;) \
	done; done; \
	wall=$$(( $$(date +%s) - start )); \
	echo "make who-gains-attacks: wall time $$((wall / 60)) min $$((wall % 60)) s; reports: $(SWEEP_DIR)/*/k*/*/who_gains.md"; \
	exit $$status

personalisation-selection:  ## the personalisation rule's candidates on validation data (docs/results.md): FedAvg, FedAvg with each client's own mixture, FedPer, FedPer with its own mixture, each against the clients alone
	@$(MAKE) --no-print-directory who-gains-attacks SWEEP_DIR=$(SWEEP_DIR) WHO_GAINS_FEDERATIONS="fedavg own_mixture fedper fedper_own_mixture" ARGS="data.evaluate_on=validation $(ARGS)"; status=$$?; \
	$(PYTHON) src/report.py $(SWEEP_DIR) --personalisation && exit $$status

bench:  ## performance figures against baselines run in the same process, a Flower round against an in-process one, the scoring service's load test
	$(PYTHON) src/bench.py --data data/kddcup.data_10_percent.gz $(BENCH_ARGS)
	$(PYTHON) src/bench_serve.py --data data/UNSW_NB15_testing-set.csv.gz $(SERVE_BENCH_ARGS)

bench-gpu:  ## on a GPU machine: the main command on the GPU against its CPU cores, round parts, make reproduce's sweep (figures in outputs/bench_gpu)
	$(PYTHON) src/bench_gpu.py --data data/kddcup.data_10_percent.gz $(GPU_BENCH_ARGS)

test:  ## the test suite, slow end-to-end tests included (property-based ones in their quick profile)
	$(PYTHON) -m pytest

fuzz:  ## the property-based tests (readers, encoder, energy, scorer) with many more examples each
	HYPOTHESIS_PROFILE=fuzz $(PYTHON) -m pytest -m fuzz

tensorboard:  ## TensorBoard over every run under outputs/
	tensorboard --logdir outputs/

clean:  ## remove caches (outputs/ and data/ are kept)
	rm -rf .pytest_cache src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
