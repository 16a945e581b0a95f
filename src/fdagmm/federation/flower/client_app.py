"""The ClientApp: one organisation's side of the federation, run by its SuperNode.

The SuperNode's ``--node-config`` names the organisation's partition file (``data-path``)
and where its TensorBoard events and exported detector go (``output-dir``). Each message
encodes the organisation's records with the federation's scaling bounds (sent with every
message), builds a ``Client`` with the run's strategy and runs the same method as the
in-process backend; Flower starts a fresh process per message, so what a client keeps
across rounds (its TensorBoard step, FedPer's personal layers) lives in ``context.state``.
What a reply carries is all that leaves the site: record counts and min/max per feature,
the federated weights, GMM statistics, metrics.
"""

from __future__ import annotations

from pathlib import Path

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from omegaconf import DictConfig

from fdagmm.data.datamodule import encode_client, record_counts
from fdagmm.data.features import FeatureEncoder, ScalingStats
from fdagmm.federation.client import Client
from fdagmm.federation.components import (
    build_client,
    build_local_training,
    build_strategy,
    export_detector,
    prepare_process,
)
from fdagmm.models.dagmm import DAGMM, mixture_from_stats
from fdagmm.federation.flower.partitions import load_partition
from fdagmm.federation.flower.records import (
    config_from_run,
    gmm_stats_from_record,
    gmm_stats_record,
    scaling_from_record,
    scaling_record,
)

app = ClientApp()

# This client's records in context.state: its TensorBoard step and its personal layers.
STATE_KEY = "fdagmm"
PERSONAL_KEY = "fdagmm-personal"


def _client(msg: Message, context: Context) -> tuple[DictConfig, Client, FeatureEncoder]:
    cfg = config_from_run(context.run_config)
    prepare_process(cfg)
    encoder = FeatureEncoder(scaling_from_record(msg.content["scaling"]))
    data = encode_client(load_partition(Path(str(context.node_config["data-path"]))), encoder)
    training = build_local_training(cfg, encoder.dim)
    strategy = build_strategy(cfg, training.build_module().net)
    client = build_client(cfg, data, training, strategy, Path(str(context.node_config["output-dir"])) / "tensorboard")
    if STATE_KEY in context.state:
        client.logger.step_offset = int(context.state[STATE_KEY]["step-offset"])
    if PERSONAL_KEY in context.state:
        client.personal_state = context.state[PERSONAL_KEY].to_torch_state_dict()
    return cfg, client, encoder


def _global_net(client: Client, arrays: ArrayRecord) -> DAGMM:
    net = client.training.build_module().net
    net.load_state_dict(arrays.to_torch_state_dict())
    return net


def _reply(msg: Message, **records: ArrayRecord | MetricRecord) -> Message:
    return Message(RecordDict(records), reply_to=msg)


@app.query("describe")
def describe(msg: Message, context: Context) -> Message:
    """Which client this node is, its record counts and the min/max of its training records
    (the server's node map, metrics.json's partition and the federation's scaling bounds)."""
    records = load_partition(Path(str(context.node_config["data-path"])))
    counts = record_counts(len(records.train_idx), records.test_is_anomaly)
    return _reply(
        msg,
        metrics=MetricRecord({"client-id": records.client_id, **counts}),
        scaling=scaling_record(ScalingStats.of(records.train)),
    )


@app.train()
def train(msg: Message, context: Context) -> Message:
    """ClientUpdate(k, theta): the round's local training from the global weights."""
    _, client, _ = _client(msg, context)
    update = client.update(msg.content["arrays"].to_torch_state_dict(), int(msg.content["config"]["server-round"]))
    context.state[STATE_KEY] = MetricRecord({"step-offset": client.logger.step_offset})
    if client.personal_state:
        context.state[PERSONAL_KEY] = ArrayRecord(client.personal_state)
    return _reply(
        msg,
        arrays=ArrayRecord(update.state),
        metrics=MetricRecord(
            {"num-examples": update.n_samples, "train-loss": update.train_loss, "client-id": client.client_id}
        ),
    )


@app.evaluate()
def gmm_stats(msg: Message, context: Context) -> Message:
    """Sufficient statistics of this client's training records under the global model."""
    _, client, _ = _client(msg, context)
    stats = client.gmm_stats(_global_net(client, msg.content["arrays"]))
    return _reply(msg, **{"gmm-stats": gmm_stats_record(stats)}, metrics=MetricRecord({"client-id": client.client_id}))


@app.query("test")
def test(msg: Message, context: Context) -> Message:
    """This client's test metrics under the global model and the federation's mixture (or,
    with ``own-mixture``, the mixture of its own statistics). The evaluated client, after the
    last round, also logs its test energies and exports its detector (model.pt)."""
    cfg, client, encoder = _client(msg, context)
    net = _global_net(client, msg.content["arrays"])
    config = msg.content["config"]
    if bool(config["own-mixture"]):
        mixture = mixture_from_stats(client.gmm_stats(net))
    else:
        mixture = mixture_from_stats(gmm_stats_from_record(msg.content["gmm-stats"]))
    export = bool(config["final"]) and client.client_id == cfg.method.eval_client
    metrics = client.evaluate(
        net, mixture, cfg.eval.anomaly_ratio, ("own",), [], log_scores_at=cfg.fed.rounds if export else None
    )["own"]
    if export:
        export_detector(cfg, net, mixture, encoder, client, metrics, Path(str(context.node_config["output-dir"])))
    return _reply(msg, metrics=MetricRecord(metrics))
