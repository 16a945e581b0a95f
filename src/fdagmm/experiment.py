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

from fdagmm.client import client_update
from fdagmm.config import train_clients_of, validate_config
from fdagmm.dagmm import DAGMM
from fdagmm.datamodule import KDDClientsDataModule
from fdagmm.evaluation import THRESHOLD_REFS, Evaluation, evaluate_model
from fdagmm.lit_module import DAGMMLitModule
from fdagmm.server import run_fedavg
from fdagmm.tracking import log_final_to_tensorboard, print_metrics_table, write_json_atomic

log = logging.getLogger(__name__)

# Metrics shown in the per-round progress line.
PROGRESS_METRICS = ("test/auroc", "test/f1")


class RoundEnd(pl.Callback):
    """Calls ``fn(round, module, device)`` every ``epochs_per_round`` epochs of centralised training."""

    def __init__(self, epochs_per_round: int, fn: Callable[[int, DAGMMLitModule, Any], None]):
        self.epochs_per_round = epochs_per_round
        self.fn = fn

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: DAGMMLitModule) -> None:
        epochs = trainer.current_epoch + 1
        if epochs % self.epochs_per_round == 0:
            self.fn(epochs // self.epochs_per_round, pl_module, trainer.strategy.root_device)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and evaluate the configured method; write metrics.json and TensorBoard events.

    Returns the metrics.json payload: the final test metrics, their per-round history and the
    partition's record counts.
    """
    validate_config(cfg)
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    _quiet_lightning()
    pl.seed_everything(cfg.seed, verbose=False)
    if cfg.torch_threads is not None:
        torch.set_num_threads(cfg.torch_threads)

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

    build_module = partial(instantiate, cfg.model, net={"input_dim": datamodule.input_dim})
    build_trainer = partial(instantiate, cfg.trainer)
    new_logger = partial(instantiate, cfg.logger)
    server_logger = new_logger(name="server")
    gmm_local = cfg.method.federated and cfg.fed.gmm_stats == "local"
    evaluate = partial(
        evaluate_model,
        clients=datamodule.clients,
        mixture_clients=[cfg.method.eval_client] if gmm_local else train_clients,
        eval_client=cfg.method.eval_client,
        anomaly_ratio=cfg.eval.anomaly_ratio,
        cov_jitter=cfg.model.cov_jitter,
    )

    history: list[dict[str, float]] = []
    latest: list[Evaluation] = []

    # The final model is also measured with the other threshold reference (metrics.json's
    # final_by_threshold_ref): the study does not say which one it used.
    other_refs = tuple(ref for ref in THRESHOLD_REFS if ref != cfg.eval.threshold_ref)

    def on_round_end(round_idx: int, net: DAGMM, device: Any, train_losses: dict[str, float]) -> None:
        last = round_idx == cfg.fed.rounds
        refs = (cfg.eval.threshold_ref, *(other_refs if last else ()))
        evaluation = evaluate(net, device=device, threshold_refs=refs)
        latest[:] = [evaluation]
        losses = {f"train/loss/{name}": loss for name, loss in train_losses.items()}
        history.append({"round": round_idx, **losses, **evaluation.metrics})
        server_logger.log_metrics({**losses, **evaluation.metrics}, step=round_idx)
        log.info(
            "round %d/%d  %s  %s  (%.0f s)",
            round_idx,
            cfg.fed.rounds,
            "  ".join(f"{name} loss {loss:.4g}" for name, loss in train_losses.items()),
            "  ".join(f"{key} {evaluation.metrics[key]:.4f}" for key in PROGRESS_METRICS),
            time.perf_counter() - started,
        )

    module = build_module()
    if cfg.method.federated:
        loggers = {k: new_logger(name=f"client{k}") for k in train_clients}
        updates = [
            partial(
                _client_round,
                client=datamodule.clients[k],
                local_epochs=cfg.fed.local_epochs,
                batch_size=cfg.data.batch_size,
                seed=cfg.seed,
                build_module=build_module,
                build_trainer=build_trainer,
                logger=loggers[k],
            )
            for k in train_clients
        ]
        run_fedavg(
            module.net,
            cfg.fed.rounds,
            updates,
            on_round_end=lambda r, ups: on_round_end(
                r, module.net, ups[0].device, {f"client{u.client_id}": u.train_loss for u in ups}
            ),
        )
    else:
        # Centralised baselines train as many epochs as the federation does (rounds x local
        # epochs) with one optimiser, and are evaluated at the same points.
        trainer = build_trainer(
            max_epochs=cfg.fed.rounds * cfg.fed.local_epochs,
            logger=new_logger(name="train"),
            callbacks=[
                RoundEnd(
                    cfg.fed.local_epochs,
                    lambda r, m, device: on_round_end(r, m.net, device, {"train": m.pop_mean_loss()}),
                )
            ],
        )
        trainer.fit(module, datamodule=datamodule)

    final = {k: v for k, v in history[-1].items() if k.startswith("test/")}
    log_final_to_tensorboard(
        server_logger,
        hparams=_hparams(cfg),
        final=final,
        test_energy=latest[0].test_energy,
        test_is_anomaly=latest[0].test_is_anomaly,
        step=cfg.fed.rounds,
    )
    payload = {
        "method": cfg.method.name,
        "scenario": cfg.scenario.name,
        "seed": cfg.seed,
        "eval_client": cfg.method.eval_client,
        "final": final,
        "final_by_threshold_ref": latest[0].metrics_by_threshold_ref,
        "history": history,
        "partition": counts,
    }
    write_json_atomic(output_dir / "metrics.json", payload)
    log.info("done in %.0f s; results in %s", time.perf_counter() - started, output_dir)
    print_metrics_table(
        f"{cfg.method.label}, scenario {cfg.scenario.name}, seed {cfg.seed}: "
        f"client {cfg.method.eval_client} test set",
        final,
    )
    return payload


def _client_round(round_idx: int, global_state: dict, **kwargs: Any):
    return client_update(global_state=global_state, round_idx=round_idx, **kwargs)


def _hparams(cfg: DictConfig) -> dict[str, Any]:
    """The run's settings as flat scalars, for TensorBoard's HParams tab."""
    return {
        "method": cfg.method.name,
        "scenario": cfg.scenario.name,
        "seed": cfg.seed,
        "batch_size": cfg.data.batch_size,
        **{f"fed/{k}": v for k, v in cfg.fed.items()},
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
    # Lightning 2.6 calling an API that torch 2.13 deprecates; nothing for users to act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
