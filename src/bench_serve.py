"""Load test of the scoring service on loopback, against score.py's file scoring: `make bench`.

1. Baseline, in this process: ``score_file`` (what ``score.py model=... input=FILE`` runs) on the
   UNSW-NB15 testing set, records/s.
2. The service (``src/serve.py``, its own process on 127.0.0.1), for batches of 1, 100 and
   10,000 records as JSON (and 10,000 as CSV): ``--clients`` concurrent clients, each sending
   its batches one after another for ``--seconds``; requests/s, records/s, p50/p99 latency.
3. Every answer is checked: as many scores as records sent, in order, each energy equal to the
   baseline's for that record (relative difference at most 1e-12). Lost, duplicated or
   differing records are counted and printed.

The model: ``--model RUN_DIR``, else one trained here first (one round on every 4th record of
the file, a minute). Client and server share this machine's cores; the figures say so.
Nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from fdagmm.data.reading import read_table
from fdagmm.detection.detector import Detector
from fdagmm.detection.scoring import score_file

ROOT = Path(__file__).resolve().parent.parent
console = Console(width=140)
RELATIVE_TOLERANCE = 1e-12


def train_model(data: Path, folder: Path) -> Path:
    """A UNSW-NB15 model from one federated round on every 4th record of ``data``."""
    lines = data.read_bytes() if data.suffix != ".gz" else __import__("gzip").decompress(data.read_bytes())
    rows = lines.decode().splitlines(keepends=True)
    subset = folder / "train.csv"
    subset.write_text(rows[0] + "".join(rows[1::4]))
    run_dir = folder / "run"
    subprocess.run(
        [sys.executable, "src/train.py", "data=unsw_nb15", f"data.train_path={subset}", "fed.rounds=1", "model.compile=false",
         "data.cache_dir=null", f"paths.output_dir={run_dir}"],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    return run_dir


def baseline(model: Path, data: Path, folder: Path) -> tuple[np.ndarray, float]:
    """score_file's energies for every record of ``data`` (in file order) and its records/s."""
    detector = Detector.load(model)
    out = folder / "scores.csv"
    start = time.perf_counter()
    summary = score_file(detector, data, out, detector.threshold, 100_000, "fail", show_progress=False)
    seconds = time.perf_counter() - start
    return pd.read_csv(out)["energy"].to_numpy(), summary.n_scored / seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "src/serve.py", f"model={model}", f"port={port}"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit(f"error: the service did not answer /health within 120 s: {server.stderr.read()}")


def bodies(frame: pd.DataFrame, lines: list[str], header: str, size: int, csv: bool, count: int, first: int) -> list[tuple[int, bytes]]:
    """``count`` consecutive batches of ``size`` records from record ``first`` on (wrapping), each
    with the index of its first record, serialised ahead (the clients' work is not measured)."""
    out = []
    n = len(frame)
    for b in range(count):
        start = (first + b * size) % n
        idx = np.arange(start, start + size) % n
        if csv:
            body = (header + "".join(lines[i] for i in idx)).encode()
        else:
            body = json.dumps(frame.iloc[idx].to_dict(orient="records")).encode()  # floats as repr: exact
        out.append((start, body))
    return out


def load(port: int, batches: list[list[tuple[int, bytes]]], size: int, csv: bool, seconds: float, expected: np.ndarray) -> dict:
    """Each client sends its batches in turn (round and round) for ``seconds``; every answer is checked."""
    latencies: list[float] = []
    counts = {"requests": 0, "records": 0, "lost": 0, "differing": 0, "errors": 0}
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    headers = {"content-type": "text/csv" if csv else "application/json"}

    def client(mine: list[tuple[int, bytes]]) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            i = 0
            while time.monotonic() < stop:
                first, body = mine[i % len(mine)]
                i += 1
                t0 = time.perf_counter()
                r = http.post("/score", content=body, headers=headers)
                elapsed = time.perf_counter() - t0
                if r.status_code != 200:
                    with lock:
                        counts["errors"] += 1
                    continue
                energy = np.array([s["energy"] for s in r.json()["scores"]])
                want = expected[np.arange(first, first + size) % len(expected)]
                with lock:
                    latencies.append(elapsed)
                    counts["requests"] += 1
                    counts["records"] += len(energy)
                    counts["lost"] += abs(size - len(energy))
                    if len(energy) == size:
                        counts["differing"] += int((np.abs(energy - want) > RELATIVE_TOLERANCE * np.abs(want)).sum())

    threads = [threading.Thread(target=client, args=(mine,)) for mine in batches]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = sorted(1000 * x for x in latencies)
    return {
        **counts, "wall": wall, "requests_per_s": counts["requests"] / wall, "records_per_s": counts["records"] / wall,
        "p50_ms": statistics.median(ms) if ms else float("nan"), "p99_ms": ms[min(len(ms) - 1, int(0.99 * len(ms)))] if ms else float("nan"),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/UNSW_NB15_testing-set.csv.gz", help="the UNSW-NB15 testing set (headered CSV, gzip or plain)")
    parser.add_argument("--model", help="a UNSW-NB15 run dir or model.pt (default: train one here first)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each batch size is run")
    args = parser.parse_args()
    data = Path(args.data)
    if not data.is_file():
        sys.exit(f"error: {data} not found: pass --data <UNSW-NB15 testing set> (or run make data)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plain = folder / "records.csv"  # score_file and the CSV bodies read the same text
        plain.write_bytes(__import__("gzip").decompress(data.read_bytes()) if data.suffix == ".gz" else data.read_bytes())
        model = Path(args.model) if args.model else train_model(plain, folder)
        expected, file_rate = baseline(model, plain, folder)
        detector = Detector.load(model)
        frame = read_table(plain, detector.encoder.schema).frame
        text = plain.read_text().splitlines(keepends=True)
        header, lines = text[0], text[1:]
        console.print(
            f"{os.cpu_count()} CPU cores shared by server and {args.clients} clients; {len(frame):,} records of {data.name}; "
            f"score_file (score.py on the file): {file_rate:,.0f} records/s"
        )
        port = free_port()
        server = start_server(model, port)
        gc.freeze()  # the records and bodies held here: out of the collector's passes during the timing
        table = Table(title=f"scoring service on loopback, {args.seconds:.0f} s per row")
        for column in ("clients", "batch", "body", "requests/s", "records/s", "p50 ms", "p99 ms", "lost", "differing", "errors", "records/s vs score.py"):
            table.add_column(column, justify="right")
        rows = [(1, 1, False), (args.clients, 1, False), (args.clients, 100, False), (args.clients, 10_000, False), (args.clients, 10_000, True)]
        try:
            for clients, size, csv in rows:
                per_client = max(1, min(50, 50_000 // size))
                batches = [bodies(frame, lines, header, size, csv, per_client, c * per_client * size) for c in range(clients)]
                result = load(port, batches, size, csv, args.seconds, expected)
                table.add_row(
                    str(clients), f"{size:,}", "CSV" if csv else "JSON", f"{result['requests_per_s']:,.1f}", f"{result['records_per_s']:,.0f}",
                    f"{result['p50_ms']:.2f}", f"{result['p99_ms']:.2f}", str(result["lost"]), str(result["differing"]),
                    str(result["errors"]), f"{result['records_per_s'] / file_rate:.2f}",
                )  # fmt: skip
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        console.print(table)


if __name__ == "__main__":
    main()
