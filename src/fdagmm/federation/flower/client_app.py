"""The ClientApp: one organisation's side of the federation, run by its SuperNode.

The SuperNode's ``--node-config`` names the organisation's records: its own files
(``client-id``, ``data-path``, optional ``test-path``, read with the run's data set) or a
partition file (``data-path`` alone); and where its TensorBoard events, exported detector
and encoded records go (``output-dir``). Flower starts a fresh process for every message, so this module imports
only Flower at load time and each handler what its message needs: ``describe`` the
partition reader, a round message the training and evaluation stack (``client_round``).

One message per round (see ``server_app``): ``train`` when this client trains in the
round, ``evaluate`` when it only reports statistics or test metrics; under secure
aggregation three ``secagg`` queries follow it (``secure_sums``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

LOADED_AT = time.time()  # this process's Flower runtime is up and has the message

app = ClientApp()


@app.query("describe")
def describe(msg: Message, context: Context) -> Message:
    """Which client this node is, its record counts (the server's node map and metrics.json's
    partition) and its data's schema (every site must train with the same one); with a scaling
    fitted to the records (not schema_log), also its training records' statistics for it
    (``ScalingStats``: min/max, sums or histograms), from which the server makes the scaling."""
    import json

    from flwr.app import ConfigRecord, MetricRecord, RecordDict

    from fdagmm.data.datamodule import record_counts
    from fdagmm.data.features import ScalingStats, needs_client_stats
    from fdagmm.federation.flower.partitions import NodeData, node_records
    from fdagmm.federation.flower.records import config_from_run, scaling_stats_record

    records, schema = node_records(NodeData.of(context.node_config), config_from_run(context.run_config))
    counts = record_counts(len(records.train_idx), records.test_is_anomaly)
    reply = RecordDict({
        "metrics": MetricRecord({"client-id": records.client_id, **counts}),
        "schema": ConfigRecord({"schema": json.dumps(schema.to_dict())}),
    })  # fmt: skip
    scaling = str(msg.content["config"]["scaling"])
    if needs_client_stats(scaling):
        reply["scaling-stats"] = scaling_stats_record(ScalingStats.of(records.train, schema, scaling))
    return Message(reply, reply_to=msg)


@app.query("secagg")
def secure_aggregation_step(msg: Message, context: Context) -> Message:
    """A step of the round's secure sums (``secure_sums``): shares, masked input or unmask."""
    from fdagmm.federation.flower import secure_sums

    return secure_sums.client_step(msg, context)


@app.train()
def train(msg: Message, context: Context) -> Message:
    return _round(msg, context)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    return _round(msg, context)


def _round(msg: Message, context: Context) -> Message:
    started = time.time()
    from fdagmm.federation.flower import client_round  # torch, Lightning, scikit-learn

    marks = {"spawned": process_started_at() or LOADED_AT, "loaded": LOADED_AT, "started": started, "imported": time.time()}
    return client_round.handle(msg, context, marks)


def process_started_at() -> float | None:
    """When this process was created (epoch seconds; Linux, to 10 ms), for the round's
    timing: the interpreter and Flower's runtime start before this module is loaded."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started_after_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return time.time() - (uptime - started_after_boot)
