"""Greedy and batched beam search for any model with the `nmt.models` interface.

Both return one `Hypothesis` per source sentence with its attention weights: one row per
output token (EOS excluded), following the surviving hypotheses under beam search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nmt.config import DecodeConfig
from nmt.vocab import BOS, EOS, N_SPECIAL, PAD


@dataclass
class Hypothesis:
    tokens: list[int]  # without BOS/EOS
    score: float  # sum of log-probabilities (length-normalised for beam search ranking)
    attention: Tensor | None  # (len(tokens), *E, S_b) float32 on CPU


def _select(tensors: dict[str, Tensor], index: Tensor) -> dict[str, Tensor]:
    return {k: v.index_select(0, index) for k, v in tensors.items()}


@dataclass(frozen=True)
class Lengths:
    """Output length limits of a search (`decode.max_len_a/max_len_b/min_len/max_len`).

    At most a * source length + b steps, EOS included (source length without its EOS), and, with
    `max_len`, at most `max_len` tokens before EOS; EOS is not allowed before `min_len` tokens
    (which raises the limit where it is lower). `min_len = max_len = N` makes every output
    exactly N tokens: decoding speed then compares between models whatever their training
    state (short-trained models stop early), as OpenNMT-py's `-min_length N -max_length N` and
    JoeyNMT's `min_output_length`/`max_output_length` do.
    """

    a: float = 1.5
    b: int = 10
    min_len: int = 0
    max_len: int | None = None

    @classmethod
    def of(cls, d: DecodeConfig) -> Lengths:
        return cls(d.max_len_a, d.max_len_b, d.min_len, d.max_len)

    def limits(self, src_lens: Tensor) -> Tensor:
        """Steps allowed per sentence, EOS included: (B,) long."""
        steps = ((src_lens - 1).float() * self.a + self.b).long()
        if self.max_len is not None:
            steps = steps.clamp(max=self.max_len + 1)
        return steps.clamp(min=max(1, self.min_len + 1))


def _length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty ((5 + |Y|) / 6)^alpha (Wu et al. 2016, eq. 14)."""
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def greedy(
    model: nn.Module,
    src: Tensor,
    src_lens: Tensor,
    lengths: Lengths = Lengths(),
    need_attention: bool = False,
    vocab: Tensor | None = None,
) -> list[Hypothesis]:
    """Pick the most probable token at every step (among the ids `vocab` (M,) if given: a
    shortlist, `nmt.shortlist`; it holds the specials at their own ids)."""
    B = src.size(0)
    memory = model.encode(src, src_lens)
    state = model.init_state(memory)
    limit = lengths.limits(src_lens)  # (B,)
    y = torch.full((B,), BOS, dtype=torch.long, device=src.device)
    tokens, scores = [], torch.zeros(B, device=src.device)
    weights = []
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    for t in range(int(limit.max())):
        log_probs, att, state = model.decode_step(y, state, memory, t, need_attention, vocab)
        log_probs[:, PAD] = log_probs[:, BOS] = float("-inf")
        if t < lengths.min_len:
            log_probs[:, EOS] = float("-inf")
        force_eos = (t + 1 >= limit)[:, None]  # (B, 1) at the length limit only EOS is allowed
        eos_only = torch.full_like(log_probs, float("-inf"))
        eos_only[:, EOS] = 0.0
        log_probs = torch.where(force_eos, log_probs + eos_only, log_probs)
        lp, y = log_probs.max(dim=-1)  # (B,)
        if vocab is not None:
            y = vocab[y]
        scores += torch.where(done, torch.zeros_like(lp), lp)
        y = y.masked_fill(done, PAD)
        tokens.append(y)
        if att is not None:
            weights.append(att.float().cpu())
        done |= y == EOS
        if bool(done.all()):
            break
    out = torch.stack(tokens, dim=1).cpu()  # (B, T)
    hyps = []
    for b in range(B):
        row = out[b].tolist()
        n = row.index(EOS) if EOS in row else len(row)
        att = None
        if weights:  # (n, *E, S_b): one row per output token
            att = torch.stack([w[b] for w in weights[: max(n, 1)]], dim=0)[
                :n, ..., : int(src_lens[b])
            ]
        hyps.append(Hypothesis(row[:n], float(scores[b]), att))
    return hyps


