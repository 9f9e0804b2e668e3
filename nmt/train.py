"""`nmt-train`: the Hydra application. Composes conf/, validates it, trains, returns dev BLEU."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from nmt.config import Config, ConfigError, DataConfig, DecodeConfig, TrainerConfig
from nmt.config import AttentionConfig

cs = ConfigStore.instance()
cs.store(name="base_config", node=Config)
cs.store(group="data", name="base_data", node=DataConfig)
cs.store(group="trainer", name="base_trainer", node=TrainerConfig)
cs.store(group="attention", name="base_attention", node=AttentionConfig)
cs.store(group="decode", name="base_decode", node=DecodeConfig)


def _run(cfg: DictConfig) -> float:
    from nmt.data.corpus import DataError
    from nmt.checkpoint import CheckpointError
    from nmt.trainer import TrainingError, run

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    if cfg.get("resume"):  # continue in the run folder being resumed
        resume = Path(cfg.resume)
        run_dir = resume if resume.is_dir() else resume.parent.parent
    try:
        metrics = run(OmegaConf.to_container(cfg, resolve=True), run_dir)
    except (ConfigError, DataError, CheckpointError, TrainingError) as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"nmt-train: error: {err}", file=sys.stderr)
        sys.exit(2)
    return float(metrics.get("dev_bleu", 0.0))


CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def hydra_main(cfg: DictConfig) -> float:
    return _run(cfg)


def main() -> None:
    hydra_main()


if __name__ == "__main__":
    main()
