"""Performance figures of FDAGMM against baselines run in the same process: `make bench`.

1. training step: samples/s of the project's training (LightningModule + Trainer, as a client
   runs it) against a minimal plain-PyTorch loop of the same model; and the project's loss in
   that bare loop, to show what the Trainer's per-step machinery costs;
2. federated round: where a round's time goes outside client training;
3. data: parsing the KDDCUP99 file (the streaming reader, checks included) against loading the
   parse cache;
4. scale: one epoch over 4.9 M rows (the 10% file 10 times), its time and peak memory;
5. Flower (``--flower``): a round through a SuperLink and SuperNodes on 127.0.0.1 against
   the same round in process, and where the Flower round's time goes;
6. flow file (``--flow-rows``, 10 M by default; ``--only-flow`` alone): reading and encoding a
   large UNSW-NB15 CSV in chunks (``iter_chunks`` + ``FeatureEncoder``) against pandas' C
   reader in chunks with no checks, rows/s and peak memory at two file sizes;
7. secure aggregation (``--secure-aggregation``; ``--only-secure-aggregation`` alone): a round
   of s3 over Flower with ``privacy.secure_aggregation=true`` against one without, and one
   secure sum of the model's update against the plain sum, by the number of clients.
Each prints its figures; nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import logging
import math
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from hydra.utils import instantiate
from rich.console import Console
from rich.table import Table

from fdagmm import api
from fdagmm.config import build
from fdagmm.data.datamodule import ClientsDataModule, batch_loader
from fdagmm.data.dataset import build_dataset
from fdagmm.data.features import FeatureEncoder, Scaling
from fdagmm.data.loading import load_table
from fdagmm.data.reading import DEFAULT_CHUNK, iter_chunks, read_table
from fdagmm.data.schema import load_schema
from fdagmm.federation import client as client_module
from fdagmm.federation import inprocess as inprocess_module
from fdagmm.federation.components import COMPILE_PAYS_AFTER_STEPS, _quiet_lightning, compiles_training, planned_training_steps
from fdagmm.federation.strategies import Strategy
from fdagmm.run import experiment as experiment_module
from fdagmm.run.experiment import train
from fdagmm.tracking import RoundLog

console = Console(width=140)


def compose_config(*overrides: str, accelerator: str = "cpu"):
    return api.compose_config([f"trainer.accelerator={accelerator}", *overrides])


def clients_data(cfg, train_clients: list[int]) -> ClientsDataModule:
    """The run's data module, set up: ``cfg.data``'s data set split by ``cfg.partition`` and encoded."""
    d = cfg.data
    dm = ClientsDataModule(build_dataset(d), d.batch_size, build(cfg.partition), 0, train_clients, d.scaling, d.scaling_records)
    dm.setup()
    return dm


def training_rows(data_path: str) -> torch.Tensor:
    """Every client's training records of scenario s3, encoded (198,371 rows on the 10% file)."""
    cfg = compose_config(f"data.train_path={data_path}", "method=pooled", "data.cache_dir=null")
    dm = clients_data(cfg, train_clients=[0, 1])
    return torch.cat([c.train_x for c in dm.clients])


class PlainDAGMM(torch.nn.Module):
    """The baseline's model, written as plainly as the spec reads (independent of fdagmm.models.dagmm)."""

    def __init__(self, d: int):
        super().__init__()
        tanh = torch.nn.Tanh
        self.encoder = torch.nn.Sequential(torch.nn.Linear(d, 60), tanh(), torch.nn.Linear(60, 30), tanh(),
                                           torch.nn.Linear(30, 10), tanh(), torch.nn.Linear(10, 1))
        self.decoder = torch.nn.Sequential(torch.nn.Linear(1, 10), tanh(), torch.nn.Linear(10, 30), tanh(),
                                           torch.nn.Linear(30, 60), tanh(), torch.nn.Linear(60, d))
        self.estimation = torch.nn.Sequential(torch.nn.Linear(3, 10), tanh(), torch.nn.Dropout(0.5),
                                              torch.nn.Linear(10, 4), torch.nn.Softmax(dim=1))  # fmt: skip

    def forward(self, x):
        z_c = self.encoder(x)
        x_hat = self.decoder(z_c)
        relative = (x - x_hat).norm(dim=1) / x.norm(dim=1)
        cosine = torch.nn.functional.cosine_similarity(x, x_hat, dim=1)
        z = torch.cat([z_c, relative[:, None], cosine[:, None]], dim=1)
        return x_hat, z, self.estimation(z)


