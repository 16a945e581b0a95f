"""The typed schema of the Hydra config, and the value checks that go with it.

The schema (registered as ``config_schema``, the first entry of conf/config.yaml's defaults)
makes Hydra reject a misspelled key or a value of the wrong type before anything runs;
``validate_config`` rejects impossible values (a negative round count, fractions that do not
split the data) before any data is read.

Every numeric setting has a range (``fdagmm.ranges.Range``), declared once, next to the
setting: on a ``ranged`` field of the schema; in the ``instantiated`` table of the model and
trainer groups (the arguments of one class each, some of them passed on to a library); on
the constructor's parameters for the partition and strategy groups (a class per option).
``validate_config`` checks the schema's first, then the settings that depend on the built
partitioner's clients; the partitioner and strategy groups' arguments are checked as they are
built. A test fails for a numeric setting without a range.
"""

from __future__ import annotations

import importlib.util
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fdagmm.errors import ConfigError, FdagmmError, first_line
from fdagmm.ranges import AT_LEAST_0, AT_LEAST_1, BELOW_1, FINITE, OPEN_FRACTION, POSITIVE, SEED, Range, check_range
from fdagmm.serialization import check_writable_dir
from fdagmm.detection.evaluation import THRESHOLD_REFS
from fdagmm.data.features import SCALING_RECORDS, SCALINGS
from fdagmm.data.partition import FilesPartition, Partitioner
from fdagmm.data.schema import NON_FINITE_POLICIES
from fdagmm.data.dataset import EVALUATION_SETS
from fdagmm.models.dagmm import DISTANCE_FEATURES
from fdagmm.models.lit_module import LR_SCHEDULES


# An argument of an instantiated group that the library it is passed to checks itself.
CHECKED_BY_ITS_LIBRARY = None

RANGE = "range"  # field metadata: the range of a numeric setting
ARGUMENT_RANGES = "argument_ranges"  # field metadata of an instantiated group: key -> range


def ranged(default: Any, allowed: Range) -> Any:
    """A numeric schema field and its range."""
    return field(default=default, metadata={RANGE: allowed})


def instantiated(ranges: dict[str, Range | None]) -> Any:
    """An instantiated group (typed ``Any``: its keys are a class's arguments) and the range of
    every numeric argument that any of its options sets, by key relative to the group."""
    return field(default=MISSING, metadata={ARGUMENT_RANGES: ranges})


@dataclass
class DataConfig:
    """The data set (``conf/data/<name>.yaml``): the same keys for every data set."""

    name: str = MISSING  # names the data set in logs, model.pt and reports
    schema: Optional[str] = None  # a built-in schema (kdd99, nsl_kdd, unsw_nb15) or a schema YAML; None: inferred (data=csv)
    train_path: Any = None  # a file or a list of files, gzip or plain
    test_path: Any = None  # a labelled test file or list of files; None: test_fraction, else the partition splits
    test_fraction: Optional[float] = ranged(None, OPEN_FRACTION)  # share of the training file's inliers and anomalies set aside to test
    evaluate_on: str = "test"  # test | validation: hold out validation_fraction of the training inliers, test on them and the training side's anomalies
    validation_fraction: float = ranged(0.2, OPEN_FRACTION)
    label_column: Optional[str] = MISSING  # unset: the schema's; None: unlabelled (nothing is evaluated)
    benign_labels: Optional[list[str]] = None  # None: the schema's
    drop_columns: list[str] = field(default_factory=list)  # read past, on top of the schema's
    non_finite: Optional[str] = None  # refuse | drop | clip; None: the schema's
    anomaly: Optional[str] = None  # attacks (benign traffic trains) | normal; None: the schema's
    cache_dir: Optional[str] = None  # parsed files kept here, keyed by content and schema; None: no cache
    batch_size: int = ranged(1024, AT_LEAST_1)
    scaling: str = "schema_log"  # schema_log: fixed bounds, nothing sent | federated_minmax: the study's (records' min/max) | federated_standard | federated_robust | federated_quantile (docs/data.md)
    scaling_records: str = "train"  # train: the training clients' training records | all (see conf/data/kdd99.yaml)


@dataclass
class FlowerConfig:
    timeout_s: float = ranged(600.0, POSITIVE)  # longest wait for a start-up step or a round's replies
    prepare_only: bool = False  # write the partition files and run_config.toml, then stop


