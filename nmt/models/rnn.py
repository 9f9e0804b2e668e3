"""RNN encoder-decoder with attention: Bahdanau et al. 2015 and Luong et al. 2015.

Shapes: B batch, S source length, T target length, E embedding, H decoder hidden,
K encoder output size (2 x per-direction size when bidirectional), V vocabulary.

Two decoder layouts, chosen by the attention type:
- Bahdanau (2015, appendix A.2.2): the attention query is the *previous* state s_{t-1}; the context
  c_t enters the RNN input and the output layer: s_t = RNN([E y_{t-1}; c_t], s_{t-1}).
- Luong (2015, sec. 3): h_t = RNN(x_t, h_{t-1}), then c_t = attention(h_t) and the attentional
  hidden state h̃_t = tanh(W_c [c_t; h_t]) (eq. 5) feeds the softmax (eq. 6). With input feeding
  (sec. 3.3) h̃_{t-1} is concatenated to the next input; without it the whole decoder RNN runs
  as one fused call and attention is computed for all T steps at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nmt.config import AttentionConfig, RNNConfig
from nmt.models.dropout import Dropout
from nmt.models.hard_attention import HardAttention
from nmt.models.mechanisms import build_attention
from nmt.models.output import vocab_logits
from nmt.runtime import fused_rnn
from nmt.vocab import PAD


def _rnn(
    cell: str, input_size: int, hidden: int, layers: int, dropout: float, bi: bool
) -> nn.RNNBase:
    kind = nn.LSTM if cell == "lstm" else nn.GRU
    return kind(
        input_size,
        hidden,
        num_layers=layers,
        batch_first=True,
        bidirectional=bi,
        dropout=dropout if layers > 1 else 0.0,
    )


class Encoder(nn.Module):
    """Embeddings and a (bidirectional) LSTM/GRU over packed source sequences."""

    def __init__(self, cfg: RNNConfig, vocab: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, cfg.emb_size, padding_idx=PAD)
        self.rnn = _rnn(
            cfg.cell, cfg.emb_size, cfg.enc_hidden, cfg.enc_layers, cfg.dropout, cfg.bidirectional
        )
        self.dropout = Dropout(cfg.dropout)
        self.bidirectional = cfg.bidirectional
        self.output_size = cfg.enc_hidden * (2 if cfg.bidirectional else 1)

    def forward(self, src: Tensor, src_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder outputs (B, S, K) and the top layer's final state (B, K)."""
        emb = self.dropout(self.embed(src))  # (B, S, E)
        packed = pack_padded_sequence(emb, src_lens.cpu(), batch_first=True, enforce_sorted=False)
        out, hidden = fused_rnn(self.rnn, packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))  # (B, S, K)
        h_n = hidden[0] if isinstance(hidden, tuple) else hidden  # (layers * dirs, B, K/dirs)
        final = torch.cat([h_n[-2], h_n[-1]], dim=-1) if self.bidirectional else h_n[-1]  # (B, K)
        return self.dropout(out), final