def plain_pytorch_epoch(x: torch.Tensor, seed: int) -> float:
    """The baseline: a minimal hand-written loop of DAGMM, Adam and the Cholesky energy."""
    torch.manual_seed(seed)
    net = PlainDAGMM(x.shape[1])
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    eye = torch.eye(3)
    started = time.perf_counter()
    for idx in torch.randperm(len(x)).split(1024):
        batch = x[idx]
        x_hat, z, gamma = net(batch)
        nk = gamma.sum(0)
        mu = gamma.T @ z / nk[:, None]
        centred = z[None] - mu[:, None]
        sigma = torch.einsum("nk,kni,knj->kij", gamma, centred, centred) / nk[:, None, None]
        factor = torch.linalg.cholesky(sigma + 1e-6 * eye)
        solved = torch.linalg.solve_triangular(factor, centred.mT, upper=False)
        log_det = 2 * factor.diagonal(dim1=-2, dim2=-1).log().sum(-1)
        log_p = (nk / len(batch)).log() - 0.5 * (3 * math.log(2 * math.pi) + log_det + solved.square().sum(1).T)
        energy = -torch.logsumexp(log_p, dim=1)
        penalty = sigma.diagonal(dim1=-2, dim2=-1).reciprocal().sum()
        loss = (batch - x_hat).square().sum(1).mean() + 0.1 * energy.mean() + 0.005 * penalty
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return len(x) / (time.perf_counter() - started)


def project_epoch(x: torch.Tensor, seed: int, cfg, compile: bool = False) -> float:
    """The project's path: a fresh module and Trainer fitting one epoch, as ``Client.update`` does."""
    torch.manual_seed(seed)
    module = instantiate(cfg.model, net={"input_dim": x.shape[1]}, compile=compile)
    trainer = instantiate(cfg.trainer, max_epochs=1, logger=False)
    loader = batch_loader(x, cfg.data.batch_size, seed)
    started = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader)
    return len(x) / (time.perf_counter() - started)


def project_loss_epoch(x: torch.Tensor, seed: int, cfg) -> float:
    """The project's model, loss and optimiser in the baseline's bare loop: what the project's
    step costs without Lightning's Trainer around it."""
    torch.manual_seed(seed)
    module = instantiate(cfg.model, net={"input_dim": x.shape[1]}, compile=False)
    optimizer = module.configure_optimizers()
    started = time.perf_counter()
    for (batch,) in batch_loader(x, cfg.data.batch_size, seed):
        loss = module.loss_fn(module.net, batch, module.lambda_energy, module.lambda_cov, module.cov_jitter)
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
    return len(x) / (time.perf_counter() - started)