@dataclass
class FedConfig:
    backend: str = "inprocess"  # inprocess: one process | flower: SuperLink + SuperNodes
    flower: FlowerConfig = field(default_factory=FlowerConfig)
    rounds: int = ranged(20, AT_LEAST_0)  # 0: a centralised method's untrained network (a reference)
    local_epochs: int = ranged(1, AT_LEAST_1)
    clients_per_round: Optional[int] = ranged(None, AT_LEAST_1)  # clients sampled to train each round; None: every client
    gmm_stats: str = "global"  # global: mixture from all clients' summed statistics | local
    keep_optimizer_state: bool = False  # each client's optimiser continues from its previous round's state (it never leaves the client)
    min_clients: int = ranged(1, AT_LEAST_1)  # a round needs this many usable client updates, else the run stops
    resume: Optional[str] = None  # the run dir of an interrupted federated run to continue


@dataclass
class PrivacyConfig:
    # none | dp: client-level differential privacy (DP-FedAvg) | record_dp: record-level (DP-SGD); docs/privacy.md
    name: str = "none"
    noise_multiplier: Optional[float] = ranged(None, POSITIVE)  # z: noise std / clip norm; None: from target_epsilon
    target_epsilon: Optional[float] = ranged(None, POSITIVE)  # solve z for this epsilon after the last round
    clip_norm: float = ranged(0.02, POSITIVE)  # C: L2 bound of a client's model update (record_dp: of one record's gradient)
    stats_clip_norm: float = ranged(1.0, POSITIVE)  # L2 bound of a client's normalised mixture statistics
    delta: float = ranged(1e-3, OPEN_FRACTION)
    # Noise and client sampling from the run's seed, which every client holds: NOT PRIVATE;
    # reproducible noise for simulation studies only.
    insecure_reproducible_noise: bool = False
    # The server clips and adapts C each round towards the norm that leaves
    # target_unclipped_quantile of the updates unclipped (Andrew et al., 2021); clip_norm is the first round's.
    adaptive_clipping: bool = False
    target_unclipped_quantile: float = ranged(0.5, OPEN_FRACTION)
    clip_norm_lr: float = ranged(0.2, POSITIVE)
    clipped_count_stddev: Optional[float] = ranged(None, POSITIVE)  # None: clients per round / 20
    # record_dp: the L2 bound of a record's code z in the released mixture statistics, their
    # noise multiplier, and the weight of the estimation network's cross-entropy to the fixed
    # mixture's memberships.
    z_norm_bound: float = ranged(2.0, POSITIVE)
    stats_noise_multiplier: float = ranged(50.0, POSITIVE)
    membership_weight: float = ranged(1.0, AT_LEAST_0)
    # The server learns the clients' updates and mixture statistics only as sums (SecAgg);
    # with any privacy setting, privacy=none included.
    secure_aggregation: bool = False
    # dp: who adds the noise, the server to the sums (server) or each client a share of it to
    # what it sends (clients; needs secure_aggregation).
    noise_at: str = "server"


@dataclass
class MethodConfig:
    name: str = MISSING
    label: str = MISSING  # its name in tables; centralised methods add the clients they train on
    federated: bool = False
    trains_on: str = "all"  # all | home | others (every client but the home client)
    home_client: int = ranged(0, AT_LEAST_0)  # the organisation the comparison is about (the study's client 0)
    eval_client: int = ranged(0, AT_LEAST_0)  # whose test set the run reports (every client's is in per_client)
    # A classical detector instead of DAGMM (fdagmm.detection.baselines), fitted on the encoded
    # training records of the clients in trains_on; None: DAGMM.
    detector: Any = field(
        default=None,
        metadata={ARGUMENT_RANGES: {
            "n_estimators": AT_LEAST_1, "max_samples": AT_LEAST_1, "seed": SEED, "explained_variance": OPEN_FRACTION,
            "hidden": AT_LEAST_1, "epochs": AT_LEAST_1, "batch_size": AT_LEAST_1, "lr": POSITIVE,
        }},
    )  # fmt: skip


