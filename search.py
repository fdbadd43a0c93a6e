"""Search a trained supernet: `python search.py strategy=linas hardware=cpu`."""

import hydra
from omegaconf import DictConfig

from supernet.runtime import main_cli, run_cli


@hydra.main(version_base="1.3", config_path="conf", config_name="search")
def main(cfg: DictConfig) -> None:
    from search.pipeline import run

    run_cli(run, cfg)


if __name__ == "__main__":
    main_cli(main)