def bench_training_step(x: torch.Tensor, repeats: int) -> list[tuple[str, str, str, str]]:
    cfg = compose_config()
    plain_pytorch_epoch(x[:20_000], 0), project_epoch(x[:20_000], 0, cfg), project_loss_epoch(x[:20_000], 0, cfg)  # warm-up
    started = time.perf_counter()
    project_epoch(x[:5_000], 0, cfg, compile=True), project_epoch(x[:3_000], 0, cfg, compile=True)  # both shapes
    compile_seconds = time.perf_counter() - started
    plain, eager, compiled, bare = [], [], [], []
    for r in range(repeats):  # interleaved, so that a slower moment of the machine hits all four
        plain.append(plain_pytorch_epoch(x, r))
        eager.append(project_epoch(x, r, cfg))
        compiled.append(project_epoch(x, r, cfg, compile=True))
        bare.append(project_loss_epoch(x, r, cfg))
    p, q, c, b = (statistics.median(v) for v in (plain, eager, compiled, bare))
    # What model.compile=auto (the default) picks, and so the default's ratio, by run length.
    main_steps = planned_training_steps(cfg, [len(x)], cfg.fed.rounds)  # s3's training rows, 20 rounds
    auto_rows = []
    for run, steps in (("the README's main command", main_steps), ("s3 on the full data set (10x the rows)", 10 * main_steps)):
        chosen, rate = ("compiled", c) if compiles_training(cfg, steps) else ("eager", q)
        auto_rows.append((f"default (model.compile=auto), {run}", f"{steps:,} steps (compiles from {COMPILE_PAYS_AFTER_STEPS:,})", chosen, f"{rate / p:.2f}"))
    return [
        ("training step, samples/s (eager)", f"{p:,.0f} (plain PyTorch)", f"{q:,.0f} (project)", f"{q / p:.2f}"),
        ("training step, samples/s (model.compile=true)", f"{p:,.0f} (plain PyTorch)", f"{c:,.0f} (project)", f"{c / p:.2f}"),
        ("training step, samples/s, project's loss in a bare loop (no Trainer)", f"{p:,.0f} (plain PyTorch)", f"{b:,.0f} (project, bare)", f"{b / p:.2f}"),
        ("torch.compile, once per process", f"{compile_seconds:.0f} s", "(warm inductor cache)" if compile_seconds < 15 else "(cold cache)", ""),
        *auto_rows,
    ]


def bench_round(data_path: str, rounds: int, *overrides: str, accelerator: str = "cpu") -> list[tuple[str, str, str, str]]:
    """A federated run at the scenario defaults (s3), with each part of a round timed."""
    spent = {"update": 0.0, "fit": 0.0, "fedavg": 0.0, "evaluation": 0.0}
    evaluation_starts: list[float] = []

    def timed(name, fn, marks=None):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            if marks is not None:
                marks.append(started)
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started

        return wrapper

    patches = [
        (client_module.Client, "update", "update", None),
        (client_module.pl.Trainer, "fit", "fit", None),
        (Strategy, "aggregate", "fedavg", None),
        (experiment_module, "evaluate_global_model", "evaluation", evaluation_starts),
    ]
    originals = [(owner, attr, getattr(owner, attr)) for owner, attr, _, _ in patches]
    out_dir = Path(tempfile.mkdtemp())
    try:
        for owner, attr, name, marks in patches:
            setattr(owner, attr, timed(name, getattr(owner, attr), marks))
        with contextlib.redirect_stdout(io.StringIO()):  # the run's own table is not a figure here
            train(compose_config(
                f"data.train_path={data_path}", "scenario=s3", f"fed.rounds={rounds}", f"paths.output_dir={out_dir}", *overrides,
                accelerator=accelerator,
            ))
    finally:
        for owner, attr, fn in originals:
            setattr(owner, attr, fn)
        shutil.rmtree(out_dir, ignore_errors=True)
    # An evaluation ends every round; one more, on the final model, exports the detector.
    per_round = {
        "client training (Trainer.fit)": spent["fit"] / rounds,
        "Trainer and module construction, state copies": (spent["update"] - spent["fit"]) / rounds,
        "fedavg": spent["fedavg"] / rounds,
        "evaluation (mixture statistics, energies, metrics)": spent["evaluation"] / (rounds + 1),
    }
    total = sum(per_round.values())
    rows = [(f"round: {k}", f"{v:.3f} s", f"{v / total:.1%} of the round", "") for k, v in per_round.items()]
    outside = total - per_round["client training (Trainer.fit)"]
    rows.append(("round: time outside client training", f"{outside:.3f} s", f"of {total:.3f} s", f"{outside / total:.1%}"))
    sparse = outside - per_round["evaluation (mixture statistics, energies, metrics)"] * 0.9
    rows.append(("round: the same with eval.every_n_rounds=10 (from the parts)", f"{sparse:.3f} s",
                 f"of {total - outside + sparse:.3f} s", f"{sparse / (total - outside + sparse):.1%}"))  # fmt: skip
    between = [b - a for a, b in zip(evaluation_starts[:rounds], evaluation_starts[1:rounds])]
    if between:
        rows.append(("round: wall time between rounds", f"{statistics.median(between):.3f} s", "", ""))
    return rows