@dataclass
class EvalConfig:
    anomaly_ratio: float = ranged(0.2, OPEN_FRACTION)  # flag the top anomaly_ratio of the reference energies
    threshold_ref: str = "own"  # own: the client's train + test records | pooled
    # Also measure the final model with the other reference. Off by default: the pooled
    # reference needs every client's training-record energies, which a federation keeps private.
    compare_threshold_refs: bool = False
    every_n_rounds: int = ranged(1, AT_LEAST_1)  # test metrics after every n-th round (and the last)


@dataclass
class PathsConfig:
    data_dir: str = "data"
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    partition: Any = MISSING  # instantiated: a fdagmm.data.partition.Partitioner (its arguments' ranges: there)
    # instantiated: fdagmm.models.lit_module.DAGMMLitModule (net: fdagmm.models.dagmm.DAGMM)
    model: Any = instantiated({
        "net.input_dim": AT_LEAST_1, "net.hidden_dims": AT_LEAST_1, "net.latent_dim": AT_LEAST_1,
        "net.estimation_hidden": AT_LEAST_1, "net.n_components": AT_LEAST_1, "net.dropout": BELOW_1,
        "optimizer.lr": POSITIVE, "lambda_energy": AT_LEAST_0, "lambda_cov": AT_LEAST_0, "cov_jitter": POSITIVE,
    })  # fmt: skip
    strategy: Any = MISSING  # instantiated: a fdagmm.federation.strategies.Strategy (its arguments' ranges: there)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    fed: FedConfig = field(default_factory=FedConfig)
    method: MethodConfig = MISSING
    eval: EvalConfig = field(default_factory=EvalConfig)
    # instantiated: pytorch_lightning.Trainer. devices is a count, -1 (all), a list of indices or
    # "auto", for Lightning to check; Lightning accepts log_every_n_steps=0, but DAGMMLitModule
    # divides the step count by it.
    trainer: Any = instantiated({"devices": CHECKED_BY_ITS_LIBRARY, "log_every_n_steps": AT_LEAST_1})
    logger: Any = MISSING  # instantiated per client and for the server
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = ranged(0, SEED)
    torch_threads: Optional[int] = ranged(None, AT_LEAST_1)  # CPU threads per run; None: torch's default
    debug: bool = False  # show full tracebacks instead of one-line errors
    optimized_metric: str = "test/auroc"  # what train.py returns to a sweeper


@dataclass
class ScoreConfig:
    """``src/score.py``'s arguments (``key=value`` on its command line)."""

    model: str = MISSING  # a training run dir (holds model.pt) or a model.pt
    input: str = MISSING  # a file of the model's data set, gzip or CSV, with or without the label; - : standard input
    # None: standard output for input=-, outputs/scores/<input name>_follow.csv for follow=true,
    # else outputs/scores/<input name>_<date_time>.csv
    output: Optional[str] = None
    threshold: Optional[float] = ranged(None, FINITE)  # an energy threshold; None: the model's own
    anomaly_ratio: Optional[float] = ranged(None, OPEN_FRACTION)  # else: flag this share of the training reference
    on_bad_line: str = "fail"  # fail | skip: what a malformed line does
    drop_columns: list[str] = field(default_factory=list)  # a headered file's extra columns to read past
    chunk_size: int = ranged(100_000, AT_LEAST_1)  # records in memory at a time
    # Streams (input=-, follow=true): rows are written once a batch holds batch_size lines or
    # max_delay_ms has passed since its first line came.
    batch_size: int = ranged(1000, AT_LEAST_1)
    max_delay_ms: float = ranged(200.0, POSITIVE)
    follow: bool = False  # score lines appended to input as it grows (as tail -F), until stopped
    offsets: Optional[str] = None  # follow=true's progress record; None: <output>.offsets.json
    debug: bool = False


@dataclass
class ServeConfig:
    """``src/serve.py``'s arguments (``key=value`` on its command line)."""

    model: str = MISSING  # a training run dir (holds model.pt) or a model.pt
    host: str = "127.0.0.1"  # 0.0.0.0 listens on every interface
    port: int = ranged(8000, Range(0, 65535))  # 0: any free port
    threshold: Optional[float] = ranged(None, FINITE)  # an energy threshold; None: the model's own
    anomaly_ratio: Optional[float] = ranged(None, OPEN_FRACTION)  # else: flag this share of the training reference
    max_body_mb: float = ranged(64.0, POSITIVE)  # a larger request is refused (413)
    drain_s: float = ranged(30.0, AT_LEAST_0)  # on SIGTERM, how long requests in flight may still take
    debug: bool = False


