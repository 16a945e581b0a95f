"""The ServerApp: the run's strategy over Flower's Message API, with the federation's mixture
and evaluation.

First every SuperNode describes its data (``query.describe``): its client id, record counts
and the min/max of its training records, which combine into the federation's scaling bounds.
Per round (``FdagmmRounds.start``): the sampled clients train from the global weights
(``train``); the run's ``Strategy`` aggregates the usable updates, exactly as in process;
after an evaluated round each client that feeds the mixture reports its GMM statistics
(``evaluate``), and the evaluated client measures its test set with their sum
(``query.test``); after the last round every client does. The server writes metrics.json
and its TensorBoard events into the run dir, as the in-process backend does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg
from omegaconf import DictConfig

from fdagmm.config import n_clients_of, train_clients_of
from fdagmm.data.features import FeatureEncoder, ScalingStats
from fdagmm.errors import FdagmmError
from fdagmm.federation.components import (
    build_local_training,
    build_round_log,
    build_strategy,
    hparams,
    prepare_process,
    run_info,
)
from fdagmm.federation.flower.launcher import ERROR_FILE
from fdagmm.federation.flower.records import (
    OUTPUT_DIR_KEY,
    config_from_run,
    gmm_stats_from_record,
    gmm_stats_record,
    scaling_from_record,
    scaling_record,
)
from fdagmm.federation.rounds import (
    FederationError,
    mixture_clients,
    require_min_clients,
    round_record,
    sample_clients,
    unusable_reason,
)
from fdagmm.federation.strategies import ClientUpdate, Strategy
from fdagmm.tracking import RoundLog, write_results

app = ServerApp()
log = logging.getLogger(__name__)


class FdagmmRounds(FedAvg):
    """Flower's round loop (``FedAvg.start``) around this project's strategy, sampling,
    mixture and evaluation: Flower moves the messages, ``strategy`` decides the weights."""

    def __init__(
        self, cfg: DictConfig, strategy: Strategy, node_of: dict[int, int], scaling: ArrayRecord, rounds: RoundLog, grid: Grid
    ):
        self.cfg = cfg
        self.strategy = strategy
        self.scaling = scaling  # the federation's scaling bounds, sent with every message
        self.node_of = node_of  # client id -> Flower node id
        self.client_of = {node: client for client, node in node_of.items()}
        self.train_clients = train_clients_of(cfg)
        self.mixture_clients = mixture_clients(cfg.fed.gmm_stats, cfg.method.eval_client, self.train_clients)
        self.rounds = rounds
        self.grid = grid
        self.global_state: dict | None = None  # the round's starting weights, for the strategy
        self.sampled: list[int] = []
        self.losses: dict[str, float] = {}
        self.extra: dict[str, object] = {}
        self.mixture_stats: ArrayRecord | None = None
        self.final: dict[str, float] | None = None
        self.per_client: dict[str, dict[str, float]] = {}
        n = len(self.train_clients)
        super().__init__(min_train_nodes=1, min_evaluate_nodes=len(self.mixture_clients), min_available_nodes=n)

    def _messages(self, clients: list[int], message_type: str, **records: ArrayRecord | ConfigRecord) -> list[Message]:
        content = RecordDict({**records, "scaling": self.scaling})
        return [Message(content, dst_node_id=self.node_of[k], message_type=message_type) for k in clients]

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        config["server-round"] = server_round
        self.global_state = arrays.to_torch_state_dict()
        self.sampled = sample_clients(self.train_clients, self.cfg.fed.clients_per_round, self.cfg.seed, server_round)
        return self._messages(self.sampled, MessageType.TRAIN, arrays=arrays, config=config)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The strategy's aggregate of the usable updates, in client order; failed or
        non-finite ones are left out."""
        updates, rejected = [], {}
        replied = {self.client_of[msg.metadata.src_node_id]: msg for msg in replies}
        for k in self.sampled:
            msg = replied.get(k)
            if msg is None:
                rejected[k] = f"no reply within fed.flower.timeout_s={self.cfg.fed.flower.timeout_s}"
            elif msg.has_error():
                rejected[k] = msg.error.reason
            else:
                metrics = msg.content["metrics"]
                update = ClientUpdate(
                    client_id=k,
                    state=msg.content["arrays"].to_torch_state_dict(),
                    n_samples=int(metrics["num-examples"]),
                    train_loss=float(metrics["train-loss"]),
                )
                if reason := unusable_reason(update):
                    rejected[k] = reason
                else:
                    updates.append(update)
        require_min_clients(server_round, len(updates), len(self.sampled), rejected, self.cfg.fed.min_clients)
        self.losses, self.extra = round_record(updates, rejected, self.sampled, len(self.train_clients))
        new_state = self.strategy.aggregate(self.global_state, updates)
        return ArrayRecord(new_state), MetricRecord({f"train-loss-{k}": v for k, v in self.losses.items()})

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid) -> Iterable[Message]:
        if not self.rounds.evaluates(server_round):
            return []
        return self._messages(self.mixture_clients, MessageType.EVALUATE, arrays=arrays)

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """The federation's GMM statistics: the sum of every mixture client's, in client order."""
        replied = {self.client_of[msg.metadata.src_node_id]: msg for msg in replies}
        stats = []
        for k in self.mixture_clients:
            msg = replied.get(k)
            if msg is None or msg.has_error():
                why = "no reply" if msg is None else msg.error.reason
                raise FederationError(f"round {server_round}: client {k} sent no GMM statistics ({why})")
            stats.append(gmm_stats_from_record(msg.content["gmm-stats"]))
        total = sum(stats[1:], stats[0])
        self.mixture_stats = gmm_stats_record(total)
        return MetricRecord({"gmm-records": total.n})

    def _test(self, server_round: int, arrays: ArrayRecord, clients: list[int], final: bool) -> dict[int, dict[str, float]]:
        """Test metrics of ``clients`` under the global model (``query.test``)."""
        own_mixture = self.cfg.fed.gmm_stats == "local"
        replies = self.grid.send_and_receive(
            self._messages(
                clients,
                f"{MessageType.QUERY}.test",
                arrays=arrays,
                **{"gmm-stats": self.mixture_stats},
                config=ConfigRecord({"server-round": server_round, "final": final, "own-mixture": own_mixture and final}),
            ),
            timeout=self.cfg.fed.flower.timeout_s,
        )
        replied = {self.client_of[msg.metadata.src_node_id]: msg for msg in replies}
        metrics = {}
        for k in clients:
            reply = replied.get(k)
            if reply is None or reply.has_error():
                why = "no reply" if reply is None else reply.error.reason
                raise FederationError(f"round {server_round}: client {k} returned no test metrics ({why})")
            metrics[k] = {key: float(v) for key, v in reply.content["metrics"].items()}
        return metrics

    def test_global_model(self, server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        """``evaluate_fn`` of ``start``: the evaluated client's test metrics (every client's
        after the last round), and the round's record."""
        if server_round == 0:
            return None
        metrics: dict[str, float] = {}
        if self.rounds.evaluates(server_round):
            final = server_round == self.cfg.fed.rounds
            eval_client = self.cfg.method.eval_client
            clients = list(self.node_of) if final else [eval_client]
            by_client = self._test(server_round, arrays, sorted(clients), final)
            metrics = by_client[eval_client]
            if final:
                self.final = metrics
                self.per_client = {f"client{k}": m for k, m in sorted(by_client.items())}
        self.rounds.record(server_round, self.losses, metrics, **self.extra)
        return MetricRecord(metrics) if metrics else None


def describe_clients(
    grid: Grid, n_clients: int, timeout_s: float
) -> tuple[dict[int, int], dict[str, dict[str, int]], dict[int, ScalingStats]]:
    """Wait for a SuperNode per client; returns client id -> node id, record counts and each
    client's scaling statistics (min/max per feature of its training records)."""
    deadline = time.monotonic() + timeout_s
    while len(nodes := list(grid.get_node_ids())) < n_clients:
        if time.monotonic() > deadline:
            raise FederationError(f"{len(nodes)} of {n_clients} SuperNodes connected within fed.flower.timeout_s={timeout_s}")
        time.sleep(0.5)
    messages = [Message(RecordDict(), dst_node_id=node, message_type=f"{MessageType.QUERY}.describe") for node in nodes]
    node_of, counts, scaling = {}, {}, {}
    for reply in grid.send_and_receive(messages, timeout=timeout_s):
        if reply.has_error():
            raise FederationError(f"SuperNode {reply.metadata.src_node_id} could not describe its data: {reply.error.reason}")
        m = reply.content["metrics"]
        k = int(m["client-id"])
        if k in node_of:
            raise FederationError(f"two SuperNodes hold client {k}'s partition: give each its own data-path")
        node_of[k] = reply.metadata.src_node_id
        counts[f"client{k}"] = {key: int(m[key]) for key in ("n_train", "n_test", "n_test_anomalies")}
        scaling[k] = scaling_from_record(reply.content["scaling"])
    if sorted(node_of) != list(range(n_clients)):
        raise FederationError(f"the SuperNodes hold clients {sorted(node_of)}, expected 0..{n_clients - 1}")
    return node_of, dict(sorted(counts.items())), scaling


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
        # The logger's save_dir was resolved where the run was prepared; write under output-dir.
        rounds = build_round_log(cfg, output_dir / "tensorboard")
        node_of, counts, scaling = describe_clients(grid, n_clients_of(cfg), cfg.fed.flower.timeout_s)
        log.info("%s, partition %s, seed %d over Flower: %d clients", cfg.method.label, cfg.partition.name, cfg.seed, len(counts))
        # The federation's scaling bounds: those of the union of the training clients' records.
        bounds = ScalingStats.combine([scaling[k] for k in train_clients_of(cfg)])
        net = build_local_training(cfg, FeatureEncoder(bounds).dim).build_module().net
        loop = FdagmmRounds(cfg, build_strategy(cfg, net), node_of, scaling_record(bounds), rounds, grid)
        loop.start(
            grid,
            ArrayRecord(net.state_dict()),
            num_rounds=cfg.fed.rounds,
            timeout=cfg.fed.flower.timeout_s,
            evaluate_fn=loop.test_global_model,
        )
        write_results(output_dir, run_info(cfg), hparams(cfg), rounds, {"own": loop.final}, "own", loop.per_client, counts)
    except Exception as e:
        message = str(e) if isinstance(e, FdagmmError) else f"{type(e).__name__}: {e}"
        (output_dir / "flower").mkdir(parents=True, exist_ok=True)
        (output_dir / "flower" / ERROR_FILE).write_text(message.splitlines()[0] + "\n")
        raise
