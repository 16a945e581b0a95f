"""The scoring service: a trained detector behind HTTP (FastAPI), loaded once.

- ``GET /health``: the model is loaded; its data set and threshold.
- ``GET /model``: what the model expects and how it was made: data set, columns, label,
  threshold, training run.
- ``POST /score``: a JSON list of records (objects keyed by column) or a CSV body
  (``Content-Type: text/csv``, lines as in a file of the data set, a header optional when its
  files have one); the answer holds, per record and in order, its energy, its flag and the
  features far outside the scaling range (``score_records``, as ``score.py`` reports them).

Every record sent gets exactly one score, or the request none: a record that cannot be scored
(a missing column, a value of the wrong type, a missing number) is a 422 naming it; a body
that is not JSON or not UTF-8 a 400, one too large a 413. Parsing and scoring run in the
server's thread pool, so that slow requests do not hold the others.
"""

from __future__ import annotations

import operator

import orjson
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from fdagmm.data.reading import check_every_record_kept, checked_records, stream_parser, where
from fdagmm.detection.detector import Detector
from fdagmm.detection.scoring import score_records
from fdagmm.errors import DataError, first_line

CSV_TYPES = ("text/csv", "text/plain")


class BadRequest(Exception):
    """A request the service refuses, with its HTTP status and the one-line reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def create_app(detector: Detector, threshold: float, model_path: str, max_body_bytes: int) -> FastAPI:
    schema = detector.encoder.schema
    scorer = BodyScorer(detector, threshold)
    app = FastAPI(title="FDAGMM scoring service", summary=f"scores {detector.dataset} records with {model_path}")

    @app.exception_handler(BadRequest)
    async def refused(request: Request, e: BadRequest) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=e.status)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "dataset": detector.dataset, "threshold": threshold}

    @app.get("/model")
    def model() -> dict:
        return {
            "dataset": detector.dataset,
            "columns": list(schema.features),
            "numeric_columns": schema.numeric_features,
            "categorical_columns": schema.categorical_features,
            "label": schema.label,
            "threshold": threshold,
            "anomaly_ratio": detector.anomaly_ratio,
            "model_threshold": detector.threshold,
            "training_run": model_path,
            "max_body_bytes": max_body_bytes,
        }

    @app.post("/score")
    async def score(request: Request) -> Response:
        body = await _body(request, max_body_bytes)
        csv = request.headers.get("content-type", "application/json").split(";")[0].strip().lower() in CSV_TYPES
        answer = await run_in_threadpool(scorer.answer, body, csv)
        return Response(answer, media_type="application/json")

    return app


async def _body(request: Request, limit: int) -> bytes:
    """The request's body, refused (413) as soon as it is longer than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"the body is {int(declared):,} bytes, over this service's limit of {limit:,} bytes: send fewer records per request")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"the body is over this service's limit of {limit:,} bytes: send fewer records per request")
        chunks.append(chunk)
    return b"".join(chunks)


class BodyScorer:
    """Scores ``POST /score`` bodies with one detector and threshold (safe from several threads:
    scoring reads the model and never changes it)."""

    def __init__(self, detector: Detector, threshold: float):
        self.detector = detector
        self.threshold = threshold
        self.schema = detector.encoder.schema
        self.known = {*self.schema.features, *self.schema.info_columns, *self.schema.drop}

    def answer(self, body: bytes, csv: bool) -> bytes:
        """The JSON answer: ``{"threshold", "n", "scores": [{"energy", "is_anomaly", "out_of_range"}]}``."""
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise BadRequest(400, f"the body is not UTF-8 text ({first_line(e)})") from e
        frame = self._csv_records(text) if csv else self._json_records(text)
        scored = score_records(self.detector, frame, self.threshold)
        scores = [
            {"energy": e, "is_anomaly": f, "out_of_range": names}
            for e, f, names in zip(scored.energy.tolist(), scored.flagged.tolist(), scored.out_of_range)
        ]
        return orjson.dumps({"threshold": self.threshold, "n": len(scores), "scores": scores})

    def _csv_records(self, text: str) -> pd.DataFrame:
        """The body's lines as checked records; every line that is not blank must be one."""
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if not any(line.strip() for line in lines):
            raise BadRequest(422, "the body holds no records")
        try:
            parser, header = stream_parser(lines, self.schema, "the body")
        except DataError as e:
            raise BadRequest(422, str(e)) from e
        first = 2 if header else 1
        records = lines[first - 1 :]
        chunk = parser.parse(records, first)
        try:
            check_every_record_kept(chunk, [n for n, line in enumerate(records, start=first) if line.strip()], where)
        except DataError as e:
            raise BadRequest(422, str(e)) from e
        return chunk.frame

    def _json_records(self, text: str) -> pd.DataFrame:
        """The body's records (a JSON list of objects) as checked records."""
        try:
            records = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            raise BadRequest(400, f"the body is not JSON ({e}); send a JSON list of records, or CSV with Content-Type: text/csv") from e
        if not isinstance(records, list) or not records:
            raise BadRequest(422, "the body must be a non-empty JSON list of records, objects with the columns that GET /model lists")
        not_objects = [i for i, r in enumerate(records) if not isinstance(r, dict)]
        if not_objects:
            raise BadRequest(422, f"records[{not_objects[0]}] is not an object of columns and values; nothing was scored")
        keys = set().union(*records)
        unknown = sorted(keys - self.known)
        if unknown:
            raise BadRequest(422, f"columns the {self.schema.name} schema does not know: {unknown} (GET /model lists its columns)")
        missing = [c for c in self.schema.features if c not in keys]
        if missing:
            raise BadRequest(422, f"the records lack the columns {missing} (GET /model lists the columns every record needs)")
        layout = [c for c in self.schema.columns if c in keys]
        try:  # records to columns in C: a record's values in layout order, then transposed
            rows = list(map(operator.itemgetter(*layout), records)) if len(layout) > 1 else [(r[layout[0]],) for r in records]
        except KeyError:
            at, column = next((i, c) for i, r in enumerate(records) for c in layout if c not in r)
            raise BadRequest(422, f"records[{at}] lacks the column {column} (GET /model lists the columns every record needs)") from None
        try:
            return checked_records(dict(zip(layout, zip(*rows))), self.schema, "records")
        except DataError as e:
            raise BadRequest(422, str(e)) from e


