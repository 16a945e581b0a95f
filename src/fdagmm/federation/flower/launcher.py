"""``fed.backend=flower`` on one machine: a SuperLink and one SuperNode per client on
127.0.0.1, each given its records (with ``partition=files`` the client's own files, else a
partition file written from the data set), ``flwr run``, and checks that the run really
finished.

The commands are those of docs/deployment.md, with every address on loopback. Everything
Flower writes (its config, logs, database) stays under the run dir: ``FLWR_HOME`` points
there, never at the user's ``~/.flwr``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from fdagmm.data.dataset import ConnectionDataset
from fdagmm.data.partition import FilesPartition, Partitioner, SiteFiles
from fdagmm.detection.detector import MODEL_FILE
from fdagmm.errors import ConfigError
from fdagmm.federation.flower.partitions import ENCODED_DIR, write_partitions
from fdagmm.federation.rounds import FederationError

log = logging.getLogger(__name__)

APP_DIR = Path(__file__).resolve().parents[3] / "flower_app"  # src/flower_app
CONNECTION = "local"  # the SuperLink connection's name in $FLWR_HOME/config.toml
# The ServerApp's one-line reason for a failed run, under <output-dir>/flower/.
ERROR_FILE = "server_error.txt"
# No telemetry and no update check: both would call out to the internet at every start.
QUIET_ENV = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1"}
# Each SuperExec asks for a new task every 0.2 s rather than every second (the default): a
# message's ClientApp starts 0.4 s sooner on average. Measured on 2 cores, an idle local
# federation (6 processes) then uses 0.10 CPU s per second against 0.03; at 0.1 s, 0.20.
FAST_ENV = {"FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.2"}


def run_flower(cfg: DictConfig, partitioner: Partitioner | FilesPartition, dataset: ConnectionDataset) -> dict[str, Any] | None:
    """Run the configured federation through Flower, ``partitioner``'s clients each a
    SuperNode; returns metrics.json's payload (None with ``fed.flower.prepare_only``)."""
    if importlib.util.find_spec("flwr") is None:
        raise ConfigError('fed.backend=flower needs Flower: pip install -e ".[flower]"')
    output_dir = Path(cfg.paths.output_dir).resolve()
    flower_dir = output_dir / "flower"
    flower_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(partitioner, FilesPartition):  # each SuperNode reads its organisation's files; nothing is written
        paths, node_configs = [], [site_node_config(k, site) for k, site in enumerate(partitioner.sites)]
    else:
        paths, counts = write_partitions(dataset, partitioner, cfg.seed, flower_dir / "partitions")
        node_configs = [f'data-path="{path}"' for path in paths]
        log.info("partition files: %s", counts)
    run_config = write_run_config(cfg, flower_dir / "run_config.toml", output_dir)
    if cfg.fed.flower.prepare_only:
        log.info("wrote %s; start the federation as in docs/deployment.md, each SuperNode with its --node-config:", ", ".join(map(str, [*paths, run_config])))
        for k, node_config in enumerate(node_configs):
            log.info("client %d: --node-config '%s output-dir=\"<its output dir>\"'", k, node_config)
        return None
    try:
        with LocalFederation(flower_dir, node_configs, output_dir, cfg.fed.flower.timeout_s) as federation:
            federation.run(run_config, deadline_s=cfg.fed.flower.timeout_s * (cfg.fed.rounds + 1))
    finally:
        # The stand-ins for the organisations' data (hundreds of MB on the 10% file) and their
        # encoded copies are rewritten by any later run; keep only what the run produced.
        for path in paths:
            path.unlink(missing_ok=True)
        shutil.rmtree(output_dir / ENCODED_DIR, ignore_errors=True)
    return _checked_results(output_dir, cfg)


def site_node_config(client_id: int, site: SiteFiles) -> str:
    """The ``--node-config`` entries that give a SuperNode one organisation's own files."""
    config = f'client-id={client_id} data-path="{",".join(str(p.resolve()) for p in site.train_paths)}"'
    if site.test_paths:
        config += f' test-path="{",".join(str(p.resolve()) for p in site.test_paths)}"'
    return config


def write_run_config(cfg: DictConfig, path: Path, output_dir: Path) -> Path:
    """The run_config.toml that ``flwr run --run-config`` passes to both apps."""
    from fdagmm.federation.flower.records import CONFIG_KEY, OUTPUT_DIR_KEY, config_to_json  # needs flwr

    # JSON strings are valid TOML basic strings.
    path.write_text(f"{CONFIG_KEY} = {json.dumps(config_to_json(cfg))}\n{OUTPUT_DIR_KEY} = {json.dumps(str(output_dir))}\n")
    return path