def bench_data(data_path: str) -> list[tuple[str, str, str, str]]:
    schema = load_schema("kdd99")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "kdd.gz"
        shutil.copy(data_path, copy)
        started = time.perf_counter()
        read_table(copy, schema)
        parse = time.perf_counter() - started
        cache = Path(tmp) / "cache"
        load_table(copy, schema, cache)  # builds the entry
        started = time.perf_counter()
        load_table(copy, schema, cache)
        cached = time.perf_counter() - started
        with open(copy, "ab") as f:  # other bytes, same records: an empty gzip member appended
            f.write(gzip.compress(b""))
        load_table(copy, schema, cache)
        entries = len(list(cache.iterdir()))
    return [
        ("data: parse the 10% file vs load the cache", f"{parse:.2f} s (parse)", f"{cached:.3f} s (cache)", f"{parse / cached:.0f}x"),
        ("data: entries after the file changed", "1 before", f"{entries} after", "invalidated" if entries == 2 else "NOT invalidated"),
    ]


# A round's parts in Flower, from flower/timings.json: the marks each ClientApp records
# (client_app.py, client_round.py) between the server's push and its receipt of the replies.
FLOWER_PARTS = (
    ("pushed", "spawned", "waiting for the SuperNode to start a ClientApp (its 3 s idle poll, SuperExec's poll)"),
    ("spawned", "loaded", "process start: interpreter, Flower's runtime, fetching the message"),
    ("loaded", "imported", "imports: torch, Lightning, scikit-learn, the project"),
    ("imported", "data", "data: the memory-mapped encoded partition, client set-up"),
    ("data", "evaluated", "evaluation: an earlier round's test, statistics"),
    ("evaluated", "trained", "training (Client.update)"),
    ("trained", "received", "reply: process exit, SuperNode's 0.5 s push poll, server's poll"),
)


def bench_flower(data_path: str, rounds: int) -> list[tuple[str, str, str, str]]:
    """The same federation (s3) in process and through Flower (SuperLink and SuperNodes on
    127.0.0.1): time per round side by side, the Flower round's parts, and whether the two
    metrics.json files are identical."""
    import importlib.util

    if importlib.util.find_spec("flwr") is None:
        return [("Flower: skipped", 'Flower is not installed: pip install -e ".[flower]"', "", "")]
    results, walls, between = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("inprocess", "flower"):
            ends: list[float] = []
            record = RoundLog.record

            def timed_record(self, *args, **kwargs):
                ends.append(time.perf_counter())
                return record(self, *args, **kwargs)

            out_dir = Path(tmp) / backend
            cfg = compose_config(f"data.train_path={data_path}", "scenario=s3", f"fed.rounds={rounds}", f"fed.backend={backend}", f"paths.output_dir={out_dir}")
            RoundLog.record = timed_record
            started = time.perf_counter()
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    results[backend] = train(cfg)
            finally:
                RoundLog.record = record
            walls[backend] = time.perf_counter() - started
            between[backend] = [b - a for a, b in zip(ends, ends[1:])]
        timings = json.loads((Path(tmp) / "flower" / "flower" / "timings.json").read_text())["messages"]
    # Steady state: the training messages after the first (each trains one round and carries
    # the evaluation parts of earlier rounds).
    steady = [m for m in timings if 2 <= m["message"] <= rounds] or timings
    intervals = [b["pushed"] - a["pushed"] for a, b in zip(timings, timings[1:]) if 2 <= a["message"] <= rounds]
    flower_round = statistics.median(intervals or [m["received"] - m["pushed"] for m in steady])
    inprocess_round = statistics.median(between["inprocess"])
    rows = [
        (f"Flower: time per round, s3 (median of rounds 2..{rounds})", f"{inprocess_round:.2f} s (in process)", f"{flower_round:.2f} s (Flower)", f"{flower_round / inprocess_round:.1f}x"),
        (f"Flower: whole run / {rounds} rounds (start-up included)", f"{walls['inprocess'] / rounds:.2f} s (in process)", f"{walls['flower'] / rounds:.2f} s (Flower)", f"{walls['flower'] / walls['inprocess']:.1f}x"),
    ]
    parts: dict[str, list[float]] = {label: [] for _, _, label in FLOWER_PARTS}
    for m in steady:
        # The client the round waited for: the one whose ClientApp finished last.
        last = max(m["clients"].values(), key=lambda c: c["trained"])
        marks = {**last, "pushed": m["pushed"], "received": m["received"]}
        for start, end, label in FLOWER_PARTS:
            parts[label].append(marks[end] - marks[start])
    for label, values in parts.items():
        v = statistics.median(values)
        rows.append((f"Flower round: {label}", f"{v:.2f} s", f"{v / flower_round:.0%} of the round", ""))
    differences = list(relative_differences(results["flower"], results["inprocess"]))
    same = "identical" if not any(differences) else f"largest relative difference {max(differences):.1e}"
    rows.append(("Flower: metrics.json against the in-process run's", "", same, ""))
    return rows


