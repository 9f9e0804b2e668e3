"""Transformer encoder-decoder (Vaswani et al. 2017, "Attention Is All You Need").

Readable, nanoGPT-style: small modules, one line of shapes at every reshape and matmul.

    B batch, S source length, T target length, D d_model, h heads, dh = D / h, L decoder layers

Implements the model interface of `nmt.models` (forward / encode / init_state / decode_step).
Attention uses `F.scaled_dot_product_attention` (fused, no weights materialised) except where
two plain matmuls are cheaper or weights are needed: on CPU with attention dropout or a single
query (a decoding step), and when weights are asked for (`return_attention` /
`need_attention`, cross-attention only).

Incremental decoding keeps, per decoder layer, the self-attention keys/values of the prefix in
`state` ("k{i}", "v{i}": (N, h, t, dh), growing along dim 2) and the cross-attention
keys/values of the source in `memory` ("ck{i}", "cv{i}": (N, h, S, dh), computed once by
`encode`). Every tensor is batch-first and nothing is stored on the module, so beam search can
reorder hypotheses with `index_select(0, idx)` on every tensor of `memory` and `state`; or, with
`reorder_state`, leave the reordering of `state` to the next step, which gathers the kept rows
of the cache straight into the grown cache (one copy of the cache per step instead of two).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nmt.config import TransformerConfig
from nmt.models import dropout as drop
from nmt.models.output import vocab_logits

# Padding id, as in nmt.data.tokenizer (PAD=0, UNK=1, BOS=2, EOS=3); kept local so the model
# does not depend on the data package.
from nmt.vocab import PAD


def sinusoid_table(positions: Tensor, d_model: int) -> Tensor:
    """Sinusoidal encodings for `positions` (P,) -> (P, D) float32 (Vaswani eq. in sec. 3.5).

    PE(pos, 2i) = sin(pos / 10000^(2i/D)),  PE(pos, 2i+1) = cos(pos / 10000^(2i/D))
    """
    half = torch.arange(0, d_model, 2, dtype=torch.float32, device=positions.device)  # (D/2,)
    inv_freq = torch.exp(-math.log(10000.0) * half / d_model)  # (D/2,)
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # (P, D/2)
    table = torch.zeros(positions.numel(), d_model, device=positions.device)  # (P, D)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return table


class PositionalEncoding(nn.Module):
    """Fixed sinusoidal position encodings, precomputed up to `max_positions` (extended on demand)."""

    def __init__(self, d_model: int, max_positions: int) -> None:
        super().__init__()
        self.d_model = d_model
        table = sinusoid_table(torch.arange(max_positions), d_model)  # (P, D)
        self.register_buffer("table", table, persistent=False)

    def forward(self, start: int, length: int) -> Tensor:
        """Encodings of positions start .. start+length-1 -> (length, D)."""
        end = start + length
        if end <= self.table.size(0):
            return self.table[start:end]
        positions = torch.arange(start, end, device=self.table.device)  # beyond the cache
        return sinusoid_table(positions, self.d_model)


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention (Vaswani sec. 3.2.2)."""

    def __init__(self, d_model: int, heads: int, attention_dropout: float) -> None:
        super().__init__()
        if d_model % heads != 0:
            raise ValueError(f"d_model={d_model} must be divisible by heads={heads}")
        self.heads = heads
        self.head_dim = d_model // heads
        self.attention_dropout = attention_dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, T, D) -> (B, h, T, dh)."""
        B, T, _ = x.shape
        return x.view(B, T, self.heads, self.head_dim).transpose(1, 2)  # (B, h, T, dh)

    def query(self, x: Tensor) -> Tensor:
        """Projected queries (B, T, D) -> (B, h, T, dh)."""
        return self.split_heads(self.q_proj(x))

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Projected keys and values (B, S, D) -> 2 x (B, h, S, dh)."""
        return self.split_heads(self.k_proj(x)), self.split_heads(self.v_proj(x))

    def attend(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        mask: Tensor | None = None,
        is_causal: bool = False,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """softmax(Q K^T / sqrt(dh)) V per head, then merge heads (Vaswani eq. 1).

        q (B, h, T, dh); k, v (B, h, S, dh); mask broadcastable to (B, h, T, S), True = may
        attend. Returns the output (B, T, D) and, if `need_weights`, the float32 weights
        (B, h, T, S) before dropout (exactly 0 where the mask is False).
        """
        k, v = k.to(q.dtype), v.to(q.dtype)  # caches may be fp32 while autocast runs in bf16
        p = self.attention_dropout if self.training else 0.0
        weights: Tensor | None = None
        # On CPU, SDPA's dropout draws a Bernoulli sample per weight and its flash kernel costs
        # ~1 ms per call for a single query: use two small matmuls there (training, decoding)
        cpu = q.device.type == "cpu"
        if need_weights or (cpu and (p > 0.0 or q.size(-2) == 1)):
            scores = (q @ k.transpose(-2, -1)).float()  # (B, h, T, S), a fresh tensor
            # scale and mask in place, the masks as one small additive -inf bias: two passes
            # over the scores instead of three new (B, h, T, S) tensors
            scores.mul_(1.0 / math.sqrt(self.head_dim))
            bias = _mask_bias(mask, is_causal, scores.shape[-2:], q.device)
            if bias is not None:
                scores.add_(bias)
            probs = scores.softmax(dim=-1)  # (B, h, T, S) float32
            weights = probs if need_weights else None
            out = drop.dropout(probs, p, self.training).to(v.dtype) @ v  # (B, h, T, dh)
        else:
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=p, is_causal=is_causal
            )  # (B, h, T, dh)
        B, _, T, _ = out.shape
        out = out.transpose(1, 2).reshape(B, T, self.heads * self.head_dim)  # (B, T, D)
        return self.out_proj(out), weights


