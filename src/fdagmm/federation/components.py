"""The run's composition root: its objects built once from its config, for both backends.

``build_components`` builds what the config chooses (the partitioner, the strategy, the
privacy mechanism, the training clients) once per process; ``RunComponents`` passes them to
what uses them: the clients it makes, the round sampler, the round log and what metrics.json
and TensorBoard say the run was. The in-process driver (``run.experiment``) and the Flower
apps (``federation.flower``) compose a run here, so that both backends train, aggregate and
record alike. ``build_local_training`` (how a client trains) and ``export_detector``
(model.pt) are built here too, once the data's encoded width is known.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from fdagmm.config import build, clipped_count_stddev, trained_clients
from fdagmm.data.features import FeatureEncoder
from fdagmm.data.partition import FilesPartition, Partitioner
from fdagmm.detection.detector import MODEL_FILE, N_QUANTILES, Detector
from fdagmm.errors import ConfigError
from fdagmm.federation.client import Client, LocalTraining
from fdagmm.federation.privacy import RELEASES_FILE, AdaptiveClipping, ClientLevelDP, DPFedAvg
from fdagmm.federation.record_privacy import RecordLevelDP
from fdagmm.federation.rounds import StatsRelease, sample_clients
from fdagmm.federation.strategies import Strategy
from fdagmm.models.dagmm import DAGMM, GaussianMixture
from fdagmm.tracking import ContinuousStepLogger, RoundLog, evaluated_round

log = logging.getLogger(__name__)


def prepare_process(cfg: DictConfig) -> None:
    """Seeds, thread count and Lightning's logging, for any process that trains or evaluates."""
    _quiet_lightning()
    pl.seed_everything(cfg.seed, verbose=False)
    if cfg.torch_threads is not None:
        torch.set_num_threads(cfg.torch_threads)


# model.compile=auto: compile the training step once this process plans this many optimiser
# steps. On this project's 2-core CPU a compiled step (batch 1024) saves about 0.9 ms over the
# eager one, and compiling costs about 4 s with a warm inductor cache and 20 s cold
# (docs/performance.md): about 20,000 steps pay for a cold compile. The README's main command
# plans about 3,900; 20 rounds of s3 on the full data set (10x the records) about 39,000.
COMPILE_PAYS_AFTER_STEPS = 20_000


def planned_training_steps(cfg: DictConfig, train_sizes: Iterable[int], rounds: int) -> int:
    """Optimiser steps over ``rounds`` rounds of clients with these training-set sizes; with
    client sampling, the expected share of them."""
    sizes = list(train_sizes)
    per_round = sum(math.ceil(n / cfg.data.batch_size) for n in sizes) * cfg.fed.local_epochs
    sampled = 1.0 if cfg.fed.clients_per_round is None else min(1.0, cfg.fed.clients_per_round / max(len(sizes), 1))
    return round(per_round * rounds * sampled)


def compiles_training(cfg: DictConfig, planned_steps: int) -> bool:
    """``model.compile``: true and false as set; auto compiles when the process trains on a CPU
    for long enough to pay for compiling. On a GPU auto stays eager: compiling cost 43 s
    there and did not pay for the README's run (docs/performance.md)."""
    if cfg.model.compile != "auto":
        return bool(cfg.model.compile)
    on_cpu = cfg.trainer.accelerator == "cpu" or not torch.cuda.is_available()
    return on_cpu and planned_steps >= COMPILE_PAYS_AFTER_STEPS


