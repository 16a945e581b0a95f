"""What a connection-record table is: its columns, their kinds and fixed scaling, the labels.

A ``TableSchema`` is data: a YAML file (``schemas/<name>.yaml`` for the built-in data sets, any
file for a user's own, ``infer_schema`` for a first draft) read into one frozen object that the
reader, the cache, the encoder, the partitioners, the scorer and the exported detector take
their column names, vocabularies and label roles from.

The anomaly class is a role, not a habit of one data set: ``anomaly: attacks`` (benign traffic
trains, attacks are flagged: every real deployment) or ``anomaly: normal`` (DAGMM's KDDCUP99
benchmark convention, where the attacks are the majority that trains).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fdagmm.errors import ConfigError

ANOMALY_ROLES = ("attacks", "normal")
# ``TableSchema.with_overrides``' marker for a setting not overridden: the schema's stands.
KEEP: Any = type("Keep", (), {"__repr__": lambda self: "KEEP"})()
# What a missing or non-finite number does: refuse (the line is named), drop the record, or
# clip (+-inf to the largest finite float of its sign; records with a missing value dropped).
NON_FINITE_POLICIES = ("refuse", "drop", "clip")
SCALING_KINDS = ("unit", "log", "bound")
# Buckets an open categorical column hashes its values into, unless its schema says otherwise.
DEFAULT_HASH_BUCKETS = 16
# Where the built-in data sets' schemas are: data.schema=<name> names one of them.
BUILT_IN_DIR = Path(__file__).parent / "schemas"


@dataclass(frozen=True)
class NumericScaling:
    """A numeric column's fixed scaling to about [0, 1], from its definition, never its values:
    ``unit`` (in [0, 1] by definition: rates, indicators), ``log`` (a count or an amount:
    log1p(x) / log1p(scale)) or ``bound`` (linear over a declared [low, high])."""

    kind: str
    scale: float | None = None  # log
    low: float = 0.0  # bound
    high: float = 1.0  # bound

    def to_yaml(self) -> Any:
        if self.kind == "unit":
            return "unit"
        if self.kind == "log":
            return {"log": self.scale}
        return {"bound": [self.low, self.high]}


@dataclass(frozen=True)
class Categorical:
    """A categorical column: a declared vocabulary (one-hot), and how many buckets values
    outside it hash into (0: such a value encodes as all-zeros). With no vocabulary every value
    is hashed: nothing about a client's values has to be agreed or sent."""

    values: tuple[str, ...] = ()
    hash_buckets: int = 0

    def to_yaml(self) -> Any:
        if not self.values:
            return {"hash_buckets": self.hash_buckets}
        return list(self.values) if not self.hash_buckets else {"values": list(self.values), "hash_buckets": self.hash_buckets}


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[str, ...]  # the file's columns in file order (a headered file may reorder them)
    numeric: dict[str, NumericScaling]
    categorical: dict[str, Categorical]  # in encoding order
    header: bool = True
    drop: tuple[str, ...] = ()  # columns read past: identifiers, timestamps, anything not a feature
    label: str | None = None  # None: unlabelled (every record trains, nothing is evaluated)
    benign_labels: tuple[str, ...] = ()
    attack_labels: tuple[str, ...] | None = None  # declared: any other label is refused; None: open
    attack_category: str | None = None  # an attack family column (UNSW-NB15's attack_cat): never a feature
    anomaly: str = "attacks"
    non_finite: str = "refuse"
    label_suffix: str = ""  # stripped from label values (KDDCUP99's trailing dot)
    # A column read with the records that names their site, network, sensor or day: what
    # partition=by_column splits clients by. A feature stays a feature; any other column is
    # read as text, never a feature.
    group_column: str | None = None

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ConfigError(f"schema {self.name}: {problems[0]}")

    def _problems(self) -> list[str]:
        known = set(self.columns)
        problems = [f"column {c!r} appears twice" for c in sorted({c for c in self.columns if self.columns.count(c) > 1})]
        for role, names in (("numeric", self.numeric), ("categorical", self.categorical), ("drop", self.drop)):
            problems += [f"{role} column {c!r} is not one of its columns" for c in names if c not in known]
        for role, c in (("label", self.label), ("attack_category", self.attack_category), ("group_column", self.group_column)):
            if c is not None and c not in known:
                problems.append(f"{role} column {c!r} is not one of its columns")
        both = set(self.numeric) & set(self.categorical)
        problems += [f"column {c!r} is both numeric and categorical" for c in sorted(both)]
        if self.label is not None and self.label == self.attack_category:
            problems.append(f"column {self.label!r} is both the label and the attack category")
        if self.group_column is not None and self.group_column == self.label:
            problems.append(f"column {self.label!r} is both the label and the group column: split clients by another column")
        if self.group_column is not None and self.group_column in self.drop:
            problems.append(f"group column {self.group_column!r} is also a dropped column")
        roles = {c for c in (self.label, self.attack_category, self.group_column) if c is not None}
        problems += [f"column {c!r} is a feature and the label or attack category" for c in self.features if c in roles - {self.group_column}]
        untyped = [c for c in self.columns if c not in self.numeric and c not in self.categorical and c not in self.drop and c not in roles]
        if untyped:
            problems.append(f"columns {untyped} have no kind: list them under numeric, categorical or drop")
        if not self.features:
            problems.append("no feature column is left")
        if self.anomaly not in ANOMALY_ROLES:
            problems.append(f"anomaly must be one of {', '.join(ANOMALY_ROLES)}, got {self.anomaly!r}")
        if self.non_finite not in NON_FINITE_POLICIES:
            problems.append(f"non_finite must be one of {', '.join(NON_FINITE_POLICIES)}, got {self.non_finite!r}")
        if self.label is not None and not self.benign_labels:
            problems.append(f"label column {self.label!r} needs benign_labels, the label values of benign traffic (data.benign_labels=[...])")
        for c, s in self.numeric.items():
            if s.kind not in SCALING_KINDS:
                problems.append(f"numeric column {c!r}: scaling must be unit, {{log: scale}} or {{bound: [low, high]}}")
            elif s.kind == "log" and not (s.scale is not None and s.scale > 0):
                problems.append(f"numeric column {c!r}: a log scale must be a positive number, got {s.scale}")
            elif s.kind == "bound" and not s.low < s.high:
                problems.append(f"numeric column {c!r}: bound needs low < high, got [{s.low}, {s.high}]")
        for c, cat in self.categorical.items():
            if not cat.values and cat.hash_buckets < 1:
                problems.append(f"categorical column {c!r} declares no values and no hash_buckets")
            if cat.hash_buckets < 0:
                problems.append(f"categorical column {c!r}: hash_buckets must be >= 0")
        return problems

    # The columns as the model sees them: numeric in file order, then each categorical block.
    @property
    def features(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c in self.numeric and c not in self.drop) + tuple(
            c for c in self.categorical if c not in self.drop
        )

    @property
    def numeric_features(self) -> list[str]:
        return [c for c in self.columns if c in self.numeric and c not in self.drop]

    @property
    def categorical_features(self) -> list[str]:
        return [c for c in self.categorical if c not in self.drop]

    @property
    def info_columns(self) -> list[str]:
        """The label, attack-category and (when not a feature) group columns the schema has
        (read when a file has them)."""
        group = self.group_column if self.group_column not in self.features else None
        return [c for c in (self.label, self.attack_category, group) if c is not None]

    @property
    def labelled(self) -> bool:
        return self.label is not None

    def is_anomaly(self, labels) -> Any:
        """Which labels are of the anomaly class: the attacks (``anomaly: attacks``) or the
        benign records (``anomaly: normal``)."""
        import numpy as np

        benign = np.isin(np.asarray(labels, dtype=object), list(self.benign_labels))
        return ~benign if self.anomaly == "attacks" else benign

    def with_overrides(
        self,
        label_column: str | None = KEEP,
        benign_labels: list[str] = KEEP,
        drop_columns: list[str] = (),
        non_finite: str = KEEP,
        anomaly: str = KEEP,
        group_column: str | None = KEEP,
    ) -> TableSchema:
        """This schema with a run's overrides (``KEEP``: as the schema says). A label column set
        to null is read past; a label column moved onto a feature takes it out of the features."""
        changes: dict[str, Any] = {}
        drop = [*self.drop, *(c for c in drop_columns if c not in self.drop)]
        unknown = [c for c in drop_columns if c not in self.columns]
        if unknown and not self.header:
            raise ConfigError(f"data.drop_columns: {unknown} are not columns of {self.name} (its columns: {list(self.columns)})")
        if unknown:  # a headered file's extra columns, read past
            changes["columns"] = (*self.columns, *unknown)
        if label_column is not KEEP and label_column != self.label:
            if label_column is not None and label_column not in self.columns:
                raise ConfigError(f"data.label_column={label_column}: not a column of {self.name} (its columns: {list(self.columns)})")
            if self.label is not None and self.label not in drop:
                drop.append(self.label)
            if label_column is not None:
                drop = [c for c in drop if c != label_column]
                if label_column == self.attack_category:  # the attack families become the label
                    changes["attack_category"] = None
                changes["numeric"] = {c: s for c, s in self.numeric.items() if c != label_column}
                changes["categorical"] = {c: s for c, s in self.categorical.items() if c != label_column}
                changes["attack_labels"] = None  # the old label's closed set says nothing of the new one
            changes["label"] = label_column
        if benign_labels is not KEEP:
            changes["benign_labels"] = tuple(str(v) for v in benign_labels)
        if non_finite is not KEEP:
            changes["non_finite"] = non_finite
        if anomaly is not KEEP:
            changes["anomaly"] = anomaly
        if group_column is not KEEP:
            if group_column is not None and group_column not in (*self.columns, *changes.get("columns", ())):
                raise ConfigError(f"partition.column={group_column}: not a column of {self.name}; a column of the file the schema does not list: add it with data.drop_columns=[{group_column}]")
            drop = [c for c in drop if c != group_column]  # a dropped column named here is read, as text, never a feature
            changes["group_column"] = group_column
        changes["drop"] = tuple(drop)
        try:
            return dataclasses.replace(self, **changes)
        except ConfigError as e:
            raise ConfigError(f"{e} (after the data.* overrides)") from None

    def to_dict(self) -> dict[str, Any]:
        """The schema as its YAML file says it (``from_dict`` reads it back)."""
        return {
            "name": self.name,
            "header": self.header,
            "columns": list(self.columns),
            "drop": list(self.drop),
            "numeric": {c: s.to_yaml() for c, s in self.numeric.items()},
            "categorical": {c: s.to_yaml() for c, s in self.categorical.items()},
            "label": self.label,
            "label_suffix": self.label_suffix,
            "benign_labels": list(self.benign_labels),
            "attack_labels": None if self.attack_labels is None else list(self.attack_labels),
            "attack_category": self.attack_category,
            "anomaly": self.anomaly,
            "non_finite": self.non_finite,
            # Only when set: the schemas of runs that split no client by a column keep their digest.
            **({"group_column": self.group_column} if self.group_column is not None else {}),
        }

    def to_yaml(self) -> str:
        spec = self.to_dict()
        for kind in ("numeric", "categorical"):  # one line per column
            spec[kind] = {c: _FlowDict(s) if isinstance(s, dict) else s for c, s in spec[kind].items()}
        return yaml.dump(spec, Dumper=_FlowListDumper, sort_keys=False, width=100)

    @property
    def digest(self) -> str:
        """A short fingerprint: two sites train together only under the same one."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def first_difference(self, other: TableSchema) -> str | None:
        """The first key in which two schemas differ, for a one-line refusal; None if equal."""
        mine, theirs = self.to_dict(), other.to_dict()
        for key in mine:
            if mine[key] != theirs[key]:
                if isinstance(mine[key], dict) and isinstance(theirs[key], dict):
                    for column in [*mine[key], *theirs[key]]:
                        if mine[key].get(column) != theirs[key].get(column):
                            return f"{key}.{column}: {mine[key].get(column)!r} against {theirs[key].get(column)!r}"
                return f"{key}: {mine[key]!r} against {theirs[key]!r}"
        return None

    @classmethod
    def from_dict(cls, spec: dict[str, Any], source: str = "schema") -> TableSchema:
        if not isinstance(spec, dict):
            raise ConfigError(f"{source}: a schema is a YAML mapping (name, columns, numeric, categorical, ...)")
        allowed = {f.name for f in dataclasses.fields(cls)} | {"hash_buckets"}  # the open columns' default
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise ConfigError(f"{source}: unknown schema keys {unknown}; known: {sorted(allowed)}")
        try:
            numeric = {str(c): _numeric(s) for c, s in (spec.get("numeric") or {}).items()}
            categorical = {
                str(c): _categorical(s, int(spec.get("hash_buckets", DEFAULT_HASH_BUCKETS)))
                for c, s in (spec.get("categorical") or {}).items()
            }
            attack_labels = spec.get("attack_labels")
            return cls(
                name=str(spec.get("name", Path(source).stem)),
                columns=tuple(str(c) for c in spec["columns"]),
                numeric=numeric,
                categorical=categorical,
                header=bool(spec.get("header", True)),
                drop=tuple(str(c) for c in spec.get("drop") or ()),
                label=None if spec.get("label") is None else str(spec["label"]),
                benign_labels=tuple(str(v) for v in spec.get("benign_labels") or ()),
                attack_labels=None if attack_labels is None else tuple(str(v) for v in attack_labels),
                attack_category=None if spec.get("attack_category") is None else str(spec["attack_category"]),
                anomaly=str(spec.get("anomaly", "attacks")),
                non_finite=str(spec.get("non_finite", "refuse")),
                label_suffix=str(spec.get("label_suffix") or ""),
                group_column=None if spec.get("group_column") is None else str(spec["group_column"]),
            )
        except KeyError as e:
            raise ConfigError(f"{source}: the schema has no {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{source}: {e}") from None
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None


class _FlowListDumper(yaml.SafeDumper):
    """Lists and a numeric column's scaling on one line, as the built-in schemas write them."""