def register_configs() -> None:
    ConfigStore.instance().store(name="config_schema", node=Config)


def key_value_config(schema: type, args: list[str]) -> DictConfig:
    """A program's ``key=value`` arguments merged onto its config dataclass (types, unknown keys)."""
    try:
        return OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(args))
    except OmegaConfBaseException as e:
        raise ConfigError(f"{first_line(e)}: arguments are key=value with keys {', '.join(schema.__dataclass_fields__)}") from e


def score_config(args: list[str]) -> DictConfig:
    """``key=value`` arguments checked against ScoreConfig: types, unknown keys, values."""
    # YAML reads a bare "-" as a list holding null: standard input and output are the text "-".
    cfg = key_value_config(ScoreConfig, [f"{a[:-1]}'-'" if a in ("input=-", "output=-") else a for a in args])
    missing = [k for k in ("model", "input") if OmegaConf.is_missing(cfg, k)]
    _check(not missing, f"{' and '.join(missing)} required: python src/score.py model=<run dir> input=<file>")
    _check(cfg.on_bad_line in ("fail", "skip"), f"on_bad_line must be fail or skip, got {cfg.on_bad_line!r}")
    _check(not (cfg.follow and cfg.input == "-"), "follow=true follows a file; input=- reads standard input as it comes without it")
    _check(cfg.output != "-" or cfg.input == "-", "output=- (standard output) is for input=-; pass output=<file>")
    _check(cfg.offsets is None or cfg.follow, "offsets= records follow=true's progress: add follow=true")
    check_ranges(cfg, ScoreConfig)
    return cfg


def serve_config(args: list[str]) -> DictConfig:
    """``key=value`` arguments checked against ServeConfig: types, unknown keys, values."""
    cfg = key_value_config(ServeConfig, args)
    _check(not OmegaConf.is_missing(cfg, "model"), "model required: python src/serve.py model=<run dir> [host=127.0.0.1 port=8000]")
    check_ranges(cfg, ServeConfig)
    return cfg


