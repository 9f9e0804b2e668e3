"""Batch framing, token-bucketed sampling and decoding batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nmt.data.arrays import TokenArray
from nmt.data.batching import TokenBatchSampler, collate, fixed_batches, shard_batches
from nmt.data.tokenizer import BOS, EOS, PAD


def random_lengths(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Correlated source/target lengths like real parallel text."""
    rng = np.random.default_rng(seed)
    tgt = rng.integers(1, 80, size=n)
    src = np.clip((tgt * rng.uniform(0.8, 1.25, size=n)).round().astype(int), 1, None)
    return src, tgt


def test_collate_framing():
    batch = collate([[5, 6, 7], [8]], [[9, 10], [11, 12, 13]], [4, 2])
    assert batch.src.tolist() == [[5, 6, 7, EOS], [8, EOS, PAD, PAD]]
    assert batch.src_lens.tolist() == [4, 2]
    assert batch.tgt_in.tolist() == [[BOS, 9, 10, PAD], [BOS, 11, 12, 13]]
    assert batch.tgt_out.tolist() == [[9, 10, EOS, PAD], [11, 12, 13, EOS]]
    assert batch.indices.tolist() == [4, 2]
    assert batch.n_tgt_tokens == 7 and batch.n_src_tokens == 6
    assert all(
        t.dtype == torch.long for t in (batch.src, batch.src_lens, batch.tgt_in, batch.indices)
    )
    moved = batch.to("cpu")
    assert torch.equal(moved.tgt_out, batch.tgt_out)
    src_only = collate([np.array([5], np.int32), np.zeros(0, np.int32)], None, np.array([0, 1]))
    assert src_only.tgt_in is None and src_only.tgt_out is None and src_only.n_tgt_tokens == 0
    assert src_only.src.tolist() == [[5, EOS], [EOS, PAD]] and src_only.to("cpu").tgt_in is None


def test_every_index_once_and_token_budget():
    src, tgt = random_lengths(3000)
    src[7] = 500  # longer than max_tokens allows with anyone else
    sampler = TokenBatchSampler(src, tgt, max_tokens=400, shuffle=True, seed=1)
    for epoch in range(3):
        batches = sampler.batches(epoch)
        flat = np.concatenate(batches)
        assert len(flat) == 3000 and len(np.unique(flat)) == 3000
        assert sampler.num_batches(epoch) == len(batches)
        for b in batches:
            width = max(src[b].max(), tgt[b].max()) + 1
            assert len(b) * width <= 400 or len(b) == 1
        assert any(len(b) == 1 and b[0] == 7 for b in batches)


def test_determinism_and_variation():
    src, tgt = random_lengths(2000)

    def run(seed, epoch):
        return [b.tolist() for b in TokenBatchSampler(src, tgt, 500, True, seed).batches(epoch)]

    assert run(1, 0) == run(1, 0)
    assert run(1, 0) != run(1, 1)
    assert run(1, 0) != run(2, 0)
    fixed = TokenBatchSampler(src, tgt, 500, False, 1)
    assert [b.tolist() for b in fixed.batches(0)] == [b.tolist() for b in fixed.batches(5)]


def test_bucketing_keeps_padding_low():
    src, tgt = random_lengths(5000, seed=3)
    real = padded = 0
    for b in TokenBatchSampler(src, tgt, 2000, True, 0).batches(0):
        real += (src[b] + 1).sum() + (tgt[b] + 1).sum()
        padded += len(b) * ((src[b].max() + 1) + (tgt[b].max() + 1))
    assert 1 - real / padded < 0.2


def test_fixed_batches_restore_order():
    lengths = np.array([3, 9, 1, 7, 7, 2, 0])
    batches = fixed_batches(lengths, max_sentences=3)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(7)) and all(len(b) <= 3 for b in batches)
    assert lengths[flat].tolist() == sorted(lengths.tolist(), reverse=True)
    results = {}
    for b in batches:
        for i in b:
            results[int(i)] = int(lengths[i])  # pretend output, keyed by index
    assert [results[i] for i in range(7)] == lengths.tolist()
    capped = fixed_batches(lengths, max_sentences=10, max_tokens=12)
    assert all(len(b) * (lengths[b].max() + 1) <= 12 or len(b) == 1 for b in capped)


def test_shard_batches_equal_counts():
    batches = [np.array([i]) for i in range(7)]
    shards = [shard_batches(batches, r, 3) for r in range(3)]
    assert [len(s) for s in shards] == [2, 2, 2]
    assert sorted(int(b[0]) for s in shards for b in s) == list(range(6))


def test_token_array():
    arr = TokenArray.from_lists([[1, 2], [], [3, 4, 5]])
    assert len(arr) == 3 and arr.lengths.tolist() == [2, 0, 3]
    assert arr[2].tolist() == [3, 4, 5] and arr[-1].tolist() == [3, 4, 5]
    assert arr.select(np.array([True, False, True])).tolist() == [[1, 2], [3, 4, 5]]
    assert arr.select(np.array([2, 0])).tolist() == [[3, 4, 5], [1, 2]]
    joined = TokenArray.concat([arr, TokenArray.from_lists([[6]])])
    assert joined.tolist() == [[1, 2], [], [3, 4, 5], [6]] and joined.data.dtype == np.int32
    with pytest.raises(IndexError):
        arr[3]