def bench_secure_aggregation(data_path: str, rounds: int) -> list[tuple[str, str, str, str]]:
    """Secure aggregation's cost: s3 over Flower with and without it (time per round, and the
    three extra exchanges' share of it), then the protocol alone in this process: one secure
    sum of vectors of the model's size against numpy's sum of the same vectors."""
    import importlib.util

    import numpy as np

    if importlib.util.find_spec("flwr") is None:
        return [("secure aggregation: skipped", 'Flower is not installed: pip install -e ".[flower]"', "", "")]
    from fdagmm.federation.secure_aggregation import secure_sum

    per_round, secagg_share = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for secure in (False, True):
            out_dir = Path(tmp) / str(secure)
            cfg = compose_config(f"data.train_path={data_path}", "scenario=s3", f"fed.rounds={rounds}", "fed.backend=flower",
                                 f"privacy.secure_aggregation={str(secure).lower()}", f"paths.output_dir={out_dir}")  # fmt: skip
            with contextlib.redirect_stdout(io.StringIO()):
                train(cfg)
            timings = json.loads((out_dir / "flower" / "timings.json").read_text())["messages"]
            steady = [(a, b) for a, b in zip(timings, timings[1:]) if 2 <= a["message"] <= rounds]
            per_round[secure] = statistics.median(b["pushed"] - a["pushed"] for a, b in steady)
            if secure:
                secagg_share = [a["secure_aggregation_s"] for a, _ in steady]
                d = sum(v.numel() for v in torch.load(out_dir / "model.pt", weights_only=True)["net_state"].values())
    rows = [
        (f"secure aggregation: Flower round, s3 (median of rounds 2..{rounds})", f"{per_round[False]:.2f} s (plain)",
         f"{per_round[True]:.2f} s (secure; its 3 extra exchanges {statistics.median(secagg_share):.2f} s)", f"{per_round[True] / per_round[False]:.2f}x"),
    ]  # fmt: skip
    rng = np.random.default_rng(0)
    for k in (2, 10, 50):
        vectors = {c: rng.normal(size=d) for c in range(k)}
        started = time.perf_counter()
        plain = np.sum(list(vectors.values()), axis=0)
        plain_s = time.perf_counter() - started
        started = time.perf_counter()
        total = secure_sum(vectors)
        secure_s = time.perf_counter() - started
        rows.append((f"secure sum of {k} clients' {d:,} weights (all steps, one process)", f"{plain_s * 1e3:.2f} ms (numpy sum)",
                     f"{secure_s:.2f} s; largest error {np.abs(total - plain).max():.1e}", f"{secure_s / plain_s:,.0f}x"))  # fmt: skip
    return rows