def _checked_results(output_dir: Path, cfg: DictConfig) -> dict[str, Any]:
    """metrics.json of a completed run, after checking that the run wrote what it should."""
    expected = [output_dir / "metrics.json", output_dir / MODEL_FILE, output_dir / "tensorboard" / "server"]
    expected.append(output_dir / "tensorboard" / f"client{cfg.method.eval_client}")
    missing = [str(p) for p in expected if not p.exists()]
    if missing:
        raise FederationError(f"the Flower run completed without writing {', '.join(missing)}: see {output_dir / 'flower' / 'logs'}")
    payload = json.loads((output_dir / "metrics.json").read_text())
    if len(payload["history"]) != cfg.fed.rounds or not all(math.isfinite(v) for v in payload["final"].values()):
        raise FederationError(f"{output_dir / 'metrics.json'} has {len(payload['history'])} of {cfg.fed.rounds} rounds or non-finite final metrics")
    return payload


class RoundLines:
    """Forwards the ServerApp's round lines from the streamed run log to this process's log."""

    PATTERN = re.compile(rb"\]\[INFO\] (round \d+/\d+ .*)$")

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0

    def forward(self) -> None:
        if not self.path.is_file():
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            lines = f.read().split(b"\n")
        self.offset += sum(len(line) + 1 for line in lines[:-1])  # a partial last line waits
        for line in lines[:-1]:
            if match := self.PATTERN.search(line.rstrip(b"\r")):
                log.info("server: %s", match.group(1).decode(errors="replace"))


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 right now."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class LocalFederation:
    """A SuperLink and one SuperNode per partition file, as child processes on 127.0.0.1.

    Each process leads its own process group; leaving the ``with`` block stops every group
    (SIGTERM, then SIGKILL), so no ServerApp or ClientApp outlives the run.
    """

    def __init__(self, flower_dir: Path, node_configs: list[str], output_dir: Path, timeout_s: float):
        self.node_configs = node_configs  # per client, where its records are
        self.output_dir = output_dir
        self.timeout_s = timeout_s
        self.logs = flower_dir / "logs"
        self.bin = Path(sys.executable).parent
        self.env = {**os.environ, **QUIET_ENV, **FAST_ENV, "FLWR_HOME": str(flower_dir / "home")}
        # Flower's processes start their helpers by name (flower-superexec, flwr-serverapp,
        # flwr-clientapp): find them beside this interpreter even when its environment is
        # not activated (a cron job, an IDE, a systemd unit calling .venv/bin/python).
        self.env["PATH"] = os.pathsep.join([str(self.bin), *filter(None, [os.environ.get("PATH")])])
        # The SuperNodes' ClientApps train at the same time on this one machine: torch's
        # default of a thread per core in each would oversubscribe the cores (its threads spin
        # while they wait). Share the cores out unless the user set a thread count
        # (torch_threads, which each process applies itself, or OMP_NUM_THREADS).
        self.env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // len(node_configs))))
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> LocalFederation:
        # A SIGTERM (a job scheduler, `kill`) unwinds through __exit__ like Ctrl-C does; only
        # the main thread may set a handler (a launcher may run the job in another).
        self._sigterm = None
        if threading.current_thread() is threading.main_thread():
            self._sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        self.logs.mkdir(parents=True, exist_ok=True)
        link_port, *node_ports = free_ports(1 + len(self.node_configs))
        home = Path(self.env["FLWR_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n'
            f'[superlink.{CONNECTION}]\naddress = "127.0.0.1:{link_port}"\ninsecure = true\n'
        )
        try:
            self._start(
                "superlink",
                ["flower-superlink", "--insecure", "--disable-runtime-dependency-installation",
                 "--host", "127.0.0.1", "--port", str(link_port)],
            )
            self._wait_for_port(link_port, "superlink")
            for k, (records, port) in enumerate(zip(self.node_configs, node_ports)):
                node_config = f'{records} output-dir="{self.output_dir}"'
                self._start(
                    f"supernode{k}",
                    ["flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{link_port}",
                     "--node-config", node_config, "--host", "127.0.0.1", "--port", str(port),
                     "--max-wait-time", str(self.timeout_s)],
                )
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._sigterm is not None:
            signal.signal(signal.SIGTERM, self._sigterm)

    def _start(self, name: str, argv: list[str]) -> None:
        argv = [str(self.bin / argv[0]), *argv[1:]]
        with open(self.logs / f"{name}.log", "wb") as out:
            self.processes.append(
                subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
            )
        log.info("started %s (pid %d): %s", name, self.processes[-1].pid, " ".join(argv[1:]))

    def _wait_for_port(self, port: int, name: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.processes[-1].poll() is not None:
                raise FederationError(f"{name} exited at start-up: see {self.logs / name}.log")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.2)
        raise FederationError(f"{name} did not listen on 127.0.0.1:{port} within {self.timeout_s} s: see {self.logs / name}.log")

    def flwr(self, *args: str, timeout_s: float) -> str:
        """A ``flwr`` CLI command against this federation's SuperLink; its stdout."""
        done = subprocess.run(
            [str(self.bin / "flwr"), *args], env=self.env, capture_output=True, text=True, timeout=timeout_s
        )
        if done.returncode != 0:
            last_line = ((done.stderr or done.stdout).strip().splitlines() or ["no output"])[-1]
            raise FederationError(f"flwr {args[0]} failed (exit {done.returncode}): {last_line}")
        return done.stdout

    def run(self, run_config: Path, deadline_s: float) -> None:
        """``flwr run`` the app, wait for the run to finish, and raise unless it completed.

        ``flwr run`` exits 0 whatever the ServerApp does, so the run's status decides.
        """
        submitted = json.loads(self.flwr("run", str(APP_DIR), CONNECTION, "--run-config", str(run_config), "--format", "json", timeout_s=self.timeout_s))
        if not submitted.get("success"):  # flwr run exits 0 on some failures; its JSON says so
            reason = (str(submitted.get("error-message", "")).strip().splitlines() or ["no reason given"])[-1]
            raise FederationError(f"flwr run failed: {reason}")
        run_id = submitted["run-id"]
        log.info("Flower run %s submitted; SuperLink and SuperNode logs in %s", run_id, self.logs)
        deadline = time.monotonic() + deadline_s
        with open(self.logs / "run.log", "wb") as out:
            streamer = subprocess.Popen(
                [str(self.bin / "flwr"), "log", str(run_id), CONNECTION, "--stream"],
                stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
            )
        self.processes.append(streamer)
        progress = RoundLines(self.logs / "run.log")
        # `flwr log --stream` ends when the run finishes: wait for that rather than asking
        # `flwr list` every second (each call is a Python process costing ~2 s of CPU, taken
        # from the federation's own processes on a small machine).
        while (status := "running" if streamer.poll() is None else self.status(run_id)).split(":")[0] != "finished":
            progress.forward()
            if time.monotonic() > deadline:
                raise FederationError(f"Flower run {run_id} still {status} after {deadline_s:.0f} s: see {self.logs}")
            for p in self.processes[:-1]:
                if p.poll() is not None:
                    raise FederationError(f"a Flower process exited during run {run_id}: see {self.logs}")
            time.sleep(0.2 if streamer.poll() is None else 5.0)  # 5 s: a stream that ended early
        progress.forward()
        if status != "finished:completed":
            error = self.output_dir / "flower" / ERROR_FILE
            why = error.read_text().strip() if error.is_file() else f"see {self.logs / 'run.log'}"
            raise FederationError(f"Flower run {run_id} {status}: {why}")

    def status(self, run_id: int) -> str:
        listed = json.loads(self.flwr("list", CONNECTION, "--run-id", str(run_id), "--format", "json", timeout_s=self.timeout_s))
        return listed["runs"][0]["status"]

    def stop(self) -> None:
        """SIGTERM every process group started here, then after 10 s SIGKILL whatever still
        carries this federation's FLWR_HOME: Flower's own helpers (superexec, the apps) may
        run in process groups of their own."""
        for p in self.processes:
            _signal_group(p.pid, signal.SIGTERM)
        for p in self.processes:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 10
        while (left := flower_processes(Path(self.env["FLWR_HOME"]))) and time.monotonic() < deadline:
            for pid in left:
                _signal_group(pid, signal.SIGKILL)
            time.sleep(0.2)
        for p in self.processes:
            p.wait()
        self.processes.clear()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        try:
            os.kill(pid, sig)  # a helper whose group leader is gone
        except ProcessLookupError:
            pass


def flower_processes(flower_home: Path) -> list[int]:
    """Live processes whose environment sets FLWR_HOME to ``flower_home``: everything a
    federation started, down to the ClientApps (Linux: read from /proc)."""
    marker = f"FLWR_HOME={flower_home}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:  # gone meanwhile, or not ours
            continue
    return pids
