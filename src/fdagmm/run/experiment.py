"""One run of one method (fdagmm, local, pooled, remote, a classical baseline), from a Hydra config: compose and dispatch.

``train`` checks the config and builds the run's objects once (the partitioner, the data set,
then ``federation.components.build_components``: strategy, privacy mechanism, training
clients), then runs the method in process (``_train_inprocess``: the
round loop of ``federation.inprocess``, or one Lightning ``fit`` for a centralised method)
or through Flower (``federation.flower.launcher``); both write the same results. A classical
baseline (``method.detector``) is fitted once, in process, and measured the same way.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from fdagmm.config import build, validate_config
from fdagmm.data.datamodule import ClientsDataModule, tested_clients
from fdagmm.data.dataset import ConnectionDataset, build_dataset
from fdagmm.data.partition import FilesPartition, Partitioner
from fdagmm.detection.evaluation import THRESHOLD_REFS, metrics_by_threshold_ref
from fdagmm.errors import ConfigError
from fdagmm.federation.checkpoint import CHECKPOINT_FILE, RoundCheckpoint, load_checkpoint, save_checkpoint
from fdagmm.federation.client import Client
from fdagmm.federation.components import (
    RunComponents,
    build_components,
    build_local_training,
    build_logger,
    export_detector,
    planned_training_steps,
    prepare_process,
)
from fdagmm.federation.inprocess import FrozenMixture, evaluate_every_client, evaluate_global_model, released_mixture, run_rounds
from fdagmm.federation.privacy import ClientLevelDP
from fdagmm.federation.record_privacy import RecordLevelDP
from fdagmm.federation.rounds import mixture_clients, round_record
from fdagmm.models.dagmm import DAGMM, GaussianMixture
from fdagmm.models.lit_module import DAGMMLitModule
from fdagmm.tracking import RoundLog, print_metrics_table, write_results

log = logging.getLogger(__name__)


class RoundEnd(pl.Callback):
    """Calls ``fn(round, module)`` every ``epochs_per_round`` epochs of centralised training."""

    def __init__(self, epochs_per_round: int, fn: Callable[[int, DAGMMLitModule], None]):
        self.epochs_per_round = epochs_per_round
        self.fn = fn

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: DAGMMLitModule) -> None:
        epochs = trainer.current_epoch + 1
        if epochs % self.epochs_per_round == 0:
            self.fn(epochs // self.epochs_per_round, pl_module)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate the configured method; write metrics.json and TensorBoard events.

    Returns the metrics.json payload: the final test metrics (with each threshold reference),
    every client's final metrics, their per-round history and the partition's record counts.
    With ``fed.resume=<run dir>`` a federated run killed after a round continues from its
    checkpoint, in its own run dir. With ``fed.backend=flower`` the same federation runs
    through Flower (fdagmm.federation.flower).
    """
    if cfg.fed.resume:
        cfg = _resumed_config(cfg)
    partitioner = build(cfg.partition)
    validate_config(cfg, partitioner)
    dataset = _run_dataset(cfg, partitioner)
    if partitioner.num_clients is None:  # partition=by_column: its clients are known once its values are counted
        cfg = _with_counted_clients(cfg, partitioner, dataset)
        validate_config(cfg, partitioner)
    run = build_components(cfg, partitioner)
    run.warn_if_insecure_noise()
    if cfg.fed.backend == "flower":
        from fdagmm.federation.flower.launcher import run_flower  # an optional extra: imported only here

        payload = run_flower(cfg, partitioner, dataset)
    elif cfg.method.detector is not None:
        payload = _fit_classical_detector(run, dataset)
    else:
        payload = _train_inprocess(run, dataset)
    if payload is not None and not dataset.schema.labelled:
        log.info("data.label_column=null: the records have no labels, so the run trained on all of them and measured no detection metric; model.pt scores new records")
    elif payload is not None:
        title = f"{run.label}, partition {cfg.partition.name}, seed {cfg.seed}"
        print_metrics_table(f"{title}: client {cfg.method.eval_client} test set", {"": payload["final"]})
        if len(payload["per_client"]) > 1:
            rows = {**payload["per_client"], "mean": payload["clients_mean"], "worst": payload["clients_worst"]}
            print_metrics_table(f"{title}: every client's test set", rows, row_label="client")
    return payload


