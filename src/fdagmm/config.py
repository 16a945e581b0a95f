"""The typed schema of the Hydra config, and the value checks that go with it.

The schema (registered as ``config_schema``, the first entry of conf/config.yaml's defaults)
makes Hydra reject a misspelled key or a value of the wrong type before anything runs;
``validate_config`` rejects impossible values (a negative round count, fractions that do not
split the data) before any data is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fdagmm.errors import ConfigError, first_line
from fdagmm.evaluation import THRESHOLD_REFS
from fdagmm.kdd import ATTACK_LABELS, VARIANT_FILES


@dataclass
class DataConfig:
    _target_: str = "fdagmm.datamodule.KDDClientsDataModule"
    path: Optional[str] = None  # a KDDCUP99 file (gzip or CSV); None: data_dir, then scikit-learn
    variant: str = "10_percent"  # 10_percent | full: which file to look for or fetch
    data_dir: str = "data"  # where the fetcher downloads to and where the file is looked for
    cache_dir: Optional[str] = None  # parsed files kept here, keyed by content; None: no cache
    batch_size: int = 1024


@dataclass
class ScenarioConfig:
    name: str = MISSING
    common_attacks: List[str] = field(default_factory=lambda: ["smurf", "neptune"])
    common_fractions: List[float] = MISSING  # per client: its share of each common attack type
    rare_fractions: List[float] = MISSING  # per client: its share of each rare attack type
    train_fraction: float = 0.5  # per client: share of its attacks used for training


@dataclass
class FlowerConfig:
    timeout_s: float = 600.0  # longest wait for a start-up step or a round's replies
    prepare_only: bool = False  # write the partition files and run_config.toml, then stop


@dataclass
class FedConfig:
    backend: str = "inprocess"  # inprocess: one process | flower: SuperLink + SuperNodes
    flower: FlowerConfig = field(default_factory=FlowerConfig)
    rounds: int = 20
    local_epochs: int = 1
    gmm_stats: str = "global"  # global: mixture from all clients' summed statistics | local
    min_clients: int = 1  # a round needs this many usable client updates, else the run stops
    resume: Optional[str] = None  # the run dir of an interrupted federated run to continue


@dataclass
class MethodConfig:
    name: str = MISSING
    label: str = MISSING  # the study's name for it, in tables
    federated: bool = False
    train_clients: Optional[List[int]] = None  # None: every client
    eval_client: int = 0


@dataclass
class EvalConfig:
    anomaly_ratio: float = 0.2  # flag the top anomaly_ratio of the reference energies
    threshold_ref: str = "own"  # own: the client's train + test records | pooled
    # Also measure the final model with the other reference. Off by default: the pooled
    # reference needs every client's training-record energies, which a federation keeps private.
    compare_threshold_refs: bool = False
    every_n_rounds: int = 1  # test metrics after every n-th round (and the last)


@dataclass
class PathsConfig:
    data_dir: str = "data"
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    scenario: ScenarioConfig = MISSING
    model: Any = MISSING  # instantiated: fdagmm.lit_module.DAGMMLitModule
    fed: FedConfig = field(default_factory=FedConfig)
    method: MethodConfig = MISSING
    eval: EvalConfig = field(default_factory=EvalConfig)
    trainer: Any = MISSING  # instantiated: pytorch_lightning.Trainer
    logger: Any = MISSING  # instantiated per client and for the server
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 0
    torch_threads: Optional[int] = None  # CPU threads per run; None: torch's default
    debug: bool = False  # show full tracebacks instead of one-line errors
    optimized_metric: str = "test/auroc"  # what train.py returns to a sweeper


@dataclass
class ScoreConfig:
    """``src/score.py``'s arguments (``key=value`` on its command line)."""

    model: str = MISSING  # a training run dir (holds model.pt) or a model.pt
    input: str = MISSING  # a KDDCUP99-format file, gzip or CSV, with or without the label
    output: Optional[str] = None  # None: outputs/scores/<input name>_<date_time>.csv
    threshold: Optional[float] = None  # an energy threshold; None: the model's own
    anomaly_ratio: Optional[float] = None  # else: flag this share of the training reference
    on_bad_line: str = "fail"  # fail | skip: what a malformed line does
    chunk_size: int = 100_000  # records in memory at a time
    debug: bool = False


def register_configs() -> None:
    ConfigStore.instance().store(name="config_schema", node=Config)


