"""Train a weight-sharing supernet: `python train.py supernet=mobilenetv3 data=digits`."""

import hydra
from omegaconf import DictConfig

from supernet.runtime import main_cli, run_cli


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from supernet.pipeline import train

    metrics = run_cli(train, cfg)
    return metrics.get(cfg.get("optimized_metric") or "", None)


if __name__ == "__main__":
    main_cli(main)