class _FlowDict(dict):
    pass


_FlowListDumper.add_representer(list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))
_FlowListDumper.add_representer(_FlowDict, lambda dumper, data: dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True))


def _numeric(spec: Any) -> NumericScaling:
    if spec == "unit":
        return NumericScaling("unit")
    if isinstance(spec, dict) and set(spec) == {"log"}:
        return NumericScaling("log", scale=float(spec["log"]))
    if isinstance(spec, dict) and set(spec) == {"bound"} and len(spec["bound"]) == 2:
        low, high = spec["bound"]
        return NumericScaling("bound", low=float(low), high=float(high))
    raise ValueError(f"a numeric column's scaling is unit, {{log: scale}} or {{bound: [low, high]}}, got {spec!r}")


def _categorical(spec: Any, default_buckets: int) -> Categorical:
    if spec is None:
        return Categorical((), default_buckets)
    if isinstance(spec, list):
        return Categorical(tuple(str(v) for v in spec), 0)
    if isinstance(spec, dict) and set(spec) <= {"values", "hash_buckets"}:
        return Categorical(tuple(str(v) for v in spec.get("values") or ()), int(spec.get("hash_buckets", default_buckets)))
    raise ValueError(f"a categorical column is a list of values, null (hashed) or {{values: [...], hash_buckets: N}}, got {spec!r}")


def load_schema(name_or_path: str) -> TableSchema:
    """A built-in data set's schema by name (``kdd99``), or a schema YAML file."""
    path = BUILT_IN_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        path = Path(name_or_path)
    if not path.is_file():
        built_in = sorted(p.stem for p in BUILT_IN_DIR.glob("*.yaml"))
        raise ConfigError(f"data.schema={name_or_path}: no such schema file, and not a built-in one ({', '.join(built_in)})")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not a readable YAML schema ({str(e).splitlines()[0]})") from None
    return TableSchema.from_dict(spec, source=str(path))
