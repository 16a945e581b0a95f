"""Train and evaluate one method of the FDAGMM study: `python src/train.py scenario=s3 fed.rounds=20`."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from fdagmm.cli import check_group_choices, one_line_errors
from fdagmm.config import register_configs
from fdagmm.run.experiment import train

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
register_configs()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> float | None:
    with one_line_errors(debug=cfg.debug):
        payload = train(cfg)
        return None if payload is None else payload["final"].get(cfg.optimized_metric)


if __name__ == "__main__":
    with one_line_errors(debug=False):
        check_group_choices(sys.argv[1:], CONF_DIR)
    main()