def validate_config(cfg: DictConfig, partitioner: Partitioner | FilesPartition) -> None:
    """Raise ConfigError naming the first impossible value and how to fix it; ``partitioner``:
    the one built from ``cfg.partition`` (``partition=by_column`` without ``top_n``: checked
    again once its clients are counted)."""
    check_ranges(cfg, Config)
    _check(
        cfg.data.non_finite is None or cfg.data.non_finite in NON_FINITE_POLICIES,
        f"data.non_finite must be one of {', '.join(NON_FINITE_POLICIES)} (or null: the schema's), got {cfg.data.non_finite!r}",
    )
    _check(cfg.data.scaling in SCALINGS, f"data.scaling must be one of {', '.join(SCALINGS)}, got {cfg.data.scaling!r}")
    _check(
        cfg.data.evaluate_on in EVALUATION_SETS,
        f"data.evaluate_on must be one of {', '.join(EVALUATION_SETS)}, got {cfg.data.evaluate_on!r}",
    )
    lr_schedule = cfg.model.get("lr_schedule", LR_SCHEDULES[0])
    _check(lr_schedule in LR_SCHEDULES, f"model.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {lr_schedule!r}")
    distance_feature = cfg.model.net.get("distance_feature", DISTANCE_FEATURES[0])
    _check(
        distance_feature in DISTANCE_FEATURES,
        f"model.net.distance_feature must be one of {', '.join(DISTANCE_FEATURES)}, got {distance_feature!r}",
    )

    _check(cfg.model.compile in (True, False, "auto"), f"model.compile must be true, false or auto, got {cfg.model.compile!r}")
    _check(cfg.model.cuda_graph in (True, False), f"model.cuda_graph must be true or false, got {cfg.model.cuda_graph!r}")
    _check(cfg.data.scaling_records in SCALING_RECORDS, f"data.scaling_records must be train or all, got {cfg.data.scaling_records!r}")
    _check(
        cfg.data.scaling_records == "train" or cfg.data.scaling == "federated_minmax",
        f"data.scaling_records=all picks the records of min-max bounds; data.scaling={cfg.data.scaling} has fixed ones: add data.scaling=federated_minmax",
    )

    if partitioner.num_clients is None:
        return
    m = cfg.method
    clients = list(range(partitioner.num_clients))
    for key in ("home_client", "eval_client"):
        _check(m[key] in clients, f"method.{key} must be one of the client ids {clients[0]}..{clients[-1]}, got {m[key]}")
    if isinstance(partitioner, FilesPartition):
        _check(
            bool(partitioner.sites[m.eval_client].test_paths) or (not OmegaConf.is_missing(cfg.data, "label_column") and cfg.data.label_column is None),
            f"partition=files: client {m.eval_client}, the evaluated client (method.eval_client), has no test_path: give it one",
        )
    _check(m.trains_on in TRAINS_ON, f"method.trains_on must be one of {', '.join(TRAINS_ON)}, got {m.trains_on!r}")
    _check(
        cfg.fed.rounds >= 1 or not m.federated,
        "fed.rounds must be >= 1 for a federation (0 is for a centralised method's untrained reference), got 0",
    )
    _check(
        m.detector is None or not m.federated,
        f"method {m.name} is federated and names a method.detector; classical detectors train centralised (trains_on)",
    )
    train_clients = trained_clients(m, partitioner.num_clients)
    _check(bool(train_clients), f"method {m.name} trains on the clients other than client {m.home_client}, and there are none: use more clients")

    per_round = len(train_clients) if cfg.fed.clients_per_round is None else cfg.fed.clients_per_round
    _check(
        per_round <= len(train_clients),
        f"fed.clients_per_round must be between 1 and the {len(train_clients)} training clients (or null: all), got {cfg.fed.clients_per_round}",
    )
    _check(
        cfg.fed.min_clients <= per_round,
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
        _check(
            cfg.data.scaling_records == "train",
            "data.scaling_records=all scales with every organisation's test records, which a federation keeps private; "
            "with fed.backend=flower use data.scaling_records=train",
        )
    _validate_privacy(cfg, len(train_clients))
    _check(
        cfg.eval.threshold_ref in THRESHOLD_REFS,
        f"eval.threshold_ref must be own or pooled, got {cfg.eval.threshold_ref!r}",
    )
    check_writable_dir("paths.output_dir", cfg.paths.output_dir)
    if cfg.data.cache_dir is not None:
        check_writable_dir("data.cache_dir", cfg.data.cache_dir, ", or data.cache_dir=null to parse without a cache")


PRIVACY_NAMES = ("none", "dp", "record_dp")


def _validate_privacy(cfg: DictConfig, n_train_clients: int) -> None:
    p = cfg.privacy
    _check(p.name in PRIVACY_NAMES, f"privacy must be one of {', '.join(PRIVACY_NAMES)}, got {p.name!r}")
    _check(p.noise_at in NOISE_AT, f"privacy.noise_at must be server or clients, got {p.noise_at!r}")
    _check(
        p.noise_at == "server" or p.name == "dp",
        f"privacy.noise_at=clients chooses who adds client-level DP's noise; privacy={p.name} has none to move: use privacy=dp or privacy.noise_at=server",
    )
    _check(
        p.noise_at == "server" or p.secure_aggregation,
        "privacy.noise_at=clients needs privacy.secure_aggregation=true: without it the server sees each client's update "
        "with only its share of the noise",
    )
    if p.secure_aggregation:
        _validate_secure_aggregation(cfg, n_train_clients)
    if p.name == "none":
        return
    _check(cfg.method.federated, f"privacy={p.name} protects the clients of a federation; method={cfg.method.name} is centralised: use method=fdagmm")
    _check(
        (p.noise_multiplier is None) != (p.target_epsilon is None),
        f"privacy={p.name} needs exactly one of privacy.noise_multiplier and privacy.target_epsilon "
        f"(got {p.noise_multiplier} and {p.target_epsilon}): set the other to null",
    )
    _check(
        cfg.eval.threshold_ref == "own" and not cfg.eval.compare_threshold_refs,
        "the pooled threshold reference shares training-record energies outside the privacy mechanism; "
        f"with privacy={p.name} use eval.threshold_ref=own and eval.compare_threshold_refs=false",
    )
    if p.name == "record_dp":
        _check(
            cfg.fed.gmm_stats == "global",
            "privacy=record_dp trains every client under the federation's released mixture: use fed.gmm_stats=global",
        )
        _check(not p.adaptive_clipping, "privacy.adaptive_clipping adapts client-level DP's clip norm; with privacy=record_dp set it to false")
        _check(
            cfg.fed.resume is None,
            "privacy=record_dp does not resume: the clients' releases of the interrupted round are not in the server's account; start afresh",
        )
        return
    _check(
        p.delta < 1 / n_train_clients,
        f"privacy.delta={p.delta} allows one of the {n_train_clients} training clients to be exposed outright: use a delta below 1/{n_train_clients}",
    )
    count_std = clipped_count_stddev(p, cfg.fed.clients_per_round or n_train_clients)
    _check(
        not p.adaptive_clipping or p.noise_multiplier is None or p.noise_multiplier < 2 * count_std,
        f"privacy.adaptive_clipping=true with privacy.noise_multiplier={p.noise_multiplier} needs privacy.clipped_count_stddev "
        f"above {p.noise_multiplier}/2 (it is {count_std:g}): raise it, or fed.clients_per_round, or lower the noise multiplier",
    )


NOISE_AT = ("server", "clients")


def _validate_secure_aggregation(cfg: DictConfig, n_train_clients: int) -> None:
    _check(importlib.util.find_spec("flwr") is not None, 'privacy.secure_aggregation=true runs on Flower\'s cryptography: pip install -e ".[flower]"')
    _check(cfg.method.federated, f"privacy.secure_aggregation=true sums a federation's updates; method={cfg.method.name} is centralised: use method=fdagmm")
    _check(n_train_clients >= 2, f"privacy.secure_aggregation=true needs two training clients to sum, the partition has {n_train_clients}")
    _check(
        cfg.fed.clients_per_round is None or cfg.fed.clients_per_round >= 2,
        "privacy.secure_aggregation=true with fed.clients_per_round=1: a sum of one update reveals it; use 2 or more",
    )
    _check(
        cfg.fed.gmm_stats == "global",
        "privacy.secure_aggregation=true: with fed.gmm_stats=local the evaluated client's own statistics are not summed with "
        "anyone's; use fed.gmm_stats=global",
    )
    _check(
        cfg.eval.threshold_ref == "own" and not cfg.eval.compare_threshold_refs,
        "the pooled threshold reference shares training-record energies one by one; with privacy.secure_aggregation=true use "
        "eval.threshold_ref=own and eval.compare_threshold_refs=false",
    )
    _check(
        not cfg.privacy.adaptive_clipping,
        "privacy.adaptive_clipping needs each update's norm at the server, which secure aggregation hides: set one of them to false",
    )


def declared_ranges(schema: type, prefix: str = "") -> dict[str, Range | None]:
    """Every numeric setting that ``schema`` declares, by dotted key, with its range."""
    ranges: dict[str, Range | None] = {}
    types = typing.get_type_hints(schema)
    for f in fields(schema):
        key = prefix + f.name
        if RANGE in f.metadata:
            ranges[key] = f.metadata[RANGE]
        elif ARGUMENT_RANGES in f.metadata:
            ranges |= {f"{key}.{argument}": allowed for argument, allowed in f.metadata[ARGUMENT_RANGES].items()}
        elif is_dataclass(types[f.name]):
            ranges |= declared_ranges(types[f.name], key + ".")
    return ranges


def check_ranges(cfg: DictConfig, schema: type) -> None:
    """Raise ConfigError for the first numeric setting of ``schema`` outside its declared range.
    A setting that is null or absent (an argument of another option of its group) passes."""
    for key, allowed in declared_ranges(schema).items():
        if allowed is not CHECKED_BY_ITS_LIBRARY:
            check_range(key, OmegaConf.select(cfg, key), allowed)


# Whose training records a method uses: every client's, the home client's, or the others'.
TRAINS_ON = ("all", "home", "others")


def clipped_count_stddev(privacy: DictConfig, clients_per_round: int) -> float:
    """Adaptive clipping's noise on the unclipped count: ``privacy.clipped_count_stddev``, or
    Andrew et al.'s default, the expected clients per round / 20."""
    return privacy.clipped_count_stddev if privacy.clipped_count_stddev is not None else clients_per_round / 20


def trained_clients(method: DictConfig, n_clients: int) -> list[int]:
    """The client ids whose training data ``method`` uses, of ``n_clients``."""
    clients = range(n_clients)
    home = method.home_client
    return {"all": list(clients), "home": [home], "others": [k for k in clients if k != home]}[method.trains_on]


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
