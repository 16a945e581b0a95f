"""Serve a trained detector over HTTP: `python src/serve.py model=<run dir> host=127.0.0.1 port=8000`.

Endpoints (fdagmm.detection.service): GET /health, GET /model, POST /score (a JSON list of
records, or CSV with Content-Type: text/csv). The model is loaded once, before the server
listens; SIGTERM or Ctrl-C stops accepting connections, lets the requests in flight finish
(up to drain_s seconds) and exits. Needs the serve extra: pip install -e ".[serve]".

Options (key=value): threshold, anomaly_ratio, max_body_mb, drain_s, debug (docs/scoring.md).
"""

import sys

from fdagmm.cli import key_value_help, one_line_errors
from fdagmm.config import ServeConfig, serve_config
from fdagmm.detection.detector import Detector
from fdagmm.errors import ConfigError


def main(args: list[str]) -> None:
    if args[:1] in (["-h"], ["--help"]):
        print(key_value_help(__doc__, ServeConfig))
        return
    with one_line_errors(debug="debug=true" in args):
        cfg = serve_config(args)
        try:
            import uvicorn

            from fdagmm.detection.service import create_app
        except ImportError as e:
            raise ConfigError(f"the scoring service needs the serve extra ({e.name} is missing): pip install -e \".[serve]\"") from e
        detector = Detector.load(cfg.model)
        threshold = detector.chosen_threshold(cfg.threshold, cfg.anomaly_ratio)
        app = create_app(detector, threshold, str(cfg.model), int(cfg.max_body_mb * 2**20))
        print(f"serving {detector.dataset} model {cfg.model} (threshold {threshold:.6g}) on http://{cfg.host}:{cfg.port}", file=sys.stderr)
        uvicorn.run(app, host=cfg.host, port=cfg.port, timeout_graceful_shutdown=cfg.drain_s, log_level="warning" if not cfg.debug else "info")


if __name__ == "__main__":
    main(sys.argv[1:])
