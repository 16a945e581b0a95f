"""Train and evaluate one method of the FDAGMM study: `python src/train.py scenario=s3 fed.rounds=20`."""

import hydra
from omegaconf import DictConfig

from fdagmm.cli import one_line_errors
from fdagmm.config import register_configs
from fdagmm.experiment import train

register_configs()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    with one_line_errors(debug=cfg.debug):
        return train(cfg)["final"][cfg.optimized_metric]


if __name__ == "__main__":
    main()
