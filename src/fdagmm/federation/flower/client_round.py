"""What a ClientApp does with one round message: the evaluation parts that ride on it, then
its local training, with the same ``Client`` as the in-process backend.

A message for round t may carry, in this order:

1. ``test``: the test metrics of an earlier round s's global model (``test-arrays``) with the
   federation's mixture of round s (``gmm-stats``, summed by the server), or with this
   client's own mixture (``own-mixture``); after the last round (``final``) the evaluated
   client also logs its test energies and exports its detector (model.pt);
2. ``stats``: the GMM sufficient statistics of this client's training records under the
   incoming global model theta_{t-1} (clipped under differential privacy), the evaluation
   of round t-1;
3. ``train``: ClientUpdate(k, theta_{t-1}), the round's local training (under record-level
   DP, under the mixture of ``frozen-stats``, the federation's statistics of theta_{t-2}). A failure here is
   reported in the reply (``train-error``) and leaves the client out of the round, as in
   process; a failure in 1 or 2 fails the message.

Under secure aggregation (``privacy.secure_aggregation``) the statistics and the update (its
strategy's ``contribution``; a non-finite one is a ``train-error``) do not leave as they are:
the client joins the round's sums (``secure_sums.join``) and the reply carries its public keys.

Evaluations run with the personal layers (FedPer) the client had after the evaluated round:
the statistics before this round's training, and the test with a copy kept for it in
``context.state`` when the client trained in between (``keep-personal``).
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import torch

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict

from fdagmm.config import build
from fdagmm.data.features import FeatureEncoder
from fdagmm.federation.client import Client
from fdagmm.federation.components import build_components, build_local_training, export_detector, planned_training_steps, prepare_process
from fdagmm.federation.flower import secure_sums
from fdagmm.federation.flower.partitions import ENCODED_DIR, NodeData, encoded_partition
from fdagmm.federation.flower.records import (
    config_from_run,
    gmm_stats_from_record,
    gmm_stats_record,
    scaling_from_record,
)
from fdagmm.federation.rounds import stats_vector, unusable_reason
from fdagmm.models.dagmm import DAGMM, mixture_from_stats

# This client's records in context.state: its TensorBoard step, its personal layers, its
# optimiser's state (fed.keep_optimizer_state), and the personal layers of the round whose
# test is still to come.
STATE_KEY = "fdagmm"
PERSONAL_KEY = "fdagmm-personal"
OPTIMIZER_KEY = "fdagmm-optimizer"
TEST_PERSONAL_KEY = "fdagmm-test-personal"
TEST_ROUND_KEY = "fdagmm-test-round"


def handle(msg: Message, context: Context, marks: dict[str, float]) -> Message:
    """The reply to one round message; ``marks`` times its parts (epoch seconds), and the
    reply's ``timing`` carries them for the round's breakdown (``make bench``)."""
    cfg = config_from_run(context.run_config)
    prepare_process(cfg)
    config = msg.content["config"]
    output_dir = Path(str(context.node_config["output-dir"]))
    scaling = scaling_from_record(msg.content["scaling"])
    data, encoder = encoded_partition(NodeData.of(context.node_config), cfg, scaling, output_dir / ENCODED_DIR)
    # A ClientApp process lives for one message: at most one round of this client's training.
    training = build_local_training(cfg, encoder.dim, planned_training_steps(cfg, [data.n_train], rounds=1))
    client = build_components(cfg, build(cfg.partition)).client(data, training, output_dir / "tensorboard")
    if STATE_KEY in context.state:
        client.logger.step_offset = int(context.state[STATE_KEY]["step-offset"])
    personal = context.state[PERSONAL_KEY].to_torch_state_dict() if PERSONAL_KEY in context.state else {}
    if OPTIMIZER_KEY in context.state:
        client.optimizer_state = torch.load(io.BytesIO(context.state[OPTIMIZER_KEY]["state"]), weights_only=True)
    marks["data"] = time.time()

    reply: dict[str, ArrayRecord | ConfigRecord | MetricRecord] = {"metrics": MetricRecord({"client-id": client.client_id})}
    secure = bool(cfg.privacy.secure_aggregation)
    if int(config["test-round"]):
        # The personal layers after the tested round: the copy kept before this client's
        # training since then, if it trained, else the current ones.
        kept = TEST_ROUND_KEY in context.state and int(context.state[TEST_ROUND_KEY]["round"]) == int(config["test-round"])
        client.personal_state = context.state[TEST_PERSONAL_KEY].to_torch_state_dict() if kept else personal
        reply["test-metrics"] = MetricRecord(_test(cfg, client, encoder, msg, config, output_dir))
    client.personal_state = personal
    if bool(config["stats"]):
        net = _net(client, msg.content["arrays"])
        # Only the global mixture's statistics are released under differential privacy; with
        # fed.gmm_stats=local the evaluated client's own come back to it unchanged, as in process.
        stats = client.shared_gmm_stats(net, int(config["server-round"]) - 1) if cfg.fed.gmm_stats == "global" else client.gmm_stats(net)
        if secure:
            reply[secure_sums.keys_key(secure_sums.STATS_SUM)] = secure_sums.join(context, secure_sums.STATS_SUM, client.client_id, stats_vector(stats))
        else:
            reply["gmm-stats"] = gmm_stats_record(stats)
    marks["evaluated"] = time.time()

    if bool(config["train"]):
        if bool(config["keep-personal"]):  # round t-1's test comes with the next message
            context.state[TEST_PERSONAL_KEY] = ArrayRecord(personal)
            context.state[TEST_ROUND_KEY] = MetricRecord({"round": int(config["server-round"]) - 1})
        try:
            frozen = mixture_from_stats(gmm_stats_from_record(msg.content["frozen-stats"])) if "frozen-stats" in msg.content else None
            global_state = msg.content["arrays"].to_torch_state_dict()
            update = client.update(global_state, int(config["server-round"]), frozen)
        except Exception as e:  # one organisation's failure leaves it out of the round, as in process
            reply["train-error"] = ConfigRecord({"reason": f"{type(e).__name__}: {e}"})
        else:
            reply["metrics"]["num-examples"] = update.n_samples
            if not secure:
                reply["arrays"] = ArrayRecord(update.state)
                if not math.isnan(update.train_loss):  # under record-level DP the loss stays here
                    reply["metrics"]["train-loss"] = update.train_loss
            elif reason := unusable_reason(update):  # the server cannot look at it: the client does
                reply["train-error"] = ConfigRecord({"reason": reason})
            else:
                contribution = client.strategy.contribution(global_state, update, int(config["server-round"]))
                reply[secure_sums.keys_key(secure_sums.UPDATE_SUM)] = secure_sums.join(context, secure_sums.UPDATE_SUM, client.client_id, contribution)
            context.state[STATE_KEY] = MetricRecord({"step-offset": client.logger.step_offset})
            if client.personal_state:
                context.state[PERSONAL_KEY] = ArrayRecord(client.personal_state)
            if client.optimizer_state is not None:
                buffer = io.BytesIO()
                torch.save(client.optimizer_state, buffer)
                context.state[OPTIMIZER_KEY] = ConfigRecord({"state": buffer.getvalue()})
    marks["trained"] = time.time()
    reply["timing"] = MetricRecord(marks)
    return Message(RecordDict(reply), reply_to=msg)


def _net(client: Client, arrays: ArrayRecord) -> DAGMM:
    net = client.training.build_module().net
    net.load_state_dict(arrays.to_torch_state_dict())
    return net


def _test(cfg, client: Client, encoder: FeatureEncoder, msg: Message, config: ConfigRecord, output_dir: Path) -> dict[str, float]:
    """This client's test metrics under the tested round's global model and mixture."""
    net = _net(client, msg.content["test-arrays"])
    if bool(config["own-mixture"]):
        mixture = mixture_from_stats(client.gmm_stats(net))
    else:
        mixture = mixture_from_stats(gmm_stats_from_record(msg.content["gmm-stats"]))
    export = bool(config["final"]) and client.client_id == cfg.method.eval_client
    metrics = client.evaluate(
        net, mixture, cfg.eval.anomaly_ratio, ("own",), [], log_scores_at=cfg.fed.rounds if export else None
    )["own"]
    if export:
        export_detector(cfg, cfg.data.name, net, mixture, encoder, client, metrics, output_dir)
    return metrics