@torch.no_grad()
# One of the two functions over 60 lines: a batched search loop whose state (scores, finished
# hypotheses, the reordering of memory) reads best in one place.
def beam_search(
    model: nn.Module,
    src: Tensor,
    src_lens: Tensor,
    beam: int = 5,
    length_penalty: float = 1.0,
    lengths: Lengths = Lengths(),
    need_attention: bool = False,
    vocab: Tensor | None = None,
) -> list[Hypothesis]:
    """Batched beam search: all live hypotheses of a batch in one tensor; finished sentences leave.
    With `vocab` (M,), a shortlist, only those ids are scored."""
    B, K, device = src.size(0), beam, src.device
    memory = model.encode(src, src_lens)
    flat = torch.arange(B, device=device).repeat_interleave(K)  # (B*K,)
    memory = _select(memory, flat)
    state = model.init_state(memory)
    limit = lengths.limits(src_lens)  # (B,)
    limit_of = limit.tolist()  # read once: on a GPU each int(limit[b]) is a device sync
    # scores (n, K): only the first beam is live at t=0
    scores = torch.full((B, K), float("-inf"), device=device)
    scores[:, 0] = 0.0
    history = torch.empty(B * K, 0, dtype=torch.long, device=device)  # tokens so far
    att_history: Tensor | None = None  # (N, t, *E, S)
    active = list(range(B))  # original sentence index of each live row group
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    y = torch.full((B * K,), BOS, dtype=torch.long, device=device)

    for t in range(int(limit.max())):
        n = len(active)
        log_probs, att, state = model.decode_step(y, state, memory, t, need_attention, vocab)
        log_probs[:, PAD] = log_probs[:, BOS] = float("-inf")
        if t < lengths.min_len:
            log_probs[:, EOS] = float("-inf")
        V = log_probs.size(-1)
        lim = limit[active]  # (n,)
        at_limit = (t + 1 >= lim).repeat_interleave(K)  # (n*K,)
        if bool(at_limit.any()):
            eos_col = log_probs[:, EOS].clone()
            log_probs[at_limit] = float("-inf")
            log_probs[:, EOS] = eos_col
        cand = (scores.view(n, K, 1) + log_probs.view(n, K, V)).view(n, K * V)  # (n, K*V)
        top_scores, top_idx = cand.topk(2 * K, dim=-1)  # (n, 2K)
        origin, token = top_idx // V, top_idx % V  # (n, 2K)
        if vocab is not None:
            token = vocab[token]
        is_eos = (token == EOS) & torch.isfinite(top_scores)
        if att is not None:
            att_history = (
                att.float().unsqueeze(1)
                if att_history is None
                else torch.cat([att_history, att.float().unsqueeze(1)], dim=1)
            )  # (n*K, t+1, *E, S)
        # finished hypotheses: EOS among the first K candidates
        for i, j in (is_eos[:, :K]).nonzero().tolist():
            b = active[i]
            if len(finished[b]) >= K:
                continue
            row = i * K + int(origin[i, j])
            toks = history[row].tolist()
            a = None
            if att_history is not None:
                a = att_history[row, : len(toks)].cpu()[..., : int(src_lens[b])]
            norm = float(top_scores[i, j]) / _length_penalty(len(toks) + 1, length_penalty)
            finished[b].append(Hypothesis(toks, norm, a))
        # continuing hypotheses: the best K non-EOS candidates
        rank = is_eos.long() * (2 * K) + torch.arange(2 * K, device=device)  # EOS ones sort last
        keep = rank.argsort(dim=-1)[:, :K]  # (n, K)
        scores = top_scores.gather(1, keep)  # (n, K)
        rows = (torch.arange(n, device=device)[:, None] * K + origin.gather(1, keep)).view(-1)
        y = token.gather(1, keep).view(-1)  # (n*K,)
        # sentences with K finished hypotheses (or at their length limit) leave the batch
        still = [i for i, b in enumerate(active) if len(finished[b]) < K and t + 1 < limit_of[b]]
        if len(still) < n:
            keep_groups = torch.tensor(still, dtype=torch.long, device=device)
            scores = scores.index_select(0, keep_groups)
            rows, y = rows.view(n, K)[keep_groups].view(-1), y.view(n, K)[keep_groups].view(-1)
            active = [active[i] for i in still]
            # the K rows of a sentence share one source memory: reorder it only when sentences leave
            group_rows = (keep_groups[:, None] * K + torch.arange(K, device=device)).view(-1)
            memory = _select(memory, group_rows)
        history = torch.cat([history.index_select(0, rows), y[:, None]], dim=1)
        if att_history is not None:
            att_history = att_history.index_select(0, rows)
        state = model.reorder_state(state, rows)
        if not active:
            break
    best = []
    for b in range(B):
        if not finished[b]:  # cannot happen (EOS is forced at the limit); keep a clear fallback
            best.append(Hypothesis([], float("-inf"), None))
            continue
        best.append(max(finished[b], key=lambda h: h.score))
    return best


def decode(
    model: nn.Module,
    src: Tensor,
    src_lens: Tensor,
    beam: int,
    length_penalty: float,
    lengths: Lengths,
    need_attention: bool = False,
    vocab: Tensor | None = None,
) -> list[Hypothesis]:
    """Greedy when beam == 1, else beam search."""
    if vocab is not None and vocab[:N_SPECIAL].tolist() != list(range(N_SPECIAL)):
        raise ValueError("a shortlist must list the special ids first, at their own columns")
    if beam == 1:
        return greedy(model, src, src_lens, lengths, need_attention, vocab)
    return beam_search(model, src, src_lens, beam, length_penalty, lengths, need_attention, vocab)


@torch.no_grad()
def decode_corpus(
    model: nn.Module,
    sources: list,
    beam: int,
    length_penalty: float,
    lengths: Lengths,
    batch_size: int,
    device: torch.device | str = "cpu",
    need_attention: bool = False,
    max_src_len: int | None = None,
    vocab_for: Callable[[Tensor], Tensor] | None = None,
) -> list[Hypothesis]:
    """Decode token-id sequences (no EOS) in length-sorted batches; results in input order.
    Sources longer than `max_src_len` tokens are truncated to it. With `vocab_for` (a
    shortlist's `vocab`, nmt.shortlist), each batch is decoded over the target ids
    `vocab_for(src)` (M,) its sources select."""
    import numpy as np

    from nmt.data.batching import collate

    if max_src_len is not None:
        sources = [s[:max_src_len] for s in sources]
    order = np.argsort([-len(s) for s in sources], kind="stable")
    out: list[Hypothesis | None] = [None] * len(sources)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = collate([sources[i] for i in idx], None, idx)
        src = batch.src.to(device)
        vocab = None if vocab_for is None else vocab_for(src)
        hyps = decode(
            model,
            src,
            batch.src_lens.to(device),
            beam,
            length_penalty,
            lengths,
            need_attention,
            vocab,
        )
        for i, h in zip(idx.tolist(), hyps):
            out[i] = h
    return out  # type: ignore[return-value]
