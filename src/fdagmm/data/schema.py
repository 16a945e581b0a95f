"""What a tabular connection-record data set is: its columns, category vocabularies and labels.

One ``DatasetSchema`` object describes a data set (``kdd99.KDD99``); the reader, the cache,
the encoder, the datamodule and the scorer take column names, vocabularies and labels from
that object rather than from module constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DatasetSchema:
    name: str
    features: tuple[str, ...]  # every feature column, in file order
    # Categorical column -> its vocabulary: the data set's schema, not what one file holds.
    categories: dict[str, tuple[str, ...]]
    label: str  # the label column's name
    normal_label: str  # the label of normal traffic (DAGMM's anomaly class on KDDCUP99)
    attack_labels: tuple[str, ...]
    variant_files: dict[str, str]  # variant name -> file name of the published file
    # Fixed scaling of the numeric features (data.scaling=schema_log), from the features'
    # definitions, never from a file's values: features in [0, 1] by definition (fractions,
    # indicators) stay as they are; every other one, a count, becomes log1p(x) / log1p(scale).
    unit_interval: tuple[str, ...] = ()
    log_scales: dict[str, float] = field(default_factory=dict)

    @property
    def categorical_features(self) -> list[str]:
        return list(self.categories)

    @property
    def numeric_features(self) -> list[str]:
        return [f for f in self.features if f not in self.categories]

    @property
    def known_labels(self) -> frozenset[str]:
        return frozenset([self.normal_label, *self.attack_labels])
