"""The typed schema of the Hydra config, and the value checks that go with it.

The schema (registered as ``config_schema``, the first entry of conf/config.yaml's defaults)
makes Hydra reject a misspelled key or a value of the wrong type before anything runs;
``validate_config`` rejects impossible values (a negative round count, fractions that do not
split the data) before any data is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fdagmm.errors import ConfigError, FdagmmError, first_line
from fdagmm.detection.evaluation import THRESHOLD_REFS
from fdagmm.data.kdd99 import KDD99


@dataclass
class DataConfig:
    _target_: str = "fdagmm.data.datamodule.KDDClientsDataModule"
    path: Optional[str] = None  # a KDDCUP99 file (gzip or CSV); None: data_dir, then scikit-learn
    variant: str = "10_percent"  # 10_percent | full: which file to look for or fetch
    data_dir: str = "data"  # where the fetcher downloads to and where the file is looked for
    cache_dir: Optional[str] = None  # parsed files kept here, keyed by content; None: no cache
    batch_size: int = 1024


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
    clients_per_round: Optional[int] = None  # clients sampled to train each round; None: every client
    gmm_stats: str = "global"  # global: mixture from all clients' summed statistics | local
    min_clients: int = 1  # a round needs this many usable client updates, else the run stops
    resume: Optional[str] = None  # the run dir of an interrupted federated run to continue


@dataclass
class MethodConfig:
    name: str = MISSING
    label: str = MISSING  # its name in tables; centralised methods add the clients they train on
    federated: bool = False
    trains_on: str = "all"  # all | home | others (every client but the home client)
    home_client: int = 0  # the organisation the comparison is about (the study's client 0)
    eval_client: int = 0  # whose test set the run reports (every client's is in per_client)


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
    partition: Any = MISSING  # instantiated: a fdagmm.data.partition.Partitioner
    model: Any = MISSING  # instantiated: fdagmm.models.lit_module.DAGMMLitModule
    strategy: Any = MISSING  # instantiated: a fdagmm.federation.strategies.Strategy
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
    _check(cfg.data.variant in KDD99.variant_files, f"data.variant must be one of {list(KDD99.variant_files)}, got {cfg.data.variant!r}")
    _check(cfg.torch_threads is None or cfg.torch_threads >= 1, f"torch_threads must be >= 1 or null, got {cfg.torch_threads}")
    _check(cfg.data.batch_size >= 1, f"data.batch_size must be >= 1, got {cfg.data.batch_size}")

    n_clients = build(cfg.partition).num_clients
    build(cfg.strategy)
    m = cfg.method
    clients = list(range(n_clients))
    for key in ("home_client", "eval_client"):
        _check(m[key] in clients, f"method.{key} must be one of the client ids {clients[0]}..{clients[-1]}, got {m[key]}")
    _check(m.trains_on in TRAINS_ON, f"method.trains_on must be one of {', '.join(TRAINS_ON)}, got {m.trains_on!r}")
    train_clients = train_clients_of(cfg)
    _check(bool(train_clients), f"method {m.name} trains on the clients other than client {m.home_client}, and there are none: use more clients")

    _check(cfg.fed.rounds >= 1, f"fed.rounds must be >= 1, got {cfg.fed.rounds}")
    _check(cfg.fed.local_epochs >= 1, f"fed.local_epochs must be >= 1, got {cfg.fed.local_epochs}")
    per_round = len(train_clients) if cfg.fed.clients_per_round is None else cfg.fed.clients_per_round
    _check(
        1 <= per_round <= len(train_clients),
        f"fed.clients_per_round must be between 1 and the {len(train_clients)} training clients (or null: all), got {cfg.fed.clients_per_round}",
    )
    _check(
        1 <= cfg.fed.min_clients <= per_round,
        f"fed.min_clients must be between 1 and the {per_round} clients that train each round, got {cfg.fed.min_clients}",
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


# Whose training records a method uses: every client's, the home client's, or the others'.
TRAINS_ON = ("all", "home", "others")


def n_clients_of(cfg: DictConfig) -> int:
    return build(cfg.partition).num_clients


def train_clients_of(cfg: DictConfig) -> list[int]:
    """The client ids whose training data the configured method uses."""
    clients = range(n_clients_of(cfg))
    home = cfg.method.home_client
    return {"all": list(clients), "home": [home], "others": [k for k in clients if k != home]}[cfg.method.trains_on]


def method_label(cfg: DictConfig) -> str:
    """The method's name in tables: a centralised method names the clients it trains on
    (the study's DAGMM C0, C1, C0&C1), or says pooled / all but C<k> past three clients."""
    m = cfg.method
    if m.federated:
        strategy = build(cfg.strategy).name
        return m.label if strategy == "fedavg" else f"{m.label} ({strategy})"
    train_clients = train_clients_of(cfg)
    n = n_clients_of(cfg)
    if len(train_clients) <= 3 or n <= 3:
        return f"{m.label} " + "&".join(f"C{k}" for k in train_clients)
    return f"{m.label} pooled" if len(train_clients) == n else f"{m.label} all but C{m.home_client}"


def build(node: DictConfig, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, with an impossible value reported as a one-line ConfigError
    instead of Hydra's wrapped traceback."""
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, FdagmmError):
            raise cause from None
        raise ConfigError(f"{node.get('_target_', 'a config node')}: {first_line(cause or e)}") from e


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