def score_config(args: list[str]) -> DictConfig:
    """``key=value`` arguments checked against ScoreConfig: types, unknown keys, values."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(ScoreConfig), OmegaConf.from_dotlist(args))
    except OmegaConfBaseException as e:
        raise ConfigError(f"{first_line(e)}: arguments are key=value with keys {', '.join(ScoreConfig.__dataclass_fields__)}") from e
    missing = [k for k in ("model", "input") if OmegaConf.is_missing(cfg, k)]
    _check(not missing, f"{' and '.join(missing)} required: python src/score.py model=<run dir> input=<file>")
    _check(cfg.on_bad_line in ("fail", "skip"), f"on_bad_line must be fail or skip, got {cfg.on_bad_line!r}")
    _check(cfg.chunk_size >= 1, f"chunk_size must be >= 1, got {cfg.chunk_size}")
    _check(
        cfg.anomaly_ratio is None or 0.0 < cfg.anomaly_ratio < 1.0,
        f"anomaly_ratio must be in (0, 1), got {cfg.anomaly_ratio}",
    )
    return cfg


def validate_config(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first impossible value and how to fix it."""
    _check(cfg.data.variant in VARIANT_FILES, f"data.variant must be one of {list(VARIANT_FILES)}, got {cfg.data.variant!r}")
    _check(cfg.torch_threads is None or cfg.torch_threads >= 1, f"torch_threads must be >= 1 or null, got {cfg.torch_threads}")
    _check(cfg.data.batch_size >= 1, f"data.batch_size must be >= 1, got {cfg.data.batch_size}")

    s = cfg.scenario
    n_clients = len(s.common_fractions)
    _check(n_clients >= 1, "scenario.common_fractions must list one fraction per client")
    _check(
        len(s.rare_fractions) == n_clients,
        f"scenario.common_fractions has {n_clients} clients but scenario.rare_fractions has "
        f"{len(s.rare_fractions)}: give one fraction per client in both",
    )
    for name in ("common_fractions", "rare_fractions"):
        fractions = list(s[name])
        _check(
            all(0.0 <= f <= 1.0 for f in fractions) and math.isclose(sum(fractions), 1.0, abs_tol=1e-9),
            f"scenario.{name} must be fractions in [0, 1] that sum to 1 (every record goes to "
            f"exactly one client), got {fractions}",
        )
    unknown = sorted(set(s.common_attacks) - set(ATTACK_LABELS))
    _check(not unknown, f"scenario.common_attacks: unknown attack types {unknown}; known: {ATTACK_LABELS}")
    _check(0.0 < s.train_fraction < 1.0, f"scenario.train_fraction must be in (0, 1), got {s.train_fraction}")

    m = cfg.method
    clients = list(range(n_clients))
    train_clients = clients if m.train_clients is None else list(m.train_clients)
    _check(
        bool(train_clients) and set(train_clients) <= set(clients) and len(set(train_clients)) == len(train_clients),
        f"method.train_clients must be distinct client ids among {clients}, got {train_clients}",
    )
    _check(m.eval_client in clients, f"method.eval_client must be one of {clients}, got {m.eval_client}")

    _check(cfg.fed.rounds >= 1, f"fed.rounds must be >= 1, got {cfg.fed.rounds}")
    _check(cfg.fed.local_epochs >= 1, f"fed.local_epochs must be >= 1, got {cfg.fed.local_epochs}")
    _check(
        1 <= cfg.fed.min_clients <= len(train_clients),
        f"fed.min_clients must be between 1 and the {len(train_clients)} training clients, got {cfg.fed.min_clients}",
    )
    _check(cfg.fed.gmm_stats in ("global", "local"), f"fed.gmm_stats must be global or local, got {cfg.fed.gmm_stats!r}")
    _check(
        cfg.fed.gmm_stats == "global" or m.eval_client in train_clients,
        f"fed.gmm_stats=local fits the mixture on client {m.eval_client}, which does not train",
    )
    _check(cfg.fed.backend in ("inprocess", "flower"), f"fed.backend must be inprocess or flower, got {cfg.fed.backend!r}")
    if cfg.fed.backend == "flower":
        _check(m.federated, f"fed.backend=flower runs federations; method={m.name} is centralised: use method=fdagmm")
        _check(cfg.fed.resume is None, "fed.resume continues in-process runs only; start the Flower run afresh")
        _check(
            cfg.eval.threshold_ref == "own" and not cfg.eval.compare_threshold_refs,
            "the pooled threshold reference shares training-record energies between organisations; "
            "with fed.backend=flower use eval.threshold_ref=own and eval.compare_threshold_refs=false",
        )
        _check(cfg.fed.flower.timeout_s > 0, f"fed.flower.timeout_s must be > 0, got {cfg.fed.flower.timeout_s}")
    _check(cfg.eval.every_n_rounds >= 1, f"eval.every_n_rounds must be >= 1, got {cfg.eval.every_n_rounds}")
    _check(0.0 < cfg.eval.anomaly_ratio < 1.0, f"eval.anomaly_ratio must be in (0, 1), got {cfg.eval.anomaly_ratio}")
    _check(
        cfg.eval.threshold_ref in THRESHOLD_REFS,
        f"eval.threshold_ref must be own or pooled, got {cfg.eval.threshold_ref!r}",
    )


def train_clients_of(cfg: DictConfig) -> list[int]:
    """The client ids whose training data the configured method uses."""
    if cfg.method.train_clients is None:
        return list(range(len(cfg.scenario.common_fractions)))
    return list(cfg.method.train_clients)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