def build_local_training(cfg: DictConfig, input_dim: int, planned_steps: int = 0) -> LocalTraining:
    """How the clients train; ``planned_steps``, the optimiser steps this process will run,
    decides ``model.compile=auto``."""
    # Hydra resolves the configs once, into plain constructors: instantiating them anew for
    # every client in every round cost ~45 ms each, the bulk of a round's set-up at K=100.
    new_trainer = build(cfg.trainer, _partial_=True)
    device = new_trainer(max_epochs=1, logger=False).strategy.root_device  # trainer.accelerator=auto: a GPU if there is one
    new_net = build(cfg.model.net, input_dim=input_dim, _partial_=True)
    new_module = build(
        cfg.model, net=None, compile=compiles_training(cfg, planned_steps), cuda_graph=graphs_training(cfg, device),
        schedule_epochs=cfg.fed.rounds * cfg.fed.local_epochs, _partial_=True,
    )  # fmt: skip
    return LocalTraining(
        build_module=lambda: new_module(net=new_net()),
        build_trainer=new_trainer,
        local_epochs=cfg.fed.local_epochs,
        batch_size=cfg.data.batch_size,
        seed=cfg.seed,
        device=device,
        keep_optimizer_state=cfg.fed.get("keep_optimizer_state", False),
    )


def graphs_training(cfg: DictConfig, device: torch.device) -> bool:
    """``model.cuda_graph``: replay the training step from CUDA graphs when training on a GPU
    (on a CPU the setting has no effect). It takes the place of ``torch.compile`` there."""
    if not (cfg.model.cuda_graph and device.type == "cuda"):
        return False
    if cfg.model.get("lr_schedule", "constant") != "constant":
        raise ConfigError(f"model.lr_schedule={cfg.model.lr_schedule} changes the learning rate a CUDA graph records once: set model.cuda_graph=false")
    if cfg.model.compile is True:
        raise ConfigError("model.compile=true and model.cuda_graph=true both choose the GPU's training step: set one of them to false")
    return True


def build_components(cfg: DictConfig, partitioner: Partitioner | FilesPartition) -> RunComponents:
    """The run's objects, each built once: ``partitioner`` is the one built from ``cfg.partition``
    (whose clients are counted by now), the strategy is inside DP-FedAvg under differential
    privacy."""
    train_clients = trained_clients(cfg.method, partitioner.num_clients)
    privacy = build_privacy(cfg, len(train_clients))
    strategy = build(cfg.strategy)
    client_level = privacy is not None and not isinstance(privacy, RecordLevelDP)
    return RunComponents(cfg, partitioner, DPFedAvg(strategy, privacy) if client_level else strategy, privacy, train_clients)


def build_privacy(cfg: DictConfig, n_train_clients: int) -> ClientLevelDP | RecordLevelDP | None:
    """The run's differential privacy: client-level (``privacy=dp``), record-level
    (``privacy=record_dp``; each client's record count is set once known), or None (``privacy=none``)."""
    p = cfg.privacy
    if p.name == "none":
        return None
    if p.name == "record_dp":
        return RecordLevelDP(
            clip_norm=p.clip_norm,
            z_norm_bound=p.z_norm_bound,
            stats_noise_multiplier=p.stats_noise_multiplier,
            membership_weight=p.membership_weight,
            delta=p.delta,
            rounds=cfg.fed.rounds,
            local_epochs=cfg.fed.local_epochs,
            batch_size=cfg.data.batch_size,
            seed=cfg.seed,
            given_noise_multiplier=p.noise_multiplier,
            target_epsilon=p.target_epsilon,
            reproducible_noise=p.insecure_reproducible_noise,
        )
    per_round = cfg.fed.clients_per_round or n_train_clients
    rounds = range(1, cfg.fed.rounds + 1)
    return ClientLevelDP(
        clip_norm=p.clip_norm,
        stats_clip_norm=p.stats_clip_norm,
        delta=p.delta,
        sample_rate=per_round / n_train_clients,
        expected_clients=per_round,
        rounds=cfg.fed.rounds,
        # The evaluated rounds' statistics leave the clients only for the global mixture.
        stats_rounds=tuple(
            r for r in rounds if cfg.fed.gmm_stats == "global" and evaluated_round(r, cfg.eval.every_n_rounds, cfg.fed.rounds)
        ),
        seed=cfg.seed,
        given_noise_multiplier=p.noise_multiplier,
        target_epsilon=p.target_epsilon,
        reproducible_noise=p.insecure_reproducible_noise,
        releases_path=Path(cfg.paths.output_dir) / RELEASES_FILE,
        noise_at=p.noise_at,
        stats_clients=n_train_clients,
        adaptive=AdaptiveClipping(
            target_unclipped_quantile=p.target_unclipped_quantile,
            lr=p.clip_norm_lr,
            count_std=clipped_count_stddev(p, per_round),
        ) if p.adaptive_clipping else None,
    )  # fmt: skip


