"""Partitioners: how a data set's records are split into clients, one file per scheme.

``StudyScenario`` (the study's s1-s4), ``DataPoorSite``, ``IidPartitioner``,
``DirichletPartitioner`` and ``ByColumnPartitioner`` share ``Partitioner``'s protocol: a
scheme decides which client holds each inlier record (the class that trains); anomalies
follow in proportion to each client's inliers (by column: each client's own); a random
``train_fraction`` of a client's inliers trains, the rest and its anomalies test (unless the
data set has a test set of its own: then every inlier trains). ``FilesPartition`` splits
nothing: each client is an organisation's own files.
"""

from fdagmm.data.partition.base import ClientSplit, Partitioner
from fdagmm.data.partition.by_column import ByColumnPartitioner
from fdagmm.data.partition.data_poor import DataPoorSite
from fdagmm.data.partition.dirichlet import DirichletPartitioner
from fdagmm.data.partition.files import FilesPartition, SiteFiles
from fdagmm.data.partition.iid import IidPartitioner
from fdagmm.data.partition.study import StudyScenario

__all__ = [
    "ByColumnPartitioner", "ClientSplit", "DataPoorSite", "DirichletPartitioner", "FilesPartition", "IidPartitioner",
    "Partitioner", "SiteFiles", "StudyScenario",
]  # fmt: skip
