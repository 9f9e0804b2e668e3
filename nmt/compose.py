"""The run configuration conf/ plus overrides describe, composed as `nmt-train` composes it.

`nmt-train` gets its configuration from `@hydra.main`; programs that build one without starting
a Hydra job (the benchmark, the demo, tests) call `compose_config`. Both see the same conf/
folder and the same structured schemas, registered here once with Hydra's ConfigStore.
"""

from __future__ import annotations

from pathlib import Path

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def register_configs() -> None:
    """Register the structured configs that conf/'s `defaults: - base_*` entries name.

    Idempotent: storing a node again replaces it with the same schema.
    """
    from hydra.core.config_store import ConfigStore

    from nmt.config import (
        AttentionConfig,
        Config,
        DataConfig,
        DecodeConfig,
        RNNConfig,
        TrainerConfig,
        TransformerConfig,
    )

    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="data", name="base_data", node=DataConfig)
    cs.store(group="trainer", name="base_trainer", node=TrainerConfig)
    cs.store(group="attention", name="base_attention", node=AttentionConfig)
    cs.store(group="decode", name="base_decode", node=DecodeConfig)
    cs.store(group="model", name="base_rnn", node=RNNConfig)
    cs.store(group="model", name="base_transformer", node=TransformerConfig)


def compose_config(overrides: list[str]) -> dict:
    """conf/config.yaml with Hydra `overrides` applied, interpolations resolved, as plain dicts.

    Not validated: pass it to `nmt.config.to_dataclass` (or `nmt.trainer.run`, which does).
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    return OmegaConf.to_container(cfg, resolve=True)
