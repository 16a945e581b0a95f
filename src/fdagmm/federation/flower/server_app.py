"""The ServerApp: the run's strategy over Flower's Message API, with the federation's mixture
and evaluation.

First every SuperNode describes its data (``query.describe``): its client id and record
counts, and, with a scaling fitted to the records, its training records' statistics (min/max,
sums or histograms), which combine into the federation's scaling (``schema_log`` needs
nothing from them).
Then one message per client per round (``FdagmmRounds``): the sampled clients train from
the global weights and the run's ``Strategy`` aggregates the usable updates, exactly as in
process; the mixture statistics and the evaluated client's test ride on the following
messages. Under secure aggregation the updates and statistics arrive as sums, after three
``query.secagg`` exchanges per round message (``secure_sums``). The server writes
metrics.json and its TensorBoard events into the run dir, as the in-process backend does,
and ``flower/timings.json``: when each message was sent and answered, and how long each
ClientApp spent on each part (``make bench``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import logging
import time
from pathlib import Path

from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    RecordDict,
)
from flwr.serverapp import Grid, ServerApp
from torch import Tensor

from fdagmm.config import build
from fdagmm.data.datamodule import tested_clients
from fdagmm.data.features import FeatureEncoder, ScalingStats, federation_scaling
from fdagmm.data.schema import TableSchema
from fdagmm.errors import FdagmmError
from fdagmm.federation.components import RunComponents, build_components, build_local_training, prepare_process
from fdagmm.federation.flower.launcher import ERROR_FILE
from fdagmm.federation.flower.records import (
    OUTPUT_DIR_KEY,
    config_from_run,
    gmm_stats_from_record,
    gmm_stats_record,
    scaling_record,
    scaling_stats_from_record,
)
from fdagmm.federation.flower.secure_sums import STATS_SUM, UPDATE_SUM, keys_key, run_sums
from fdagmm.federation.rounds import (
    FederationError,
    aggregate_secure_sum,
    entering_secure_sum,
    mixture_clients,
    require_min_clients,
    round_record,
    stats_of_vector,
    unusable_reason,
)
from fdagmm.federation.privacy import ClientLevelDP
from fdagmm.federation.record_privacy import RecordLevelDP
from fdagmm.federation.strategies import ClientUpdate
from fdagmm.tracking import RoundLog, write_json_atomic, write_results

app = ServerApp()
log = logging.getLogger(__name__)


# How often the server asks the SuperLink for replies: Grid.send_and_receive sleeps 3 s,
# which a round would wait 1.5 s on average; each request costs a few ms of CPU.
POLL_S = 0.2
# Under <output-dir>/flower/: per message, when it was sent and answered, and each
# ClientApp's parts (epoch seconds).
TIMINGS_FILE = "timings.json"


def exchange(grid: Grid, messages: list[Message], timeout_s: float) -> list[Message]:
    """``grid.send_and_receive``, polling for the replies every ``POLL_S`` seconds."""
    pending = set(grid.push_messages(messages))
    deadline = time.monotonic() + timeout_s
    replies: list[Message] = []
    while pending and time.monotonic() < deadline:
        got = list(grid.pull_messages(pending))
        replies += got
        pending -= {msg.metadata.reply_to_message_id for msg in got}
        if pending:
            time.sleep(POLL_S)
    return replies


class FdagmmRounds:
    """The run's rounds over Flower, one message per client per round.

    Message t (t = 1..R) carries theta_{t-1}: the sampled clients train from it (the run's
    ``Strategy`` aggregates their updates into theta_t, exactly as in process); after an
    evaluated round t-1 (under record-level DP, after every round, and theta_0 in message 1)
    the mixture clients report their GMM statistics under it, and under record-level DP the
    trainers also get the federation's statistics of theta_{t-2}, the mixture they train under; and after
    an evaluated round t-2 the evaluated client measures its test set under theta_{t-2}
    with the summed statistics of the previous message. Two messages after the last round
    finish the evaluation (statistics under theta_R, then every client's test). So a round
    costs one message, not three, and its record (metrics.json's history, the round line)
    is written when its test metrics arrive, two messages later.
    """

    def __init__(
        self,
        run: RunComponents,
        grid: Grid,
        node_of: dict[int, int],
        scaling: ArrayRecord,
        rounds: RoundLog,
        tested: list[int],
    ):
        self.cfg = cfg = run.cfg
        self.grid = grid
        self.strategy = run.strategy
        self.release = run.stats_release
        self.secure = run.secure_aggregation
        self.record_level = isinstance(run.privacy, RecordLevelDP)
        self.node_of = node_of  # client id -> Flower node id
        self.client_of = {node: client for client, node in node_of.items()}
        self.scaling = scaling  # the federation's scaling, sent with every message
        self.tested = tested  # the clients tested after the last round (those with test records)
        self.rounds = rounds
        self.train_clients = run.train_clients
        self.sample = run.sample_round
        self.mixture_clients = mixture_clients(cfg.fed.gmm_stats, cfg.method.eval_client, self.train_clients)
        self.states: dict[int, dict[str, Tensor]] = {}  # theta_t, for the rounds still to be tested
        self.mixture_stats: dict[int, ArrayRecord] = {}  # round -> the federation's summed GMM statistics
        self.unrecorded: dict[int, tuple[dict[str, float], dict[str, object]]] = {}  # round -> losses, extra
        self.metrics: dict[int, dict[str, float]] = {}  # round -> the evaluated client's test metrics
        self.final: dict[str, float] | None = None
        self.per_client: dict[str, dict[str, float]] = {}
        self.timings: list[dict[str, object]] = []  # per message, for the round's breakdown

    def run(self, initial: dict[str, Tensor]) -> None:
        self.states[0] = initial
        total = self.cfg.fed.rounds
        for t in range(1, total + 3):
            self.message(t, total)
        if self.unrecorded:
            raise FederationError(f"rounds {sorted(self.unrecorded)} were never tested")

    def message(self, t: int, total: int) -> None:
        """Message t: train round t, statistics of round t-1, test of round t-2 (where due)."""
        evaluated = [s for s in (t - 1, t - 2) if 1 <= s <= total and self.rounds.evaluates(s)]
        # Under record-level DP every client releases its statistics under every theta_s, s = 0..R:
        # round t trains under the mixture of theta_{t-2} (``federation.record_privacy``).
        stats_round = t - 1 if t - 1 in evaluated or (self.record_level and t - 1 <= total) else None
        test_round = t - 2 if t - 2 in evaluated else 0
        eval_client = self.cfg.method.eval_client
        trainers = self.sample(self.train_clients, t) if t <= total else []
        stats_clients = self.mixture_clients if stats_round is not None else []
        testers = self.tested if test_round == total else [eval_client] if test_round else []
        final = test_round == total
        messages = []
        for k in sorted({*trainers, *stats_clients, *testers}):
            config = ConfigRecord(
                {
                    "server-round": t,
                    "train": k in trainers,
                    "stats": k in stats_clients,
                    "test-round": test_round if k in testers else 0,
                    "final": final,
                    "own-mixture": final and self.cfg.fed.gmm_stats == "local",
                    # The evaluated client keeps its personal layers for round t-1's test.
                    "keep-personal": k == eval_client and k in trainers and t - 1 in evaluated,
                }
            )
            content = RecordDict({"config": config, "scaling": self.scaling})
            if k in trainers or k in stats_clients:
                content["arrays"] = ArrayRecord(self.states[t - 1])
            if k in trainers and t - 2 in self.mixture_stats and self.record_level:
                content["frozen-stats"] = self.mixture_stats[t - 2]
            if k in testers:
                content["test-arrays"] = ArrayRecord(self.states[test_round])
                if test_round in self.mixture_stats:
                    content["gmm-stats"] = self.mixture_stats[test_round]
            message_type = MessageType.TRAIN if k in trainers else MessageType.EVALUATE
            messages.append(Message(content, dst_node_id=self.node_of[k], message_type=message_type, group_id=str(t)))
        pushed = time.time()
        replies = exchange(self.grid, messages, self.cfg.fed.flower.timeout_s)
        received = time.time()
        replied = {self.client_of[msg.metadata.src_node_id]: msg for msg in replies}
        self.timings.append(
            {"message": t, "pushed": pushed, "received": received, "clients": {
                str(k): dict(msg.content["timing"]) for k, msg in replied.items() if not msg.has_error() and "timing" in msg.content
            }}
        )

        def reply_of(k: int, what: str, round_idx: int) -> Message:
            msg = replied.get(k)
            if msg is None or msg.has_error():
                why = f"no reply within fed.flower.timeout_s={self.cfg.fed.flower.timeout_s}" if msg is None else msg.error.reason
                raise FederationError(f"round {round_idx}: client {k} returned no {what} ({why})")
            return msg

        if test_round:
            by_client = {
                k: {key: float(v) for key, v in reply_of(k, "test metrics", test_round).content["test-metrics"].items()}
                for k in testers
            }
            self.metrics[test_round] = by_client[eval_client]
            if final:
                self.final = by_client[eval_client]
                self.per_client = {f"client{k}": m for k, m in sorted(by_client.items())}
            del self.states[test_round]
        if self.secure:
            started = time.time()
            self.secure_sums(t, total, stats_round, trainers, stats_clients, replied, reply_of)
            self.timings[-1]["secure_aggregation_s"] = time.time() - started
        else:
            if stats_round is not None:
                stats = [gmm_stats_from_record(reply_of(k, "GMM statistics", stats_round).content["gmm-stats"]) for k in stats_clients]
                self.mixture_stats[stats_round] = gmm_stats_record(self.release(stats, stats_round))
            if t <= total:  # under Poisson sampling a round may have no trainer: the noise alone moves theta
                self.states[t] = self.aggregate(t, trainers, replied)
        if not (t - 1 >= 1 and self.rounds.evaluates(t - 1)):
            self.states.pop(t - 1, None)  # no test will need it
        self.record_ready()

    def trained(self, trainers: list[int], replied: dict[int, Message]) -> tuple[list[int], dict[int, str]]:
        """The trainers whose reply carries an update (or under secure aggregation, its keys),
        in client order, and the others with why."""
        ok, rejected = [], {}
        for k in trainers:
            msg = replied.get(k)
            if msg is None:
                rejected[k] = f"no reply within fed.flower.timeout_s={self.cfg.fed.flower.timeout_s}"
            elif msg.has_error():
                rejected[k] = msg.error.reason
            elif "train-error" in msg.content:
                rejected[k] = str(msg.content["train-error"]["reason"])
            else:
                ok.append(k)
        return ok, rejected

    def secure_sums(
        self,
        t: int,
        total: int,
        stats_round: int | None,
        trainers: list[int],
        stats_clients: list[int],
        replied: dict[int, Message],
        reply_of: Callable[[int, str, int], Message],
    ) -> None:
        """Message t's sums by secure aggregation (``secure_sums``): the statistics of round
        t-1 and the updates of round t, of which the server learns the sums alone."""
        joined = {}
        if stats_round is not None:
            joined[STATS_SUM] = {k: reply_of(k, "GMM statistics", stats_round).content[keys_key(STATS_SUM)] for k in stats_clients}
        ok, rejected = self.trained(trainers, replied)
        weights = {k: int(replied[k].content["metrics"]["num-examples"]) for k in ok}
        entering, n_sampled = entering_secure_sum([ClientUpdate(k, {}, weights[k], math.nan) for k in ok], rejected, len(trainers))
        if entering:
            joined[UPDATE_SUM] = {u.client_id: replied[u.client_id].content[keys_key(UPDATE_SUM)] for u in entering}

        def send(contents: dict[int, RecordDict]) -> dict[int, RecordDict]:
            messages = [
                Message(c, dst_node_id=self.node_of[k], message_type=f"{MessageType.QUERY}.secagg", group_id=str(t)) for k, c in contents.items()
            ]
            replies = exchange(self.grid, messages, self.cfg.fed.flower.timeout_s)
            return {self.client_of[m.metadata.src_node_id]: m.content for m in replies if not m.has_error()}

        sums = run_sums(send, joined)
        if stats_round is not None:
            summed, survivors = sums[STATS_SUM]
            self.mixture_stats[stats_round] = gmm_stats_record(self.release.of_sum(stats_of_vector(summed), len(survivors), stats_round))
        if t > total:
            return
        summed, survivors = sums.get(UPDATE_SUM, (None, []))
        for u in entering:
            if u.client_id not in survivors:
                rejected[u.client_id] = "dropped out of the secure sum before its masked input"
        require_min_clients(t, len(survivors), n_sampled, rejected, self.cfg.fed.min_clients)
        self.unrecorded[t] = round_record([], rejected, trainers, len(self.train_clients), secure=True)
        self.states[t] = aggregate_secure_sum(self.strategy, self.states[t - 1], summed, [weights[k] for k in survivors], t)

    def aggregate(self, t: int, trainers: list[int], replied: dict[int, Message]) -> dict[str, Tensor]:
        """theta_t: the strategy's aggregate of the usable updates, in client order; failed or
        non-finite ones are left out."""
        updates = []
        ok, rejected = self.trained(trainers, replied)
        for k in ok:
            metrics = replied[k].content["metrics"]
            update = ClientUpdate(
                client_id=k,
                state=replied[k].content["arrays"].to_torch_state_dict(),
                n_samples=int(metrics["num-examples"]),
                train_loss=float(metrics["train-loss"]) if "train-loss" in metrics else math.nan,  # none under record-level DP
            )
            if reason := unusable_reason(update):
                rejected[k] = reason
            else:
                updates.append(update)
        require_min_clients(t, len(updates), len(trainers), rejected, self.cfg.fed.min_clients)
        self.unrecorded[t] = round_record(updates, rejected, trainers, len(self.train_clients))
        return self.strategy.aggregate(self.states[t - 1], updates, t)

    def record_ready(self) -> None:
        """Record the rounds, in order, whose test metrics are in (or that are not tested)."""
        while self.unrecorded:
            s = min(self.unrecorded)
            if self.rounds.evaluates(s) and s not in self.metrics:
                return
            losses, extra = self.unrecorded.pop(s)
            self.rounds.record(s, losses, self.metrics.pop(s, {}), **extra)


def describe_clients(
    grid: Grid, n_clients: int, timeout_s: float, scaling: str
) -> tuple[dict[int, int], dict[str, dict[str, int]], dict[int, ScalingStats], TableSchema]:
    """Wait for a SuperNode per client; returns client id -> node id, record counts, when
    ``scaling`` needs them each client's scaling statistics (``ScalingStats`` of its training
    records; otherwise none is asked for), and the schema every client's data has
    (a FederationError names the first difference when two differ)."""
    deadline = time.monotonic() + timeout_s
    while len(nodes := list(grid.get_node_ids())) < n_clients:
        if time.monotonic() > deadline:
            raise FederationError(f"{len(nodes)} of {n_clients} SuperNodes connected within fed.flower.timeout_s={timeout_s}")
        time.sleep(0.5)
    query = RecordDict({"config": ConfigRecord({"scaling": scaling})})
    messages = [Message(query, dst_node_id=node, message_type=f"{MessageType.QUERY}.describe") for node in nodes]
    node_of, counts, stats, schemas = {}, {}, {}, {}
    for reply in exchange(grid, messages, timeout_s):
        if reply.has_error():
            raise FederationError(f"SuperNode {reply.metadata.src_node_id} could not describe its data: {reply.error.reason}")
        m = reply.content["metrics"]
        k = int(m["client-id"])
        if k in node_of:
            raise FederationError(f"two SuperNodes hold client {k}'s partition: give each its own data-path")
        node_of[k] = reply.metadata.src_node_id
        counts[f"client{k}"] = {key: int(m[key]) for key in ("n_train", "n_test", "n_test_anomalies")}
        if "scaling-stats" in reply.content:
            stats[k] = scaling_stats_from_record(reply.content["scaling-stats"])
        schemas[k] = TableSchema.from_dict(json.loads(str(reply.content["schema"]["schema"])), source=f"client {k}'s schema")
    if sorted(node_of) != list(range(n_clients)):
        raise FederationError(f"the SuperNodes hold clients {sorted(node_of)}, expected 0..{n_clients - 1}")
    first = schemas[0]
    for k, schema in sorted(schemas.items()):
        if difference := first.first_difference(schema):
            raise FederationError(f"client {k}'s data does not have client 0's schema ({difference}): every site must train with the same schema")
    return node_of, dict(sorted(counts.items())), stats, first


def _log_to_stderr() -> None:
    """This package's INFO lines (the round lines among them) on stderr, which Flower streams
    to ``flwr log``; other libraries keep their own levels."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(levelname)s] %(message)s"))
    package = logging.getLogger("fdagmm")
    package.handlers[:] = [handler]
    package.setLevel(logging.INFO)
    package.propagate = False


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = config_from_run(context.run_config)
    output_dir = Path(str(context.run_config[OUTPUT_DIR_KEY]))
    cfg.paths.output_dir = str(output_dir)
    _log_to_stderr()
    try:
        prepare_process(cfg)
        run = build_components(cfg, build(cfg.partition))
        run.warn_if_insecure_noise()
        # The logger's save_dir was resolved where the run was prepared; write under output-dir.
        rounds = run.round_log(output_dir / "tensorboard")
        node_of, counts, stats, schema = describe_clients(grid, run.n_clients, cfg.fed.flower.timeout_s, cfg.data.scaling)
        log.info("%s, partition %s, seed %d over Flower: %d clients", run.label, cfg.partition.name, cfg.seed, len(counts))
        scaling = federation_scaling(cfg.data.scaling, schema, lambda: [stats[k] for k in run.train_clients])
        net = build_local_training(cfg, FeatureEncoder(scaling, schema).dim).build_module().net
        run.check_model(net)
        if isinstance(run.privacy, ClientLevelDP):  # a Flower run never resumes: its releases start here
            run.privacy.releases_path.unlink(missing_ok=True)
        elif isinstance(run.privacy, RecordLevelDP):
            run.privacy.with_sizes({k: counts[f"client{k}"]["n_train"] for k in run.train_clients})
        tested = tested_clients(counts, schema.labelled)
        loop = FdagmmRounds(run, grid, node_of, scaling_record(scaling), rounds, tested)
        loop.run({k: v.detach().cpu().clone() for k, v in net.state_dict().items()})
        write_results(output_dir, run.run_info(), run.hparams(), rounds, {"own": loop.final}, "own", loop.per_client, counts)
        write_json_atomic(output_dir / "flower" / TIMINGS_FILE, {"messages": loop.timings})
    except Exception as e:
        message = str(e) if isinstance(e, FdagmmError) else f"{type(e).__name__}: {e}"
        (output_dir / "flower").mkdir(parents=True, exist_ok=True)
        (output_dir / "flower" / ERROR_FILE).write_text(message.splitlines()[0] + "\n")
        raise