def relative_differences(a, b):
    """|a - b| / max(|a|, |b|) of every number in two nested payloads of one shape (inf where
    the shapes or other values differ)."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        for key in a:
            yield from relative_differences(a[key], b[key])
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for x, y in zip(a, b):
            yield from relative_differences(x, y)
    elif isinstance(a, float) and isinstance(b, float):
        yield 0.0 if a == b or (math.isnan(a) and math.isnan(b)) else abs(a - b) / max(abs(a), abs(b))
    else:
        yield 0.0 if a == b else math.inf


def bench_scale(data_path: str) -> list[tuple[str, str, str, str]]:
    """One epoch over the 10% file's records 10 times (4.9 M rows), in a fresh process."""
    result = subprocess.run([sys.executable, __file__, "--scale-child", data_path], capture_output=True, text=True)
    if result.returncode != 0:
        return [("scale: one epoch over 4.9 M rows", "failed", result.stderr.strip().splitlines()[-1], "")]
    rows, seconds, peak_mb = result.stdout.split()
    return [
        (f"scale: one epoch over {int(rows):,} rows", f"{float(seconds):.1f} s/epoch", f"peak RSS {float(peak_mb) / 1024:.2f} GB", "target < 4 GB"),
    ]


def write_flow_file(source: str | Path, path: Path, rows: int) -> int:
    """A plain CSV of ``rows`` records: ``source``'s header once, then its records repeated
    (the last copy cut short). Returns the file's size in bytes."""
    with open(source, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    with gzip.open(source, "rb") if gzipped else open(source, "rb") as f:
        header = f.readline()
        body = f.read()
    if not body.endswith(b"\n"):
        body += b"\n"
    copies, rest = divmod(rows, body.count(b"\n"))
    with open(path, "wb") as out:
        out.write(header)
        for _ in range(copies):
            out.write(body)
        out.write(b"".join(body.splitlines(keepends=True)[:rest]))
    return path.stat().st_size


def bench_flow_file(source: str, rows: int, chunk_size: int) -> list[tuple[str, str, str, str]]:
    """Reading and encoding a large flow file in chunks: the project's path (``iter_chunks``
    with the unsw_nb15 schema, its checks, then ``FeatureEncoder.transform`` of each chunk)
    against pandas' C reader (``read_csv(chunksize=...)``, no checks, no encoding; pyarrow is
    not installed). Each path runs in a fresh process, at ``rows`` and ``rows // 10`` records,
    so that its peak RSS shows whether memory follows the chunk or the file."""
    if not Path(source).is_file():
        return [("flow file: skipped", f"{source} not found (--flow-source)", "", "")]
    measured: dict[tuple[str, int], dict[str, float]] = {}
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (rows, max(rows // 10, 1)):
            path = Path(tmp) / f"flows_{n}.csv"
            sizes[n] = write_flow_file(source, path, n)
            try:
                for mode in ("project", "pandas"):
                    result = subprocess.run(
                        [sys.executable, __file__, "--flow-child", mode, str(path), str(chunk_size)], capture_output=True, text=True
                    )
                    if result.returncode != 0:
                        return [(f"flow file: {mode}, {n:,} rows", "failed", result.stderr.strip().splitlines()[-1], "")]
                    keys = ("rows", "seconds", "encode_seconds", "bad_lines", "start_mb", "peak_mb", "cpu_seconds")
                    m = measured[mode, n] = dict(zip(keys, map(float, result.stdout.split())))
                    console.print(
                        f"flow file, {mode}, {n:,} rows: {m['seconds']:.1f} s ({m['rows'] / m['seconds']:,.0f} rows/s), "
                        f"{m['cpu_seconds']:.1f} s CPU, peak RSS {m['peak_mb']:,.0f} MB ({m['start_mb']:,.0f} MB before reading)"
                    )
            finally:
                path.unlink(missing_ok=True)  # a 10 M-row file is about 1.9 GB
    small = max(rows // 10, 1)
    project, pandas_ = measured["project", rows], measured["pandas", rows]
    p_rate, q_rate = pandas_["rows"] / pandas_["seconds"], project["rows"] / project["seconds"]
    out = [
        (f"flow file: read (+ encode), {rows:,} UNSW-NB15 rows, {sizes[rows] / 1e9:.2f} GB CSV, chunks of {chunk_size:,}",
         f"{p_rate:,.0f} rows/s (pandas read_csv, no checks)", f"{q_rate:,.0f} rows/s (iter_chunks + FeatureEncoder)",
         f"{q_rate / p_rate:.2f}"),
        ("flow file: the same per CPU second (what a shared machine's load does not change)",
         f"{pandas_['rows'] / pandas_['cpu_seconds']:,.0f} rows/s (pandas)", f"{project['rows'] / project['cpu_seconds']:,.0f} rows/s (project)",
         f"{pandas_['cpu_seconds'] / project['cpu_seconds']:.2f}"),
        ("flow file: the project's time in FeatureEncoder.transform", f"{project['encode_seconds']:.1f} s",
         f"of {project['seconds']:.1f} s", f"{project['encode_seconds'] / project['seconds']:.0%}"),
    ]  # fmt: skip
    for mode, label in (("project", "project"), ("pandas", "pandas")):
        big, little = measured[mode, rows], measured[mode, small]
        out.append((
            f"flow file: peak RSS ({label}), {rows:,} / {small:,} rows",
            f"{big['peak_mb']:,.0f} / {little['peak_mb']:,.0f} MB",
            f"above the RSS before reading: {big['peak_mb'] - big['start_mb']:,.0f} / {little['peak_mb'] - little['start_mb']:,.0f} MB",
            f"{big['peak_mb'] / little['peak_mb']:.2f}",
        ))  # fmt: skip
    for (mode, n), m in measured.items():
        if m["rows"] != n or m["bad_lines"]:
            out.append((f"flow file: {mode}, {n:,} rows", f"read {m['rows']:,.0f} rows", f"{m['bad_lines']:.0f} bad lines", "UNEXPECTED"))
    return out


def flow_child(mode: str, path: str, chunk_size: int) -> None:
    """Prints the rows read, the seconds, the seconds in the encoder, the bad lines, the RSS
    before reading, the process's peak RSS (MB) and the CPU seconds of reading."""
    import pandas as pd

    start_mb = _current_rss_mb()
    rows, bad, encode_seconds = 0, 0, 0.0
    cpu_started = time.process_time()
    started = time.perf_counter()
    if mode == "project":
        schema = load_schema("unsw_nb15")
        encoder = FeatureEncoder(Scaling.of_schema(schema), schema)
        for chunk in iter_chunks(path, schema, chunk_size):
            rows += len(chunk.frame)
            bad += len(chunk.bad_lines)
            encoding = time.perf_counter()
            encoder.transform(chunk.frame)
            encode_seconds += time.perf_counter() - encoding
    else:
        for frame in pd.read_csv(path, chunksize=chunk_size):
            rows += len(frame)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(rows, seconds, encode_seconds, bad, start_mb, peak_mb, cpu_seconds)


def _current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def bench_clients(data_path: str, rounds: int) -> list[tuple[str, str, str, str]]:
    """K = 2, 10, 100 IID clients over the same records, each K in a fresh process."""
    rows = []
    for k in (2, 10, 100):
        result = subprocess.run(
            [sys.executable, __file__, "--clients-child", data_path, str(k), str(rounds)], capture_output=True, text=True
        )
        if result.returncode != 0:
            rows.append((f"clients: K={k}", "failed", result.stderr.strip().splitlines()[-1], ""))
            continue
        round_s, setup_s, peak_mb = map(float, result.stdout.split())
        rows.append((
            f"clients: K={k}, one round (same records)", f"{round_s:.2f} s/round",
            f"set-up {setup_s:.2f} s ({setup_s / round_s:.0%}), peak RSS {peak_mb / 1024:.2f} GB",
            f"{setup_s / k * 1000:.0f} ms set-up per client",
        ))  # fmt: skip
    return rows


def clients_child(data_path: str, k: int, rounds: int) -> None:
    """Prints a round's wall time (every client's update and the aggregation), the part of it
    that is per-client set-up (all but Trainer.fit) and the process's peak RSS (MB)."""
    spent = {"round": 0.0, "fit": 0.0}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started

        return wrapper

    inprocess_module.collect_updates = timed("round", inprocess_module.collect_updates)
    client_module.pl.Trainer.fit = timed("fit", client_module.pl.Trainer.fit)
    out_dir = Path(tempfile.mkdtemp())
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            train(compose_config(
                f"data.train_path={data_path}", "partition=iid", f"partition.num_clients={k}", f"fed.rounds={rounds}",
                f"eval.every_n_rounds={rounds}", f"paths.output_dir={out_dir}", "torch_threads=1",
            ))  # fmt: skip
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(spent["round"] / rounds, (spent["round"] - spent["fit"]) / rounds, peak_mb)


def scale_child(data_path: str) -> None:
    _quiet_lightning()
    cfg = compose_config(f"data.train_path={data_path}", "method=pooled", "data.cache_dir=null")
    dm = clients_data(cfg, train_clients=[0, 1])
    x = torch.cat([torch.cat([c.train_x, c.test_x]) for c in dm.clients])  # all 494,021 records
    dm.clients = []
    x = x.repeat(10, 1)
    seconds = len(x) / project_epoch(x, 0, cfg)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(len(x), seconds, peak_mb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/kddcup.data_10_percent.gz", help="the KDDCUP99 10%% file")
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed per path (median)")
    parser.add_argument("--rounds", type=int, default=4, help="federated rounds timed")
    parser.add_argument("--flower", action="store_true", help="add the Flower section (SuperLink + SuperNodes; minutes)")
    parser.add_argument("--flower-rounds", type=int, default=5, help="rounds of the Flower section's runs")
    parser.add_argument("--only-flower", action="store_true", help="the Flower section alone")
    parser.add_argument("--flow-rows", type=int, default=10_000_000, help="records of the flow-file section's large file (0: leave the section out)")
    parser.add_argument("--flow-chunk", type=int, default=DEFAULT_CHUNK, help="records per chunk in the flow-file section")
    parser.add_argument("--flow-source", default="data/UNSW_NB15_testing-set.csv.gz", help="the UNSW-NB15 file repeated into the large file")
    parser.add_argument("--only-flow", action="store_true", help="the flow-file section alone")
    parser.add_argument("--secure-aggregation", action="store_true", help="add the secure-aggregation section (Flower; minutes)")
    parser.add_argument("--only-secure-aggregation", action="store_true", help="the secure-aggregation section alone")
    parser.add_argument("--scale-child", metavar="DATA", help=argparse.SUPPRESS)
    parser.add_argument("--clients-child", nargs=3, metavar=("DATA", "K", "ROUNDS"), help=argparse.SUPPRESS)
    parser.add_argument("--flow-child", nargs=3, metavar=("MODE", "PATH", "CHUNK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    _quiet_lightning()
    if args.scale_child:
        scale_child(args.scale_child)
        return
    if args.clients_child:
        data, k, rounds = args.clients_child
        clients_child(data, int(k), int(rounds))
        return
    if args.flow_child:
        mode, path, chunk = args.flow_child
        flow_child(mode, path, int(chunk))
        return
    kdd_sections = not (args.only_flower or args.only_flow or args.only_secure_aggregation)
    if (kdd_sections or args.only_flower or args.only_secure_aggregation) and not Path(args.data).is_file():
        sys.exit(f"error: {args.data} not found: pass --data <KDDCUP99 10% file> (or run make data)")
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    table = Table(title="FDAGMM performance")
    for column in ("target", "baseline / figure", "project / detail", "ratio"):
        table.add_column(column)
    rows = []
    if kdd_sections:
        x = training_rows(args.data)
        console.print(f"training rows: {len(x):,} x {x.shape[1]}")
        rows += [
            *bench_training_step(x, args.repeats),
            *bench_round(args.data, args.rounds),
            *bench_clients(args.data, 2),
            *bench_data(args.data),
            *bench_scale(args.data),
        ]
    if (args.flower and kdd_sections) or args.only_flower:
        rows += bench_flower(args.data, args.flower_rounds)
    if (args.secure_aggregation and kdd_sections) or args.only_secure_aggregation:
        rows += bench_secure_aggregation(args.data, args.flower_rounds)
    if (args.flow_rows > 0 and kdd_sections) or args.only_flow:
        rows += bench_flow_file(args.flow_source, args.flow_rows, args.flow_chunk)
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
