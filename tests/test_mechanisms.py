"""The mechanism table: a mechanism defined here, outside nmt, is added with `register` and trains
end to end; the decoder layout, source limit and cost come from what the class declares."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import compose, tiny_overrides
from torch import Tensor, nn

from nmt.config import AttentionConfig, ConfigError, RNNConfig, to_dataclass
from nmt.models import build_model, check_config, source_limit
from nmt.models.attention import Attention, AttentionMacs
from nmt.models.mechanisms import MECHANISMS, mechanism, register


class NegativeDistanceAttention(Attention):
    """A toy: score = -||W q - k||^2 / H, queried with the previous state (Bahdanau layout)."""

    name = "toy_distance"
    query = "previous"

    @classmethod
    def source_positions(cls, cfg: AttentionConfig) -> int | None:
        return 40  # a made-up limit, to see that source_limit reads it

    @classmethod
    def macs(cls, cfg: AttentionConfig, query_size: int, key_size: int) -> AttentionMacs:
        return AttentionMacs(0, query_size * key_size, 3 * key_size, window=None)

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.W = nn.Linear(query_size, key_size, bias=False)  # Hq -> Hk

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        q = self.W(query)  # (B,T,Hk)
        return -torch.cdist(q, keys).pow(2) / keys.size(-1)  # (B,T,S)


@pytest.fixture
def toy():
    register(NegativeDistanceAttention)
    yield NegativeDistanceAttention
    MECHANISMS.pop(NegativeDistanceAttention.name)


def test_register_refuses_a_class_without_name_or_layout():
    class Nameless(Attention):
        pass

    class Sideways(NegativeDistanceAttention):
        name, query = "sideways", "next"

    for cls in (Nameless, Sideways):
        with pytest.raises(ValueError, match="name"):
            register(cls)
    assert "sideways" not in MECHANISMS


def test_unknown_mechanism_is_one_config_error_listing_the_table(tmp_path):
    cfg = to_dataclass(compose(tiny_overrides(tmp_path, **{"attention.type": "toy_distance"})))
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    message = str(err.value)
    assert "attention.type='toy_distance'" in message and "\n" not in message
    assert all(name in message for name in MECHANISMS)


def test_the_class_decides_layout_and_source_limit(tmp_path, toy):
    cfg = to_dataclass(compose(tiny_overrides(tmp_path, **{"attention.type": "toy_distance"})))
    check_config(cfg)
    assert mechanism(cfg.attention) is toy and source_limit(cfg) == 39
    model = build_model(cfg.model, cfg.attention, 12, 12)
    dec, m = model.decoder, cfg.model
    assert isinstance(m, RNNConfig) and isinstance(dec.attention, toy)
    K = 2 * m.enc_hidden  # bidirectional encoder
    assert dec.bahdanau and not dec.input_feed  # query = "previous": the Bahdanau layout
    assert dec.rnn.input_size == m.emb_size + K  # context enters the RNN input
    assert dec.readout.in_features == m.dec_hidden + K + m.emb_size  # [s_t; c_t; E y_{t-1}]


def test_the_benchmark_counts_the_flops_the_class_declares(tmp_path, toy):
    """nmt.bench's FLOP model takes the mechanism's share from `macs` and its layout from
    `query`: the toy's total is the Bahdanau layout's with the toy's attention terms."""
    import numpy as np

    from nmt.bench.flops import attention_macs, rnn_forward_macs

    cfg = to_dataclass(compose(tiny_overrides(tmp_path, **{"attention.type": "toy_distance"})))
    m, H = cfg.model, cfg.model.dec_hidden
    K = 2 * m.enc_hidden
    macs = attention_macs(cfg.attention, H, K, H)
    assert (macs.key_per_src, macs.query_per_tgt, macs.per_pair) == (0, H * K, 3 * K)
    assert macs.window is None and macs.bahdanau_layout
    S, T = np.array([5, 9]), np.array([6, 8])
    bahdanau = to_dataclass(compose(tiny_overrides(tmp_path, **{"attention.type": "bahdanau"})))
    b = attention_macs(bahdanau.attention, H, K, H)
    expected = rnn_forward_macs(m, bahdanau.attention, 12, S, T) + (
        (S * (macs.key_per_src - b.key_per_src)).sum()
        + (T * (macs.query_per_tgt - b.query_per_tgt)).sum()
        + (macs.per_pair - b.per_pair) * (S * T).sum()
    )
    assert rnn_forward_macs(m, cfg.attention, 12, S, T) == pytest.approx(expected)


def test_a_registered_mechanism_trains_end_to_end(tmp_path, toy):
    from nmt.pipeline import run

    extra = {"attention.type": "toy_distance", "trainer.max_steps": "40"}
    metrics = run(compose(tiny_overrides(tmp_path, **extra)), tmp_path / "run")
    assert metrics["attention"] == "toy_distance" and metrics["steps"] == 40
    assert math.isfinite(metrics["test_bleu"])
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "progress.jsonl").open()]
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5])
    assert (tmp_path / "run" / "heatmaps" / "test_0.png").is_file()
