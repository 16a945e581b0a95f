"""One run of one method of the study (local, fdagmm, pooled, remote), from a Hydra config."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from fdagmm.checkpoint import CHECKPOINT_FILE, RoundCheckpoint, load_checkpoint, save_checkpoint
from fdagmm.client import Client, LocalTraining
from fdagmm.config import train_clients_of, validate_config
from fdagmm.dagmm import DAGMM, GaussianMixture
from fdagmm.datamodule import KDDClientsDataModule
from fdagmm.detector import MODEL_FILE, N_QUANTILES, Detector
from fdagmm.errors import ConfigError
from fdagmm.evaluation import THRESHOLD_REFS
from fdagmm.features import FeatureEncoder
from fdagmm.lit_module import DAGMMLitModule
from fdagmm.server import evaluate_global_model, run_fedavg
from fdagmm.tracking import (
    ContinuousStepLogger,
    log_hparams,
    print_metrics_table,
    write_json_atomic,
)

log = logging.getLogger(__name__)

# Metrics shown in the per-round progress line.
PROGRESS_METRICS = ("test/auroc", "test/f1")


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
    their per-round history and the partition's record counts. With ``fed.resume=<run dir>``
    a federated run killed after a round continues from its checkpoint, in its own run dir.
    With ``fed.backend=flower`` the same federation runs through Flower (fdagmm.flower).
    """
    if cfg.fed.resume:
        cfg = _resumed_config(cfg)
    validate_config(cfg)
    if cfg.fed.backend == "flower":
        from fdagmm.flower.deployment import run_flower  # an optional extra: imported only here

        payload = run_flower(cfg)
    else:
        payload = _train_inprocess(cfg)
    if payload is not None:
        print_metrics_table(
            f"{cfg.method.label}, scenario {cfg.scenario.name}, seed {cfg.seed}: "
            f"client {cfg.method.eval_client} test set",
            payload["final"],
        )
    return payload


def prepare_process(cfg: DictConfig) -> None:
    """Seeds, thread count and Lightning's logging, for any process that trains or evaluates."""
    _quiet_lightning()
    pl.seed_everything(cfg.seed, verbose=False)
    if cfg.torch_threads is not None:
        torch.set_num_threads(cfg.torch_threads)


def local_training(cfg: DictConfig, input_dim: int) -> LocalTraining:
    return LocalTraining(
        build_module=partial(instantiate, cfg.model, net={"input_dim": input_dim}),
        build_trainer=partial(instantiate, cfg.trainer),
        local_epochs=cfg.fed.local_epochs,
        batch_size=cfg.data.batch_size,
        seed=cfg.seed,
    )


class RoundLog:
    """Each round's record: metrics.json's history, the server's TensorBoard scalars and a
    progress line."""

    def __init__(self, cfg: DictConfig, server_logger: ContinuousStepLogger):
        self.cfg = cfg
        self.server_logger = server_logger
        self.history: list[dict[str, Any]] = []
        self.started = time.perf_counter()

    def evaluates(self, round_idx: int) -> bool:
        """Whether the test metrics are measured after this round."""
        return round_idx % self.cfg.eval.every_n_rounds == 0 or round_idx == self.cfg.fed.rounds

    def record(self, round_idx: int, train_losses: dict[str, float], metrics: dict[str, float], **extra: Any) -> None:
        losses = {f"train/loss/{name}": loss for name, loss in train_losses.items()}
        self.history.append({"round": round_idx, **losses, **metrics, **extra})
        self.server_logger.log_metrics({**losses, **metrics}, step=round_idx)
        log.info(
            "round %d/%d  %s  %s  (%.0f s)",
            round_idx,
            self.cfg.fed.rounds,
            "  ".join(f"{name} loss {loss:.4g}" for name, loss in train_losses.items()),
            "  ".join(f"{key} {metrics[key]:.4f}" for key in PROGRESS_METRICS if key in metrics),
            time.perf_counter() - self.started,
        )