def _mask_bias(
    mask: Tensor | None, is_causal: bool, size: torch.Size, device: torch.device
) -> Tensor | None:
    """0 where attention may look, -inf where not: the key mask (broadcastable to (B, h, T, S),
    True = may attend) and, if `is_causal`, position t seeing keys 0..t (square, as in SDPA's
    is_causal). None when nothing is masked."""
    bias = None
    if is_causal:
        T, S = size
        causal = torch.ones(T, S, dtype=torch.bool, device=device).tril()  # (T, S)
        bias = torch.zeros(T, S, device=device).masked_fill_(~causal, float("-inf"))
    if mask is not None:
        keys = torch.zeros(mask.shape, device=device).masked_fill_(~mask, float("-inf"))
        bias = keys if bias is None else bias + keys  # (B, 1, T or 1, S)
    return bias


class FeedForward(nn.Module):
    """Position-wise feed-forward network FFN(x) = max(0, x W1 + b1) W2 + b2 (Vaswani eq. 2)."""

    def __init__(self, d_model: int, ff_size: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, ff_size)
        self.fc2 = nn.Linear(ff_size, d_model)
        self.dropout = drop.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.dropout(F.relu(self.fc1(x))))  # (B, T, D)


class EncoderLayer(nn.Module):
    """Self-attention + feed-forward, each in a residual block (pre- or post-LayerNorm)."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.pre_norm = cfg.pre_norm
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.heads, cfg.attention_dropout)
        self.ff = FeedForward(cfg.d_model, cfg.ff_size, cfg.dropout)
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.dropout = drop.Dropout(cfg.dropout)

    def _self_attention(self, x: Tensor, key_mask: Tensor) -> Tensor:
        q = self.self_attn.query(x)  # (B, h, S, dh)
        k, v = self.self_attn.keys_values(x)  # (B, h, S, dh)
        return self.self_attn.attend(q, k, v, mask=key_mask)[0]  # (B, S, D)

    def forward(self, x: Tensor, key_mask: Tensor) -> Tensor:
        """x (B, S, D), key_mask (B, 1, 1, S) True = real token -> (B, S, D)."""
        if self.pre_norm:  # x + Sublayer(LN(x))  (Xiong et al. 2020)
            x = x + self.dropout(self._self_attention(self.norm1(x), key_mask))
            return x + self.dropout(self.ff(self.norm2(x)))
        # LN(x + Sublayer(x))  (Vaswani sec. 5.4)
        x = self.norm1(x + self.dropout(self._self_attention(x, key_mask)))
        return self.norm2(x + self.dropout(self.ff(x)))


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention over the encoder output, feed-forward."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.pre_norm = cfg.pre_norm
        self.self_attn = MultiHeadAttention(cfg.d_model, cfg.heads, cfg.attention_dropout)
        self.cross_attn = MultiHeadAttention(cfg.d_model, cfg.heads, cfg.attention_dropout)
        self.ff = FeedForward(cfg.d_model, cfg.ff_size, cfg.dropout)
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.norm3 = nn.LayerNorm(cfg.d_model)
        self.dropout = drop.Dropout(cfg.dropout)

    def forward(
        self,
        x: Tensor,
        ck: Tensor,
        cv: Tensor,
        key_mask: Tensor,
        cache: tuple[Tensor, Tensor, Tensor | None] | None = None,
        need_weights: bool = False,
        target_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """One decoder layer.

        x (B, T, D) the target positions to compute; ck, cv (B, h, S, dh) cross-attention
        keys/values of the source; key_mask (B, 1, 1, S). Without `cache`, x is the whole
        prefix and self-attention is causal; with `cache` = (k, v, rows), the keys/values of the
        previous positions (N, h, t, dh) and the hypotheses x continues (B,) (None: the same
        B = N), x holds the next position and attends to those rows of the cache plus itself.
        With `target_mask` (B, 1, 1, T) (True = a real target position), self-attention has no
        future mask: every position sees the whole target (the full-context pass of guided
        alignment, `Transformer.full_context_attention`).
        Returns (x (B, T, D), self-attention k, v including x (B, h, t+T, dh), cross-attention
        weights (B, h, T, S) or None).
        """
        # masked self-attention (Vaswani sec. 3.2.3)
        h = self.norm1(x) if self.pre_norm else x
        q = self.self_attn.query(h)  # (B, h, T, dh)
        k, v = self.self_attn.keys_values(h)  # (B, h, T, dh)
        if cache is not None:
            if q.size(2) != 1:
                raise ValueError("with a cache, decode one position at a time")
            k = _grow(cache[0], k, cache[2])  # (B, h, t+1, dh)
            v = _grow(cache[1], v, cache[2])  # (B, h, t+1, dh)
        # the whole prefix needs the causal mask; one new position may see all the cache
        causal = cache is None and target_mask is None
        a = self.self_attn.attend(q, k, v, mask=target_mask, is_causal=causal)[0]  # (B, T, D)
        x = x + self.dropout(a) if self.pre_norm else self.norm1(x + self.dropout(a))

        # encoder-decoder attention: queries from the decoder, keys/values from the encoder
        h = self.norm2(x) if self.pre_norm else x
        q = self.cross_attn.query(h)  # (B, h, T, dh)
        a, weights = self.cross_attn.attend(q, ck, cv, mask=key_mask, need_weights=need_weights)
        x = x + self.dropout(a) if self.pre_norm else self.norm2(x + self.dropout(a))

        h = self.norm3(x) if self.pre_norm else x
        a = self.ff(h)  # (B, T, D)
        x = x + self.dropout(a) if self.pre_norm else self.norm3(x + self.dropout(a))
        return x, k, v, weights


def _grow(cache: Tensor, new: Tensor, rows: Tensor | None) -> Tensor:
    """The cache rows `rows` (all if None) with the new position appended: cache (N, h, t, dh),
    new (B, h, 1, dh), rows (B,) -> (B, h, t+1, dh), in one copy (no separate reorder)."""
    cache = cache.to(new.dtype)  # caches may be fp32 while autocast runs in bf16
    if rows is None:
        return torch.cat([cache, new], dim=2)
    B, h, t, dh = new.size(0), cache.size(1), cache.size(2), cache.size(3)
    out = new.new_empty(B, h, t + 1, dh)
    torch.index_select(cache, 0, rows, out=out[:, :, :t])
    out[:, :, t:] = new
    return out


class Transformer(nn.Module):
    """Encoder-decoder Transformer implementing the `nmt.models` interface."""

    def __init__(self, cfg: TransformerConfig, src_vocab: int, tgt_vocab: int) -> None:
        super().__init__()
        if cfg.d_model % cfg.heads != 0:
            raise ValueError(f"d_model={cfg.d_model} must be divisible by heads={cfg.heads}")
        if cfg.tie_all and src_vocab != tgt_vocab:
            raise ValueError(
                f"tie_all needs one joint vocabulary, got src_vocab={src_vocab} != tgt_vocab={tgt_vocab}"
            )
        self.cfg = cfg
        self.d_model = cfg.d_model
        self.heads = cfg.heads
        self.dec_layers = cfg.dec_layers
        self.src_vocab = src_vocab
        self.tgt_vocab = tgt_vocab
        self.emb_scale = math.sqrt(cfg.d_model)  # embeddings times sqrt(D) (Vaswani sec. 3.4)

        self.tgt_embed = nn.Embedding(tgt_vocab, cfg.d_model, padding_idx=PAD)
        self.src_embed = (
            self.tgt_embed if cfg.tie_all else nn.Embedding(src_vocab, cfg.d_model, padding_idx=PAD)
        )
        self.positions = PositionalEncoding(cfg.d_model, cfg.max_positions)
        self.dropout = drop.Dropout(cfg.dropout)
        self.encoder = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.dec_layers))
        # pre-norm stacks end with a LayerNorm; post-norm layers already end normalised
        self.enc_norm = nn.LayerNorm(cfg.d_model) if cfg.pre_norm else nn.Identity()
        self.dec_norm = nn.LayerNorm(cfg.d_model) if cfg.pre_norm else nn.Identity()
        self.generator = nn.Linear(cfg.d_model, tgt_vocab, bias=False)
        self._init_weights()
        if cfg.tie_embeddings or cfg.tie_all:  # Press & Wolf 2017
            self.generator.weight = self.tgt_embed.weight

    def _init_weights(self) -> None:
        """Xavier-uniform for every matrix, zero biases, zero PAD embedding rows."""
        for name, p in self.named_parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)
        with torch.no_grad():
            self.tgt_embed.weight[PAD].zero_()
            self.src_embed.weight[PAD].zero_()

    # ------------------------------------------------------------------ encoder

    def encode(self, src: Tensor, src_lens: Tensor) -> dict[str, Tensor]:
        """src (B, S), src_lens (B,) -> memory: enc_out (B, S, D), src_mask (B, S) bool
        (True = real token), and per decoder layer i the cross-attention keys/values
        "ck{i}", "cv{i}" (B, h, S, dh)."""
        B, S = src.shape
        src_mask = torch.arange(S, device=src.device)[None, :] < src_lens.to(src.device)[:, None]
        key_mask = src_mask[:, None, None, :]  # (B, 1, 1, S)
        x = self.src_embed(src) * self.emb_scale + self.positions(0, S)  # (B, S, D)
        x = self.dropout(x)
        for layer in self.encoder:
            x = layer(x, key_mask)  # (B, S, D)
        enc_out = self.enc_norm(x)  # (B, S, D)
        memory = {"enc_out": enc_out, "src_mask": src_mask}
        for i, layer in enumerate(self.decoder):
            memory[f"ck{i}"], memory[f"cv{i}"] = layer.cross_attn.keys_values(enc_out)
        return memory

    # ------------------------------------------------------------------ decoder

    def _embed_target(self, y: Tensor, start: int) -> Tensor:
        """Target ids y (B, T) at positions start..start+T-1 -> decoder input (B, T, D)."""
        return self.dropout(self.tgt_embed(y) * self.emb_scale + self.positions(start, y.size(1)))

    def _decode(
        self,
        y: Tensor,
        start: int,
        memory: dict[str, Tensor],
        state: dict[str, Tensor] | None,
        need_attention: bool,
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        """Run the decoder on target ids y (B, T) at positions start..start+T-1.

        Returns the hidden states after the final norm (B, T, D), the cross-attention weights
        (B, T, L, h, S) or None, and the self-attention keys/values of every layer.
        """
        key_mask = memory["src_mask"][:, None, None, :]  # (B, 1, 1, S)
        x = self._embed_target(y, start)  # (B, T, D)
        new_state: dict[str, Tensor] = {}
        weights: list[Tensor] = []
        for i, layer in enumerate(self.decoder):
            cache = None if state is None else (state[f"k{i}"], state[f"v{i}"], state.get("rows"))
            x, k, v, w = layer(
                x, memory[f"ck{i}"], memory[f"cv{i}"], key_mask, cache, need_attention
            )
            new_state[f"k{i}"], new_state[f"v{i}"] = k, v
            if w is not None:
                weights.append(w)  # (B, h, T, S)
        attention = None
        if need_attention:
            attention = torch.stack(weights, dim=1).permute(0, 3, 1, 2, 4)  # (B, T, L, h, S)
        return self.dec_norm(x), attention, new_state

    def full_context_attention(
        self,
        tgt_in: Tensor,
        memory: dict[str, Tensor],
        layer: int,
        keys: Tensor | None = None,
    ) -> Tensor:
        """Cross-attention weights (B, T, h, S) of decoder layer `layer` in a second pass over
        the whole target without the future mask: guided alignment "with full target context"
        (Garg et al. 2019; fairseq's --full-context-alignment): row t, which predicts
        y_t in the translation pass, here also sees y_t and the words after it. Only layers
        0..`layer` run; the translation itself never uses this pass. Every row sees the first
        `keys` (B,) target positions (default: the non-padding ones), so positions fed past the
        target (the EOS steps of `nmt.align.forced`) get rows without changing the others."""
        layer %= self.dec_layers
        T = tgt_in.size(1)
        key_mask = memory["src_mask"][:, None, None, :]  # (B, 1, 1, S)
        if keys is None:
            target_mask = tgt_in != PAD  # (B, T)
        else:
            target_mask = (
                torch.arange(T, device=tgt_in.device)[None, :] < keys.to(tgt_in.device)[:, None]
            )
        x = self._embed_target(tgt_in, 0)  # (B, T, D)
        weights = None
        for i, dec in enumerate(self.decoder[: layer + 1]):
            x, _, _, weights = dec(
                x,
                memory[f"ck{i}"],
                memory[f"cv{i}"],
                key_mask,
                None,
                i == layer,
                target_mask[:, None, None, :],  # (B, 1, 1, T)
            )
        assert weights is not None
        return weights.transpose(1, 2)  # (B, T, h, S)

    def forward(
        self,
        src: Tensor,
        src_lens: Tensor,
        tgt_in: Tensor,
        return_attention: bool = False,
        project: bool = True,
        full_context_layer: int | None = None,
        full_context_keys: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: src (B, S), src_lens (B,), tgt_in (B, T) (BOS y1 .. y_{T-1})
        -> logits (B, T, V) (or, with project=False, the final decoder states (B, T, D)) and,
        if asked, cross-attention weights (B, T, L, h, S) float32; with `full_context_layer`,
        that layer's weights come from `full_context_attention` (with `full_context_keys`)."""
        memory = self.encode(src, src_lens)
        x, attention, _ = self._decode(tgt_in, 0, memory, None, return_attention)
        if attention is not None and full_context_layer is not None:
            layers = list(attention.unbind(2))  # L x (B, T, h, S)
            layers[full_context_layer] = self.full_context_attention(
                tgt_in, memory, full_context_layer, full_context_keys
            )
            attention = torch.stack(layers, dim=2)  # (B, T, L, h, S)
        return (self.generator(x) if project else x), attention

    @property
    def output_layer(self) -> nn.Linear:
        """The output projection to vocabulary logits (tied to the target embeddings if asked)."""
        return self.generator

    def init_state(self, memory: dict[str, Tensor]) -> dict[str, Tensor]:
        """Empty self-attention caches "k{i}", "v{i}" (B, h, 0, dh) per decoder layer."""
        ref = memory["ck0"] if self.dec_layers else memory["enc_out"]
        B, dh = ref.size(0), self.d_model // self.heads
        empty = ref.new_zeros(B, self.heads, 0, dh)  # (B, h, 0, dh)
        state: dict[str, Tensor] = {}
        for i in range(self.dec_layers):
            state[f"k{i}"], state[f"v{i}"] = empty, empty
        return state

    def reorder_state(self, state: dict[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
        """The state of hypotheses `rows` (N',), lazily: the rows are recorded ("rows") and the
        next `decode_step` gathers them while it appends its position to the caches."""
        pending = state.get("rows")
        return {**state, "rows": rows if pending is None else pending.index_select(0, rows)}

    def decode_step(
        self,
        y_prev: Tensor,
        state: dict[str, Tensor],
        memory: dict[str, Tensor],
        step: int,
        need_attention: bool = False,
        vocab: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        """One incremental step: y_prev (N,) at position `step` (0 = BOS) -> log-probs of the
        next token (N, V) float32 (over a shortlist `vocab` (M,): (N, M)), cross-attention
        (N, L, h, S) or None, the new state (inputs are not modified)."""
        x, attention, new_state = self._decode(y_prev[:, None], step, memory, state, need_attention)
        logits = vocab_logits(self.generator, x[:, 0], vocab)  # (N, V) or (N, M)
        log_probs = F.log_softmax(logits.float(), dim=-1)  # float32
        if attention is not None:
            attention = attention[:, 0]  # (N, L, h, S)
        return log_probs, attention, new_state
