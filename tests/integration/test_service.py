"""The scoring service (src/serve.py) as a client meets it: a real server on 127.0.0.1, started
and stopped here, answering over HTTP with the energies that score.py gives the same records;
bad requests refused with a 4xx and one message; concurrent requests; SIGTERM draining.

Skipped without the serve extra (FastAPI, uvicorn) and httpx, unless FDAGMM_REQUIRE_SERVE=1
(set by CI, which installs them)."""

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

if any(importlib.util.find_spec(m) is None for m in ("fastapi", "uvicorn", "orjson", "httpx")) and os.environ.get("FDAGMM_REQUIRE_SERVE") != "1":
    pytest.skip('the scoring service needs the serve extra: pip install -e ".[dev,serve]"', allow_module_level=True)

import httpx  # noqa: E402
from helpers.energies import assert_same_energies  # noqa: E402

from fdagmm.detection.detector import Detector  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    def __init__(self, run_dir: Path, *args: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "src/serve.py", f"model={run_dir}", f"port={self.port}", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def __enter__(self):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stderr.read()
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("the service did not answer /health within 120 s")

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.process.wait(timeout=TIMEOUT_S)
        finally:
            self.process.kill()


@pytest.fixture(scope="module")
def server(unsw_scoring_run):
    with _Server(unsw_scoring_run[0], "max_body_mb=1") as running:
        yield running


def _records(header: str, lines: list[str]) -> list[dict]:
    """Records as a client would send them: one object per record, numbers as JSON numbers."""
    frame = pd.read_csv(pd.io.common.StringIO(header + "".join(lines)), dtype={"proto": str, "service": str, "state": str})
    return json.loads(json.dumps(frame.to_dict(orient="records")))


def test_health_and_model_describe_the_loaded_model(unsw_scoring_run, server):
    run_dir = unsw_scoring_run[0]
    detector = Detector.load(run_dir)
    health = httpx.get(f"{server.url}/health").json()
    assert health == {"status": "ok", "dataset": "unsw_nb15", "threshold": detector.threshold}
    model = httpx.get(f"{server.url}/model").json()
    assert model["columns"] == list(detector.encoder.schema.features) and model["label"] == "label"
    assert model["training_run"] == str(run_dir) and model["max_body_bytes"] == 2**20


def test_score_json_and_csv_give_score_py_energies(unsw_scoring_run, server):
    _, header, records, expected = unsw_scoring_run
    answer = httpx.post(f"{server.url}/score", json=_records(header, records[:200])).json()
    assert answer["n"] == 200 and len(answer["scores"]) == 200
    assert_same_energies([s["energy"] for s in answer["scores"]], expected["energy"][:200])
    assert [int(s["is_anomaly"]) for s in answer["scores"]] == expected["is_anomaly"][:200].tolist()
    body = header + "".join(records[200:400])
    answer = httpx.post(f"{server.url}/score", content=body, headers={"content-type": "text/csv"}).json()
    assert_same_energies([s["energy"] for s in answer["scores"]], expected["energy"][200:400])
    headerless = "".join(records[400:410])  # a headered data set's lines without the header
    answer = httpx.post(f"{server.url}/score", content=headerless, headers={"content-type": "text/csv"}).json()
    assert_same_energies([s["energy"] for s in answer["scores"]], expected["energy"][400:410])


def test_a_value_far_out_of_range_is_flagged_and_named(unsw_scoring_run, server):
    _, header, records, _ = unsw_scoring_run
    record = _records(header, records[:1])[0]
    detector = Detector.load(unsw_scoring_run[0])
    # The first feature a huge value puts out of range (a log-scaled one never is).
    probe = pd.DataFrame([{**record, **{c: 1e300 for c in detector.encoder.numeric_features}}])
    feature = detector.encoder.numeric_features[int(np.argmax(detector.encoder.out_of_range(probe)[0]))]
    record[feature] = 1e300
    score = httpx.post(f"{server.url}/score", json=[record]).json()["scores"][0]
    assert score["is_anomaly"] is True and score["out_of_range"] == [feature] and np.isfinite(score["energy"])


@pytest.mark.parametrize(
    "mutate, status, message",
    [
        (lambda r: r.pop("dur"), 422, "records[1] lacks the column dur"),
        (lambda r: r.update(bogus=1), 422, "columns the unsw_nb15 schema does not know: ['bogus']"),
        (lambda r: r.update(dur="fast"), 422, "records[1], column dur: 'fast' is not a number; nothing was scored"),
        (lambda r: r.update(dur=True), 422, "records[1], column dur: 'True' is not a number"),
        (lambda r: r.update(proto=["tcp"]), 422, "records[1], column proto: ['tcp'] is neither text nor a number"),
        (lambda r: r.update(dur=None), 422, "records[1], column dur: missing or non-finite value"),
        (lambda r: r.update(proto=""), 422, "records[1], column proto: missing value"),
    ],
)
def test_a_bad_record_is_a_422_naming_it_and_nothing_is_scored(unsw_scoring_run, server, mutate, status, message):
    _, header, records, _ = unsw_scoring_run
    body = _records(header, records[:3])
    mutate(body[1])
    response = httpx.post(f"{server.url}/score", json=body)
    assert response.status_code == status and message in response.json()["detail"], response.text


@pytest.mark.parametrize(
    "content, content_type, status, message",
    [
        (b"{not json", "application/json", 400, "the body is not JSON"),
        (b"\xff\xfe\x00", "application/json", 400, "the body is not UTF-8 text"),
        (b"[]", "application/json", 422, "non-empty JSON list of records"),
        (b'{"dur": 1}', "application/json", 422, "non-empty JSON list of records"),
        (b"[1, 2]", "application/json", 422, "records[0] is not an object"),
        (b"a,b\n", "text/csv", 422, "none of the first 1 lines has the 45 or 43"),
        (b"\n\n", "text/csv", 422, "the body holds no records"),
        (b"x" * (2**20 + 1), "text/csv", 413, "over this service's limit of 1,048,576 bytes"),
    ],
)
def test_a_bad_body_is_a_4xx_with_one_message(server, content, content_type, status, message):
    response = httpx.post(f"{server.url}/score", content=content, headers={"content-type": content_type})
    assert response.status_code == status and message in response.json()["detail"], response.text


def test_a_body_sent_in_chunks_is_refused_once_over_the_limit(server):
    def chunks():  # no Content-Length: the size is known only as the body arrives
        for _ in range(40):
            yield b"x" * 2**15

    response = httpx.post(f"{server.url}/score", content=chunks(), headers={"content-type": "text/csv"})
    assert response.status_code == 413
    assert response.json()["detail"] == "the body is over this service's limit of 1,048,576 bytes: send fewer records per request"


def test_a_malformed_csv_line_is_named_by_its_number(unsw_scoring_run, server):
    _, header, records, _ = unsw_scoring_run
    body = header + records[0] + "1,2\n" + records[1]
    response = httpx.post(f"{server.url}/score", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 422
    assert response.json()["detail"] == "line 3: 2 fields instead of 45; nothing was scored"


def test_concurrent_requests_each_get_their_own_records_scores(unsw_scoring_run, server):
    _, header, records, expected = unsw_scoring_run
    results: dict[int, list[float]] = {}

    def client(k: int) -> None:
        with httpx.Client(base_url=server.url, timeout=TIMEOUT_S) as http:
            for repeat in range(5):
                start = 50 * k + repeat
                answer = http.post("/score", json=_records(header, records[start : start + 20])).json()
                results[(k, repeat)] = [s["energy"] for s in answer["scores"]]

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT_S)
    assert len(results) == 40
    for (k, repeat), energy in results.items():
        start = 50 * k + repeat
        assert_same_energies(energy, expected["energy"][start : start + 20])


def test_sigterm_lets_a_request_in_flight_finish_then_exits(unsw_scoring_run):
    """The body of a request is still arriving when SIGTERM comes: it is answered in full, and
    the server then exits."""
    _, header, records, expected = unsw_scoring_run
    body = (header + "".join(records)).encode()
    sent_half = threading.Event()
    resume = threading.Event()

    def slow_body():
        yield body[: len(body) // 2]
        sent_half.set()
        resume.wait(TIMEOUT_S)
        yield body[len(body) // 2 :]

    answer: dict = {}

    def client(url: str) -> None:
        response = httpx.post(f"{url}/score", content=slow_body(), headers={"content-type": "text/csv"}, timeout=TIMEOUT_S)
        answer["status"], answer["json"] = response.status_code, response.json()

    with _Server(unsw_scoring_run[0]) as running:
        thread = threading.Thread(target=client, args=(running.url,))
        thread.start()
        assert sent_half.wait(TIMEOUT_S)
        time.sleep(0.2)
        running.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert running.process.poll() is None  # draining
        resume.set()
        thread.join(TIMEOUT_S)
        # uvicorn, once drained, ends by the signal it caught, as a process without handlers would.
        assert running.process.wait(timeout=TIMEOUT_S) == -signal.SIGTERM
    assert answer["status"] == 200 and answer["json"]["n"] == len(records)
    assert_same_energies([s["energy"] for s in answer["json"]["scores"]], expected["energy"])
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{running.url}/health", timeout=2)


def test_serve_refuses_a_missing_model_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "src/serve.py", f"model={tmp_path / 'none'}"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: no model at"), lines