def write_results(
    cfg: DictConfig,
    rounds: RoundLog,
    final_by_ref: dict[str, dict[str, float]],
    counts: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """HParams for TensorBoard and metrics.json in the run dir; returns metrics.json's payload."""
    final = final_by_ref[cfg.eval.threshold_ref]
    log_hparams(rounds.server_logger, _hparams(cfg), final)
    payload = {
        "method": cfg.method.name,
        "scenario": cfg.scenario.name,
        "seed": cfg.seed,
        "eval_client": cfg.method.eval_client,
        "final": final,
        "final_by_threshold_ref": final_by_ref,
        "history": rounds.history,
        "partition": counts,
    }
    write_json_atomic(Path(cfg.paths.output_dir) / "metrics.json", payload)
    log.info("done in %.0f s; results in %s", time.perf_counter() - rounds.started, cfg.paths.output_dir)
    return payload


def _train_inprocess(cfg: DictConfig) -> dict[str, Any]:
    prepare_process(cfg)
    new_logger = partial(instantiate, cfg.logger)
    rounds = RoundLog(cfg, new_logger(name="server"))
    train_clients = train_clients_of(cfg)
    datamodule: KDDClientsDataModule = instantiate(
        cfg.data,
        scenario=OmegaConf.to_container(cfg.scenario),
        seed=cfg.seed,
        train_clients=train_clients,
    )
    datamodule.setup()
    counts = datamodule.summary()
    log.info("%s, scenario %s, seed %d: %s", cfg.method.label, cfg.scenario.name, cfg.seed, counts)

    training = local_training(cfg, datamodule.input_dim)
    clients = [
        Client(data, cfg.model.cov_jitter, training, new_logger(name=f"client{data.client_id}"))
        for data in datamodule.clients
    ]
    # Where Lightning trains (trainer.accelerator=auto: a GPU if there is one); evaluation runs there too.
    device = training.build_trainer(max_epochs=1, logger=False).strategy.root_device
    gmm_local = cfg.method.federated and cfg.fed.gmm_stats == "local"
    evaluate = partial(
        evaluate_global_model,
        clients=clients,
        mixture_clients=[cfg.method.eval_client] if gmm_local else train_clients,
        eval_client=cfg.method.eval_client,
        anomaly_ratio=cfg.eval.anomaly_ratio,
        device=device,
    )

    def on_round_end(round_idx: int, net: DAGMM, train_losses: dict[str, float], **extra: Any) -> None:
        metrics: dict[str, float] = {}
        if rounds.evaluates(round_idx):
            _, by_ref = evaluate(net, threshold_refs=(cfg.eval.threshold_ref,))
            metrics = by_ref[cfg.eval.threshold_ref]
        rounds.record(round_idx, train_losses, metrics, **extra)

    module = training.build_module()
    if cfg.method.federated:
        _train_federated(cfg, module.net, [clients[k] for k in train_clients], rounds, on_round_end)
    else:
        # Centralised baselines train as many epochs as the federation does (rounds x local
        # epochs) with one optimiser, and are evaluated at the same points.
        trainer = training.build_trainer(
            max_epochs=cfg.fed.rounds * cfg.fed.local_epochs,
            logger=new_logger(name="train"),
            callbacks=[
                RoundEnd(
                    cfg.fed.local_epochs,
                    lambda r, m: on_round_end(r, m.net, {"train": m.pop_mean_loss()}),
                )
            ],
        )
        trainer.fit(module, datamodule=datamodule)

    # The final model, under every threshold reference if asked (the study does not say which
    # it used); the evaluated client logs its test energies to its own TensorBoard dir.
    others = [r for r in THRESHOLD_REFS if r != cfg.eval.threshold_ref] if cfg.eval.compare_threshold_refs else []
    refs = (cfg.eval.threshold_ref, *others)
    mixture, final_by_ref = evaluate(module.net, threshold_refs=refs, log_scores_at=cfg.fed.rounds)
    export_detector(
        cfg, module.net, mixture, datamodule.encoder, clients[cfg.method.eval_client],
        final_by_ref[cfg.eval.threshold_ref], Path(cfg.paths.output_dir),
    )
    return write_results(cfg, rounds, final_by_ref, counts)


def export_detector(
    cfg: DictConfig,
    net: DAGMM,
    mixture: GaussianMixture,
    encoder: FeatureEncoder,
    eval_client: Client,
    final: dict[str, float],
    output_dir: Path,
) -> None:
    """Save model.pt: what the evaluated client needs to score new records on its own."""
    Detector(
        net=net.cpu(),
        net_kwargs={k: v for k, v in OmegaConf.to_container(cfg.model.net).items() if k != "_target_"}
        | {"input_dim": encoder.dim},
        mixture=mixture,
        encoder=encoder,
        cov_jitter=cfg.model.cov_jitter,
        threshold=final["test/threshold"],
        anomaly_ratio=cfg.eval.anomaly_ratio,
        reference_quantiles=eval_client.reference_quantiles(net, mixture, N_QUANTILES),
        config=OmegaConf.to_yaml(cfg, resolve=True),
    ).save(output_dir / MODEL_FILE)


def _train_federated(
    cfg: DictConfig,
    global_net: DAGMM,
    clients: list[Client],
    rounds: RoundLog,
    on_round_end: Callable[..., None],
) -> None:
    """FedAvg rounds, with a checkpoint after each."""
    checkpoint_path = Path(cfg.paths.output_dir) / CHECKPOINT_FILE
    identity = _run_identity(cfg)
    first_round = 1
    if cfg.fed.resume:
        checkpoint = load_checkpoint(checkpoint_path, identity)
        global_net.load_state_dict(checkpoint.global_state)
        rounds.history[:] = checkpoint.history
        for client in clients:
            client.logger.step_offset = checkpoint.step_offsets[str(client.client_id)]
        first_round = checkpoint.round + 1
        log.info("resuming %s after round %d", cfg.paths.output_dir, checkpoint.round)

    def round_end(round_idx: int, updates: list, rejected: dict[int, str]) -> None:
        extra = {"excluded_clients": {str(k): why for k, why in rejected.items()}} if rejected else {}
        losses = {f"client{u.client_id}": u.train_loss for u in updates}
        on_round_end(round_idx, global_net, losses, **extra)
        save_checkpoint(
            checkpoint_path,
            RoundCheckpoint(
                round=round_idx,
                global_state=global_net.state_dict(),
                history=rounds.history,
                step_offsets={str(c.client_id): c.logger.step_offset for c in clients},
                run_identity=identity,
            ),
        )

    run_fedavg(global_net, clients, cfg.fed.rounds, cfg.fed.min_clients, round_end, first_round)


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
    keys = ("data", "scenario", "model", "fed", "method", "eval", "trainer", "seed", "torch_threads")
    identity = {k: OmegaConf.to_container(cfg[k], resolve=True) if isinstance(cfg[k], DictConfig) else cfg[k] for k in keys}
    for key in ("resume", "flower"):  # where and how long to wait: not what the run computes
        identity["fed"].pop(key)
    return OmegaConf.to_yaml(identity)


def _hparams(cfg: DictConfig) -> dict[str, Any]:
    """The run's settings as flat scalars, for TensorBoard's HParams tab."""
    return {
        "method": cfg.method.name,
        "scenario": cfg.scenario.name,
        "seed": cfg.seed,
        "batch_size": cfg.data.batch_size,
        **{f"fed/{k}": v for k, v in cfg.fed.items() if k not in ("resume", "flower")},
        **{f"eval/{k}": v for k, v in cfg.eval.items()},
        "lr": cfg.model.optimizer.lr,
        "lambda_energy": cfg.model.lambda_energy,
        "lambda_cov": cfg.model.lambda_cov,
        "n_components": cfg.model.net.n_components,
    }


def _quiet_lightning() -> None:
    """A fresh Trainer per client per round would repeat Lightning's start-up notes each time."""
    for name in ("pytorch_lightning.utilities.rank_zero", "pytorch_lightning.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # The module writes its loss every log_every_n_steps steps of each round itself.
    warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
    # Lightning 2.6 calling an API that torch 2.13 deprecates; nothing for users to act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