def _run_dataset(cfg: DictConfig, partitioner: Partitioner | FilesPartition) -> ConnectionDataset:
    """The data set the run reads: with ``partition=files``, its schema over the clients' own files."""
    if not isinstance(partitioner, FilesPartition):
        return build_dataset(cfg.data)
    if cfg.data.get("evaluate_on", "test") != "test":
        raise ConfigError("data.evaluate_on=validation holds out part of one training file; with partition=files give each client a validation file as its test_path")
    log.info("partition=files: %d clients read their own files (data.train_path, test_path and test_fraction are not read)", partitioner.num_clients)
    return build_dataset(partitioner.data_config(cfg.data))


def _with_counted_clients(cfg: DictConfig, partitioner: Partitioner, dataset: ConnectionDataset) -> DictConfig:
    """``partition=by_column`` without ``top_n``: every value of the column is a client, so
    the partitioner's client count and the config's ``partition.top_n`` (which the saved and
    Flower's run configs carry) become their count, read from the records."""
    column = cfg.partition.column
    values = dataset.grouped_by(column).pools(cfg.seed).train[column]
    cfg = copy.deepcopy(cfg)
    cfg.partition.top_n = partitioner.num_clients = int(values.nunique())
    log.info("partition=by_column: %d values of %s, %d clients", cfg.partition.top_n, column, cfg.partition.top_n)
    return cfg


def _client_data(run: RunComponents, dataset: ConnectionDataset) -> ClientsDataModule:
    cfg, d = run.cfg, run.cfg.data
    datamodule = ClientsDataModule(dataset, d.batch_size, run.partitioner, cfg.seed, run.train_clients, d.scaling, d.scaling_records)
    datamodule.setup()
    log.info(
        "%s, partition %s, seed %d: %s", run.label, cfg.partition.name, cfg.seed,
        _short(datamodule.summary(), shared_test=datamodule.shared_test),
    )  # fmt: skip
    return datamodule


def _fit_classical_detector(run: RunComponents, dataset: ConnectionDataset) -> dict[str, Any]:
    """A classical baseline (method.detector): fitted once on the training clients' encoded
    records, scored and measured like DAGMM's energies (no rounds, no model.pt)."""
    cfg = run.cfg
    prepare_process(cfg)
    rounds = run.round_log()
    datamodule = _client_data(run, dataset)
    detector = build(cfg.method.detector).fit(datamodule.pooled_train_x().numpy())
    scores = {c.client_id: (detector.decision_function(c.train_x.numpy()), detector.decision_function(c.test_x.numpy())) for c in datamodule.clients}

    def metrics(client: int, threshold_refs: tuple[str, ...]) -> dict[str, dict[str, float]]:
        train_score, test_score = scores[client]
        others = [train for k, (train, _) in scores.items() if k != client]
        return metrics_by_threshold_ref(
            datamodule.clients[client].test_is_anomaly, test_score, train_score, others, cfg.eval.anomaly_ratio, threshold_refs
        )

    final_by_ref = metrics(cfg.method.eval_client, _threshold_refs(cfg))
    tested = tested_clients(datamodule.summary(), dataset.schema.labelled)
    per_client = {f"client{k}": metrics(k, ("own",))["own"] for k in scores if k in tested}
    return write_results(
        Path(cfg.paths.output_dir), run.run_info(), run.hparams(), rounds, final_by_ref, cfg.eval.threshold_ref, per_client,
        datamodule.summary(),
    )


def _threshold_refs(cfg: DictConfig) -> tuple[str, ...]:
    """The run's threshold reference, then the other one if asked (the study does not say which it used)."""
    others = [r for r in THRESHOLD_REFS if r != cfg.eval.threshold_ref] if cfg.eval.compare_threshold_refs else []
    return (cfg.eval.threshold_ref, *others)


