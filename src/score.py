"""Score connection records with a trained detector: `python src/score.py model=<run dir> input=<file>`.

The file is read with the schema of the data set the model was trained on (model.pt holds it).

Other arguments (key=value): output, threshold, anomaly_ratio, on_bad_line=fail|skip,
drop_columns=[...], chunk_size, debug; see fdagmm.config.ScoreConfig.
"""

import sys
import time
from pathlib import Path

from rich.console import Console

from fdagmm.cli import one_line_errors
from fdagmm.config import score_config
from fdagmm.detection.detector import Detector
from fdagmm.detection.scoring import print_summary, score_file
from fdagmm.serialization import check_writable_dir


def main(args: list[str]) -> None:
    with one_line_errors(debug="debug=true" in args):
        cfg = score_config(args)
        output = Path(cfg.output or f"outputs/scores/{Path(cfg.input).name}_{time.strftime('%Y-%m-%d_%H-%M-%S')}.csv")
        check_writable_dir("output", output.parent)
        detector = Detector.load(cfg.model)
        if cfg.threshold is not None:
            threshold = cfg.threshold
        elif cfg.anomaly_ratio is not None:
            threshold = detector.threshold_for(cfg.anomaly_ratio)
        else:
            threshold = detector.threshold
        summary = score_file(
            detector, Path(cfg.input), output, threshold, cfg.chunk_size, cfg.on_bad_line, drop_columns=list(cfg.drop_columns)
        )
        print_summary(summary, output, Console(), detector.encoder.schema.anomaly)


if __name__ == "__main__":
    main(sys.argv[1:])