class Decoder(nn.Module):
    """Attentional RNN decoder; one step at a time or, for Luong without input feeding, fused."""

    def __init__(self, cfg: RNNConfig, att_cfg: AttentionConfig, vocab: int, key_size: int):
        super().__init__()
        self.cell = cfg.cell
        self.layers = cfg.dec_layers
        self.hidden = cfg.dec_hidden
        self.attention = build_attention(att_cfg, query_size=cfg.dec_hidden, key_size=key_size)
        self.bahdanau = self.attention.query == "previous"  # the layout the mechanism declares
        self.input_feed = cfg.input_feed and not self.bahdanau
        self.embed = nn.Embedding(vocab, cfg.emb_size, padding_idx=PAD)
        self.bridge = nn.Linear(key_size, cfg.dec_hidden * cfg.dec_layers)  # s_0 = tanh(W_s h_1^<-)
        extra = key_size if self.bahdanau else (cfg.dec_hidden if self.input_feed else 0)
        self.rnn = _rnn(
            cfg.cell, cfg.emb_size + extra, cfg.dec_hidden, cfg.dec_layers, cfg.dropout, False
        )
        if self.bahdanau:
            # Bahdanau 2015, A.2.2: t_i from [s_i; c_i; E y_{i-1}] (tanh in place of maxout)
            self.readout = nn.Linear(cfg.dec_hidden + key_size + cfg.emb_size, cfg.dec_hidden)
        else:
            # Luong 2015, eq. 5: h̃_t = tanh(W_c [c_t; h_t])
            self.readout = nn.Linear(key_size + cfg.dec_hidden, cfg.dec_hidden, bias=False)
        self.dropout = Dropout(cfg.dropout)
        self.layer_dropout = Dropout(cfg.dropout if cfg.dec_layers > 1 else 0.0)  # as nn.LSTM's
        self.output = nn.Linear(cfg.dec_hidden, vocab)  # Luong 2015, eq. 6: softmax(W_s h̃_t)
        if cfg.tie_embeddings:
            self.output.weight = self.embed.weight

    # --- state -------------------------------------------------------------------------------
    def init_state(self, final: Tensor) -> dict[str, Tensor]:
        """Decoder state from the encoder's final state (B, K); batch-first tensors."""
        B = final.size(0)
        h = torch.tanh(self.bridge(final)).view(B, self.layers, self.hidden)  # (B, L, H)
        state = {"h": h}
        if self.cell == "lstm":
            state["c"] = torch.zeros_like(h)
        if self.input_feed:
            state["feed"] = h.new_zeros(B, self.hidden)  # h̃_0
        return state

    def _rnn_hidden(self, state: dict[str, Tensor]):
        h = state["h"].transpose(0, 1).contiguous()  # (L, B, H)
        return (h, state["c"].transpose(0, 1).contiguous()) if self.cell == "lstm" else h

    # --- the recurrent cell, one step --------------------------------------------------------
    def embed_gates(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Dropped-out embeddings (B, T, E) and, for an LSTM, their share of layer 0's gates
        W_ih[:, :E] E y + b (B, T, 4H), computed for all steps in one matmul."""
        emb = self.dropout(self.embed(y))  # (B, T, E)
        if self.cell != "lstm":
            return emb, emb
        E = emb.size(-1)
        bias = self.rnn.bias_ih_l0 + self.rnn.bias_hh_l0  # (4H,)
        return emb, F.linear(emb, self.rnn.weight_ih_l0[:, :E], bias)  # (B, T, 4H)

    def step_weights(self, device_type: str) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Per LSTM layer (W_x^T, W_hh^T, bias) for the step loop, sliced (layer 0: the non-embedding
        columns) and cast to the autocast dtype once per batch instead of at every step."""
        dtype = (
            torch.get_autocast_dtype(device_type)
            if torch.is_autocast_enabled(device_type)
            else None
        )
        E = self.embed.embedding_dim
        weights = []
        for layer in range(self.layers if self.cell == "lstm" else 0):
            w_ih = getattr(self.rnn, f"weight_ih_l{layer}")
            w_x = (w_ih[:, E:] if layer == 0 else w_ih).t()  # (X, 4H)
            w_h = getattr(self.rnn, f"weight_hh_l{layer}").t()  # (H, 4H)
            b = getattr(self.rnn, f"bias_ih_l{layer}") + getattr(
                self.rnn, f"bias_hh_l{layer}"
            )  # (4H,)
            if dtype is not None:
                w_x, w_h = w_x.to(dtype), w_h.to(dtype)
            weights.append((w_x, w_h, b))
        return weights

    def recur(
        self,
        emb: Tensor,
        gates_emb: Tensor,
        extra: Tensor | None,
        state: dict[str, Tensor],
        weights: list[tuple[Tensor, Tensor, Tensor]],
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """One step of the stacked RNN with input [E y_{t-1}; extra]: top output (B, H), new state.
        Shares nn.LSTM/GRU's weights, so the fused path and this loop compute the same function."""
        new = dict(state)
        hs, cs = [], []
        x = None
        # unbind and squeeze, not [:, layer]: their backward is a stack or a view, not a
        # zero-filled tensor per select (the step loop runs them T times per batch)
        h_prev = state["h"].unbind(1)  # L x (B, H)
        c_prev = state["c"].unbind(1) if self.cell == "lstm" else None
        for layer in range(self.layers):
            h = h_prev[layer]  # (B, H)
            if self.cell == "lstm":
                w_x, w_h, b = weights[layer]
                if layer == 0:  # the embedding share of the gates is precomputed for all steps
                    gates = (
                        gates_emb if extra is None else torch.addmm(gates_emb, extra, w_x)
                    )  # (B, 4H)
                else:
                    gates = torch.addmm(b, x, w_x)  # (B, 4H)
                gates = torch.addmm(gates, h, w_h)  # (B, 4H) + (B, H) @ (H, 4H)
                i, f, g, o = gates.chunk(4, dim=-1)  # PyTorch's LSTM gate order
                c = torch.sigmoid(f) * c_prev[layer] + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)  # (B, H)
                cs.append(c)
            else:
                inp = (
                    (torch.cat([emb, extra], -1) if extra is not None else emb) if layer == 0 else x
                )
                h = torch.gru_cell(
                    inp,
                    h,
                    getattr(self.rnn, f"weight_ih_l{layer}"),
                    getattr(self.rnn, f"weight_hh_l{layer}"),
                    getattr(self.rnn, f"bias_ih_l{layer}"),
                    getattr(self.rnn, f"bias_hh_l{layer}"),
                )
            hs.append(h)
            x = self.layer_dropout(h) if layer + 1 < self.layers else h
        new["h"] = torch.stack(hs, dim=1)  # (B, L, H)
        if cs:
            new["c"] = torch.stack(cs, dim=1)
        return x, new

    # --- one step ----------------------------------------------------------------------------
    def step(
        self,
        emb: Tensor,
        gates_emb: Tensor,
        state: dict[str, Tensor],
        memory: dict[str, Tensor],
        t: int,
        cell_weights: list[tuple[Tensor, Tensor, Tensor]],
    ) -> tuple[Tensor, Tensor | None, Tensor, dict[str, Tensor]]:
        """One recurrent step from E y_{t-1} (B, E): (s_t, c_t) for Bahdanau or (h̃_t, None) for
        Luong, attention weights (B, S) and the new state. `output_vector` finishes the step."""
        keys, values, mask = memory["keys"], memory["values"], memory["mask"]
        if self.bahdanau:
            h = state["h"]  # (B, L, H)
            s_prev = h if self.layers == 1 else h[:, -1:]  # (B, 1, H) top layer s_{t-1}
            context, weights = self.attention(
                s_prev, keys, values, mask, step=t
            )  # (B,1,K), (B,1,S)
            context = context.squeeze(1)  # (B, K)
            s_t, state = self.recur(
                emb, gates_emb, context, state, cell_weights
            )  # s_t = f(s_{t-1}, y_{t-1}, c_t)
            return s_t, context, weights.squeeze(1), state
        h_t, state = self.recur(emb, gates_emb, state.get("feed"), state, cell_weights)  # (B, H)
        context, weights = self.attention(
            h_t[:, None], keys, values, mask, step=t
        )  # (B,1,K), (B,1,S)
        h_tilde = torch.tanh(self.readout(torch.cat([context.squeeze(1), h_t], dim=-1)))  # eq. 5
        if self.input_feed:
            state["feed"] = h_tilde  # Luong 2015, sec. 3.3: h̃_t joins the next input
        return h_tilde, None, weights.squeeze(1), state

    def output_vector(self, out: Tensor, context: Tensor | None, emb: Tensor) -> Tensor:
        """The vector the output layer reads, for one step (B, ·) or all steps (B, T, ·)."""
        if self.bahdanau:
            # Bahdanau 2015, A.2.2: t_i from [s_i; c_i; E y_{i-1}]; it feeds nothing back, so
            # teacher forcing computes it for all steps at once
            out = torch.tanh(self.readout(torch.cat([out, context, emb], dim=-1)))  # (..., H)
        return self.dropout(out)

    # --- all steps (teacher forcing) ---------------------------------------------------------
    def forward(
        self, tgt_in: Tensor, state: dict[str, Tensor], memory: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor]:
        """Pre-softmax vectors (B, T, H) and attention (B, T, S) for a whole target prefix."""
        if isinstance(self.attention, HardAttention):
            self.attention.trace = []  # the samples of this forward only (see nmt.loss)
        if not self.bahdanau and not self.input_feed:
            emb = self.dropout(self.embed(tgt_in))  # (B, T, E)
            out, _ = fused_rnn(self.rnn, emb, self._rnn_hidden(state))  # (B, T, H): one fused call
            context, weights = self.attention(out, memory["keys"], memory["values"], memory["mask"])
            h_tilde = torch.tanh(self.readout(torch.cat([context, out], dim=-1)))  # (B, T, H)
            return self.dropout(h_tilde), weights
        emb, gates_emb = self.embed_gates(tgt_in)  # (B, T, E), (B, T, 4H)
        outs, contexts, weights = [], [], []
        step_weights = self.step_weights(tgt_in.device.type)
        # unbind, not emb[:, t]: the backward of T selects would zero-fill and add T full-size
        # (B, T, .) gradients (O(T^2) memory traffic); unbind's backward stacks them once
        for t, (emb_t, gates_t) in enumerate(zip(emb.unbind(1), gates_emb.unbind(1))):
            out, context, w, state = self.step(emb_t, gates_t, state, memory, t, step_weights)
            outs.append(out)
            contexts.append(context)
            weights.append(w)
        context = torch.stack(contexts, dim=1) if self.bahdanau else None  # (B, T, K)
        out = self.output_vector(torch.stack(outs, dim=1), context, emb)  # (B, T, H)
        return out, torch.stack(weights, dim=1)  # (B, T, H), (B, T, S)


class RNNSeq2Seq(nn.Module):
    """Attention-based RNN translation model (see nmt.models for the shared interface)."""

    def __init__(self, cfg: RNNConfig, att_cfg: AttentionConfig, src_vocab: int, tgt_vocab: int):
        super().__init__()
        self.encoder = Encoder(cfg, src_vocab)
        self.decoder = Decoder(cfg, att_cfg, tgt_vocab, self.encoder.output_size)

    def encode(self, src: Tensor, src_lens: Tensor) -> dict[str, Tensor]:
        enc_out, final = self.encoder(src, src_lens)  # (B, S, K), (B, K)
        if torch.is_autocast_enabled(src.device.type):  # cast once, not at every decoder step
            enc_out = enc_out.to(torch.get_autocast_dtype(src.device.type))
        return {
            "keys": self.decoder.attention.project_keys(enc_out),  # precomputed once per batch
            "values": enc_out,
            "mask": src != PAD,  # (B, S)
            "final": final,
        }

    def init_state(self, memory: dict[str, Tensor]) -> dict[str, Tensor]:
        return self.decoder.init_state(memory["final"])

    def reorder_state(self, state: dict[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
        """The state of hypotheses `rows` (N',): every tensor's rows picked."""
        return {k: v.index_select(0, rows) for k, v in state.items()}

    @property
    def output_layer(self) -> nn.Linear:
        """The output projection to vocabulary logits (Luong eq. 6's W_s)."""
        return self.decoder.output

    def forward(
        self,
        src: Tensor,
        src_lens: Tensor,
        tgt_in: Tensor,
        return_attention: bool = False,
        project: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        memory = self.encode(src, src_lens)
        h_tilde, weights = self.decoder(tgt_in, self.init_state(memory), memory)  # (B,T,H), (B,T,S)
        # logits (B, T, V), one projection for all steps; or the vectors it reads (B, T, H)
        out = self.decoder.output(h_tilde) if project else h_tilde
        return out, (weights if return_attention else None)

    def decode_step(
        self,
        y_prev: Tensor,
        state: dict[str, Tensor],
        memory: dict[str, Tensor],
        step: int,
        need_attention: bool = False,
        vocab: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None, dict[str, Tensor]]:
        emb, gates_emb = self.decoder.embed_gates(y_prev[:, None])  # (N, 1, E), (N, 1, 4H)
        emb, gates_emb = emb[:, 0], gates_emb[:, 0]
        cell_weights = self.decoder.step_weights(y_prev.device.type)
        out, context, weights, state = self.decoder.step(
            emb, gates_emb, state, memory, step, cell_weights
        )
        h_tilde = self.decoder.output_vector(out, context, emb)  # (N, H)
        logits = vocab_logits(self.decoder.output, h_tilde, vocab)  # (N, V) or (N, M)
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        return log_probs, (weights.float() if need_attention else None), state