INSECURE_NOISE_WARNING = (
    "privacy.insecure_reproducible_noise=true: the DP noise and the clients of each round come from the run's seed, "
    "which every client receives: anyone in the federation can regenerate the noise and subtract it. NOT PRIVATE"
)


@dataclass(frozen=True)
class RunComponents:
    """A run's objects, built once by ``build_components`` and passed to what uses them."""

    cfg: DictConfig
    partitioner: Partitioner | FilesPartition
    strategy: Strategy  # the configured strategy, inside DP-FedAvg under client-level differential privacy
    privacy: ClientLevelDP | RecordLevelDP | None
    train_clients: list[int]  # the client ids whose training records the method uses

    @property
    def n_clients(self) -> int:
        return self.partitioner.num_clients

    @property
    def stats_privacy(self) -> ClientLevelDP | RecordLevelDP | None:
        """The differential privacy the mixture statistics leave the clients under: only the
        global mixture's do (``fed.gmm_stats=local`` keeps each client's at home)."""
        return self.privacy if self.cfg.fed.gmm_stats == "global" else None

    @property
    def secure_aggregation(self) -> bool:
        """Whether the server learns the clients' updates and statistics only as sums."""
        return bool(self.cfg.privacy.secure_aggregation)

    @property
    def stats_release(self) -> StatsRelease:
        """How the clients' mixture statistics become the federation's (``rounds.StatsRelease``)."""
        return StatsRelease(self.stats_privacy, self.secure_aggregation)

    @property
    def label(self) -> str:
        """The method's name in tables: a centralised method names the clients it trains on
        (the study's DAGMM C0, C1, C0&C1), or says pooled / all but C<k> past three clients."""
        m = self.cfg.method
        if m.federated:
            return m.label if self.strategy.name == "fedavg" else f"{m.label} ({self.strategy.name})"
        if len(self.train_clients) <= 3 or self.n_clients <= 3:
            return f"{m.label} " + "&".join(f"C{k}" for k in self.train_clients)
        return f"{m.label} pooled" if len(self.train_clients) == self.n_clients else f"{m.label} all but C{m.home_client}"

    def check_model(self, net: DAGMM) -> None:
        """A ConfigError now, not in every client, when the strategy names layers ``net`` lacks (FedPer)."""
        self.strategy.federated_keys(net.state_dict())

    def warn_if_insecure_noise(self) -> None:
        """The log's warning for a private run whose noise is not secret."""
        if self.privacy is not None and self.privacy.reproducible_noise:
            log.warning(INSECURE_NOISE_WARNING)

    def sample_round(self, clients: list[int], round_idx: int) -> list[int]:
        """The clients of ``clients`` that train in round ``round_idx`` (``rounds.sample_clients``):
        Poisson under client-level differential privacy, from the secure source unless
        ``privacy.insecure_reproducible_noise``."""
        private = self.privacy is not None and not isinstance(self.privacy, RecordLevelDP)
        secret = private and not self.privacy.reproducible_noise
        return sample_clients(clients, self.cfg.fed.clients_per_round, self.cfg.seed, round_idx, private, secret)

    def client(self, data, training: LocalTraining, save_dir: Path | None = None) -> Client:
        """The federation's client holding ``data``, logging under ``save_dir`` (default: the run dir's tensorboard/)."""
        return Client(
            data, self.cfg.model.cov_jitter, training, self.strategy, build_logger(self.cfg, f"client{data.client_id}", save_dir), self.privacy
        )

    def round_log(self, save_dir: Path | None = None) -> RoundLog:
        return RoundLog(
            self.cfg.fed.rounds, self.cfg.eval.every_n_rounds, build_logger(self.cfg, "server", save_dir),
            privacy_metrics=None if self.privacy is None else self.privacy.round_metrics,
        )  # fmt: skip

    def run_info(self) -> dict[str, Any]:
        """What metrics.json says the run was; under differential privacy, its parameters and
        the epsilon spent by the end of the run."""
        cfg = self.cfg
        info = {
            "method": cfg.method.name,
            "label": self.label,
            "scenario": cfg.partition.name,
            "strategy": self.strategy.name,
            "n_clients": self.n_clients,
            "seed": cfg.seed,
            "eval_client": cfg.method.eval_client,
        }
        privacy = self.privacy
        if isinstance(privacy, RecordLevelDP):
            info["privacy"] = privacy.run_info()
        elif privacy is not None:
            info["privacy"] = {
                "mechanism": "dp-fedavg",
                "epsilon": privacy.epsilon_after(cfg.fed.rounds),
                "delta": privacy.delta,
                "noise_multiplier": privacy.noise_multiplier,
                "clip_norm": cfg.privacy.clip_norm,
                "stats_clip_norm": privacy.stats_clip_norm,
                "sample_rate": privacy.sample_rate,
                "stats_releases": len(privacy.stats_rounds),
                "noise": "reproducible from the run's seed: NOT PRIVATE" if privacy.reproducible_noise else "secret",
                "noise_at": privacy.noise_at,
            }
            if privacy.noise_at == "clients":
                info["privacy"]["epsilon_against"] = "the server (no amplification by sampling)"
            if privacy.adaptive is not None:
                info["privacy"] |= {"adaptive_clipping": True, "final_clip_norm": privacy.clip_norm, "update_noise_multiplier": privacy.update_noise_multiplier}
        if self.secure_aggregation:
            info.setdefault("privacy", {})["secure_aggregation"] = True
        return info

    def hparams(self) -> dict[str, Any]:
        """The run's settings as flat scalars, for TensorBoard's HParams tab."""
        cfg = self.cfg
        return {
            "method": cfg.method.name,
            "partition": cfg.partition.name,
            "strategy": self.strategy.name,
            "privacy": cfg.privacy.name,
            **({f"privacy/{k}": v for k, v in cfg.privacy.items() if k != "name" and v is not None} if cfg.privacy.name != "none" else {}),
            "privacy/secure_aggregation": self.secure_aggregation,
            "seed": cfg.seed,
            "batch_size": cfg.data.batch_size,
            **{f"fed/{k}": v for k, v in cfg.fed.items() if k not in ("resume", "flower", "clients_per_round")},
            "fed/clients_per_round": cfg.fed.clients_per_round or self.n_clients,
            **{f"eval/{k}": v for k, v in cfg.eval.items()},
            "lr": cfg.model.optimizer.lr,
            "lambda_energy": cfg.model.lambda_energy,
            "lambda_cov": cfg.model.lambda_cov,
            "n_components": cfg.model.net.n_components,
        }


def build_logger(cfg: DictConfig, name: str, save_dir: Path | None = None) -> ContinuousStepLogger:
    """A TensorBoard logger under the run dir's tensorboard/<name> (or ``save_dir``/<name>)."""
    return build(cfg.logger, name=name, **({"save_dir": str(save_dir)} if save_dir is not None else {}))


def export_detector(
    cfg: DictConfig,
    dataset_name: str,
    net: DAGMM,
    mixture: GaussianMixture,
    encoder: FeatureEncoder,
    eval_client: Client,
    final: dict[str, float],
    output_dir: Path,
) -> None:
    """Save model.pt: what the evaluated client needs to score new records on its own."""
    Detector(
        dataset=dataset_name,
        net=eval_client.own_net(net).cpu(),
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


def _quiet_lightning() -> None:
    """A fresh Trainer per client per round would repeat Lightning's start-up notes each time."""
    for name in ("pytorch_lightning.utilities.rank_zero", "pytorch_lightning.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # The module writes its loss every log_every_n_steps steps of each round itself.
    warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
    # Lightning 2.6 calling an API that torch 2.13 deprecates; nothing for users to act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