def _train_inprocess(run: RunComponents, dataset: ConnectionDataset) -> dict[str, Any]:
    cfg = run.cfg
    prepare_process(cfg)
    rounds = run.round_log()
    train_clients = run.train_clients
    datamodule = _client_data(run, dataset)
    counts = datamodule.summary()

    training = build_local_training(
        cfg, datamodule.input_dim, planned_training_steps(cfg, (datamodule.clients[k].n_train for k in train_clients), cfg.fed.rounds)
    )
    module = training.build_module()
    run.check_model(module.net)
    if isinstance(run.privacy, ClientLevelDP) and not cfg.fed.resume:  # a run dir reused: an earlier run's releases are not this one's
        run.privacy.releases_path.unlink(missing_ok=True)
    clients = [run.client(data, training) for data in datamodule.clients]
    if isinstance(run.privacy, RecordLevelDP):
        run.privacy.with_sizes({k: clients[k].n_train for k in train_clients})
    gmm_clients = mixture_clients(cfg.fed.gmm_stats if cfg.method.federated else "global", cfg.method.eval_client, train_clients)

    # Each round's mixture, released once: the final evaluation reuses the last round's, and
    # under record-level DP round t+2 trains under round t's (a second release would cost
    # privacy, and under secret noise differ from the first).
    mixtures: dict[int, GaussianMixture] = {}

    def frozen_mixture(round_idx: int, net: DAGMM) -> GaussianMixture | None:
        """Record-level DP's pipeline (``federation.record_privacy``): the clients release their
        statistics under theta_{t-1}, and round t trains under the mixture of theta_{t-2}."""
        if round_idx - 1 not in mixtures:
            mixtures[round_idx - 1] = released_mixture(net, [clients[k] for k in gmm_clients], run.stats_release, round_idx - 1)
        return mixtures.get(round_idx - 2)

    def evaluate(net: DAGMM, threshold_refs: tuple[str, ...], round_idx: int, log_scores_at: int | None = None):
        mixture, metrics = evaluate_global_model(
            net, clients, gmm_clients, cfg.method.eval_client, cfg.eval.anomaly_ratio, threshold_refs, training.device,
            round_idx, run.stats_release, log_scores_at, mixtures.get(round_idx),
        )
        mixtures[round_idx] = mixture
        return mixture, metrics

    def on_round_end(round_idx: int, net: DAGMM, train_losses: dict[str, float], **extra: Any) -> None:
        metrics: dict[str, float] = {}
        if rounds.evaluates(round_idx):
            _, by_ref = evaluate(net, (cfg.eval.threshold_ref,), round_idx)
            metrics = by_ref[cfg.eval.threshold_ref]
        rounds.record(round_idx, train_losses, metrics, **extra)

    if cfg.method.federated:
        _train_federated(
            run, module.net, {k: clients[k] for k in train_clients}, rounds, on_round_end,
            frozen_mixture if isinstance(run.privacy, RecordLevelDP) else None,
        )  # fmt: skip
    else:
        # Centralised baselines train as many epochs as the federation does (rounds x local
        # epochs) with one optimiser, and are evaluated at the same points.
        trainer = training.build_trainer(
            max_epochs=cfg.fed.rounds * cfg.fed.local_epochs,
            logger=build_logger(cfg, "train"),
            callbacks=[
                RoundEnd(
                    cfg.fed.local_epochs,
                    lambda r, m: on_round_end(r, m.net, {"train": m.pop_mean_loss()}),
                )
            ],
        )
        trainer.fit(module, datamodule=datamodule)

    # The final model, under every threshold reference if asked; the evaluated client logs its
    # test energies to its own TensorBoard dir.
    mixture, final_by_ref = evaluate(module.net, _threshold_refs(cfg), cfg.fed.rounds, log_scores_at=cfg.fed.rounds)
    # Every client's test set: with the federation's mixture, or each with its own (gmm_stats=local).
    own_mixtures = cfg.method.federated and cfg.fed.gmm_stats == "local"
    tested = tested_clients(counts, dataset.schema.labelled)
    per_client = evaluate_every_client(module.net, [c for c in clients if c.client_id in tested], None if own_mixtures else mixture, cfg.eval.anomaly_ratio)
    export_detector(
        cfg, dataset.name, module.net, mixture, datamodule.encoder, clients[cfg.method.eval_client],
        final_by_ref[cfg.eval.threshold_ref], Path(cfg.paths.output_dir),
    )
    return write_results(
        Path(cfg.paths.output_dir), run.run_info(), run.hparams(), rounds, final_by_ref, cfg.eval.threshold_ref, per_client, counts
    )


