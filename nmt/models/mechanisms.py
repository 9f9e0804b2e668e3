"""The mechanism table: `attention.type` -> the class that implements it.

Each class declares what the rest of the code needs (its decoder layout `query`, its source
limit `source_positions`, its cost `macs`, how to build it `from_config`), so the decoder, the
source-length limit, the benchmark's FLOP count and the tests read it from here and nothing
compares a mechanism's name. A new mechanism: one class, `register(cls)` (or an entry below),
one conf/attention/NAME.yaml and its tests.
"""

from __future__ import annotations

from nmt.config import AttentionConfig, ConfigError
from nmt.models.attention import (
    Attention,
    BahdanauAttention,
    LuongConcatAttention,
    LuongDotAttention,
    LuongGeneralAttention,
    LuongLocationAttention,
)
from nmt.models.hard_attention import HardAttention
from nmt.models.local_attention import LocalMAttention, LocalPAttention

MECHANISMS: dict[str, type[Attention]] = {
    cls.name: cls
    for cls in (
        BahdanauAttention,
        LuongDotAttention,
        LuongGeneralAttention,
        LuongConcatAttention,
        LuongLocationAttention,
        LocalMAttention,
        LocalPAttention,
    )
}  # attention.type -> class; the order is the README's and the sweep's


def register(cls: type[Attention]) -> type[Attention]:
    """Add a mechanism to the table under `cls.name` (usable as a class decorator)."""
    if not cls.name or cls.query not in ("previous", "current"):
        raise ValueError(f"{cls.__name__}: set `name` and `query` ('previous' or 'current')")
    MECHANISMS[cls.name] = cls
    return cls


def mechanism(cfg: AttentionConfig) -> type[Attention]:
    """The class `attention.type` names; ConfigError (one line) for an unknown name."""
    if cfg.type not in MECHANISMS:
        raise ConfigError(f"attention.type={cfg.type!r} is not one of {', '.join(MECHANISMS)}")
    return MECHANISMS[cfg.type]


def build_attention(
    cfg: AttentionConfig, query_size: int, key_size: int
) -> Attention | HardAttention:
    """The attention module `cfg.type` names, for decoder states of query_size, encoder outputs
    of key_size; wrapped in `HardAttention` when `attention.hard` is not "none"."""
    module = mechanism(cfg).from_config(cfg, query_size, key_size)
    module.normalizer = cfg.normalizer
    if cfg.hard == "none":
        return module
    return HardAttention(
        module,
        cfg.hard,
        cfg.hard_inference,
        tau=cfg.gumbel_tau,
        reward=cfg.reward,
        soft_mix=cfg.soft_mix,
        anneal=cfg.soft_mix_anneal,
        entropy_bonus=cfg.entropy_bonus,
        baseline_decay=cfg.baseline_decay,
    )