def _train_federated(
    run: RunComponents,
    global_net: DAGMM,
    clients: dict[int, Client],
    rounds: RoundLog,
    on_round_end: Callable[..., None],
    frozen_mixture: FrozenMixture | None = None,
) -> None:
    """The federation's rounds, with a checkpoint after each."""
    cfg, strategy = run.cfg, run.strategy
    checkpoint_path = Path(cfg.paths.output_dir) / CHECKPOINT_FILE
    identity = _run_identity(cfg)
    first_round = 1
    if cfg.fed.resume:
        checkpoint = load_checkpoint(checkpoint_path, identity)
        global_net.load_state_dict(checkpoint.global_state)
        strategy.load_state_dict(checkpoint.strategy_state)
        rounds.history[:] = checkpoint.history
        for client in clients.values():
            client.logger.step_offset = checkpoint.step_offsets[str(client.client_id)]
            client.personal_state = checkpoint.personal_states.get(str(client.client_id), {})
            client.optimizer_state = checkpoint.optimizer_states.get(str(client.client_id))
        first_round = checkpoint.round + 1
        log.info("resuming %s after round %d", cfg.paths.output_dir, checkpoint.round)

    def round_end(round_idx: int, updates: list, rejected: dict[int, str], sampled: list[int]) -> None:
        losses, extra = round_record(updates, rejected, sampled, len(clients), run.secure_aggregation)
        on_round_end(round_idx, global_net, losses, **extra)
        save_checkpoint(
            checkpoint_path,
            RoundCheckpoint(
                round=round_idx,
                global_state=global_net.state_dict(),
                strategy_state=strategy.state_dict(),
                personal_states={str(k): c.personal_state for k, c in clients.items() if c.personal_state},
                optimizer_states={str(k): c.optimizer_state for k, c in clients.items() if c.optimizer_state is not None},
                history=rounds.history,
                step_offsets={str(k): c.logger.step_offset for k, c in clients.items()},
                run_identity=identity,
            ),
        )

    run_rounds(
        global_net, clients, strategy, cfg.fed.rounds, cfg.fed.min_clients, run.sample_round, round_end, first_round, frozen_mixture,
        run.secure_aggregation,
    )  # fmt: skip


def _short(counts: dict[str, dict[str, int]], shown: int = 4, shared_test: bool = False) -> str:
    """Record counts for the log: every client's up to ``shown`` clients, then a total (of the
    training records only when every client is tested on the same test set)."""
    if len(counts) <= shown:
        return str(counts)
    first = next(iter(counts.values()))
    if shared_test:
        n_train = sum(c["n_train"] for c in counts.values())
        return f"{len(counts)} clients, {n_train} training records in all, each tested on the same {first['n_test']} ({first['n_test_anomalies']} anomalies)"
    total = {key: sum(c[key] for c in counts.values()) for key in first}
    return f"{len(counts)} clients, {total} in all"


def _resumed_config(cfg: DictConfig) -> DictConfig:
    """The interrupted run's own config, writing into its own run dir."""
    run_dir = Path(cfg.fed.resume)
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"fed.resume={run_dir}: no .hydra/config.yaml there; pass the run dir of the interrupted run")
    resumed = OmegaConf.load(saved)
    if not resumed.method.federated:
        raise ConfigError(f"fed.resume={run_dir}: that run is centralised ({resumed.method.name}); only federated runs resume")
    resumed.paths.output_dir = str(run_dir)
    resumed.fed.resume = str(run_dir)
    return resumed


def _run_identity(cfg: DictConfig) -> str:
    """The settings that determine a run's results, as resolved YAML."""
    keys = ("data", "partition", "model", "strategy", "privacy", "fed", "method", "eval", "trainer", "seed", "torch_threads")
    identity = {k: OmegaConf.to_container(cfg[k], resolve=True) if isinstance(cfg[k], DictConfig) else cfg[k] for k in keys}
    for key in ("resume", "flower"):  # where and how long to wait: not what the run computes
        identity["fed"].pop(key)
    return OmegaConf.to_yaml(identity)
