"""CTranslate2 for nmt's Transformer: export a checkpoint, decode with the exported model.

`export_ctranslate2(checkpoint, out_dir)` fills a `ctranslate2.specs.TransformerSpec` with the
checkpoint's weights (our pre- or post-norm Transformer maps one to one: fused Q/K/V for self-
attention, Q and fused K/V for cross-attention, ReLU feed-forward, the sinusoid table as given
position encodings, embeddings scaled by sqrt(d_model), the untied or tied generator) and the
SentencePiece vocabularies (ids 0-3 = <pad>, <unk>, <s>, </s>, as in nmt.vocab), then lets
CTranslate2's `Converter` validate and save it. `nmt.pt` beside it keeps the run's config and
tokenizer, so the exported folder translates raw text exactly as the checkpoint does. With a
vocabulary shortlist (`nmt-shortlist`, nmt.shortlist) the folder also gets CTranslate2's
vocabulary map (`vmap.txt`, `vmap_text`): the same candidate lists, which CTranslate2 unites
over a batch's source pieces and decodes over (`translate_batch(use_vmap=True)`), as nmt's own
shortlist search does.

`CTranslate2Model` decodes ids with `ctranslate2.Translator`: greedy or beam search, the same
length limit as `nmt.decoding` (a * source length + b tokens), int8 or float32 weights. Its
length penalty is CTranslate2's (score / length^alpha), not GNMT's, so beam outputs may differ
from nmt's; greedy outputs are the same model's. RNN checkpoints cannot be exported:
CTranslate2 implements Transformer architectures only.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

from nmt.checkpoint import load_checkpoint, save_checkpoint
from nmt.config import ConfigError, TransformerConfig, to_dataclass
from nmt.data.tokenizer import Tokenizer
from nmt.decoding import Hypothesis, Lengths
from nmt.models.transformer import sinusoid_table
from nmt.runtime import cpu_flags, cpu_vnni
from nmt.shortlist import Shortlist
from nmt.vocab import BOS, EOS, N_SPECIAL, PAD, UNK

META = "nmt.pt"  # config and tokenizer of the exported run
VMAP = "vmap.txt"  # CTranslate2's vocabulary map: where Converter.convert(vmap=...) saves it
COMPUTE_TYPES = {None: "float32", "int8": "int8"}  # --quantize -> CTranslate2 compute type
log = logging.getLogger("nmt")


def choose_gemm_backend() -> None:
    """Use Intel MKL's matmuls in CTranslate2 on an x86 Linux CPU without VNNI.

    CTranslate2 takes MKL on Intel CPUs and oneDNN on the others; oneDNN's int8 kernels without
    VNNI add pairs of u8 x s8 products in saturating 16-bit integers. On a 2-core AMD EPYC with
    AVX2 that changed 55% of a tiny Transformer's greedy outputs against float32, MKL 3%
    (tests/test_ct2.py), and cost a trained one 0.44 beam-5 BLEU, MKL 0.08 (README).
    CTranslate2 reads `CT2_USE_MKL` when it is imported: nmt sets it to 1 before its first
    `import ctranslate2` unless it is set (`CT2_USE_MKL=0` keeps oneDNN).
    """
    if "CT2_USE_MKL" in os.environ or not cpu_flags() or cpu_vnni():
        return  # set by the user; the CPU's flags unknown (no /proc/cpuinfo); or VNNI
    if platform.machine().lower() not in ("x86_64", "amd64") or sys.platform != "linux":
        return  # the x86-64 wheels for Linux include MKL
    if "ctranslate2" in sys.modules:
        log.warning(
            "ctranslate2 was imported before nmt could set CT2_USE_MKL=1: its int8 matmuls may "
            "lose accuracy on this CPU (no VNNI); set CT2_USE_MKL=1 in the environment"
        )
        return
    os.environ["CT2_USE_MKL"] = "1"
    log.info(
        "CTranslate2: Intel MKL matmuls (no VNNI on this CPU: oneDNN's int8 loses accuracy; "
        "MKL's is slower, and nmt's own --quantize int8 faster, here)"
    )


def vocabulary(processor) -> list[str]:
    """Every piece by id; the special ids carry CTranslate2's default token names."""
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    for i, name in ((PAD, "<pad>"), (UNK, "<unk>"), (BOS, "<s>"), (EOS, "</s>")):
        pieces[i] = name
    return pieces


def vmap_text(shortlist: Shortlist, src_pieces: list[str], tgt_pieces: list[str]) -> str:
    """A shortlist as CTranslate2's vocabulary map: one line `source piece<TAB>target pieces`
    per source piece that has candidates, and first the line with the empty key, whose pieces
    are candidates for every batch (the frequent list; CTranslate2 adds <unk>, <s>, </s>)."""
    lines = ["\t" + " ".join(tgt_pieces[t] for t in shortlist.frequent)]
    for s, row in enumerate(shortlist.best[N_SPECIAL:], start=N_SPECIAL):
        listed = row[row >= 0]
        if len(listed):
            lines.append(src_pieces[s] + "\t" + " ".join(tgt_pieces[t] for t in listed))
    for line in lines:
        if len(line.split("\t")) != 2 or "\n" in line or "\r" in line:
            raise ConfigError(f"a piece holds a tab or line break: no vocabulary map ({line!r})")
    return "\n".join(lines) + "\n"


def _transformer_spec(cfg: TransformerConfig, state: dict[str, torch.Tensor], tok: Tokenizer):
    from ctranslate2.converters import utils
    from ctranslate2.specs import common_spec, transformer_spec

    spec = transformer_spec.TransformerSpec.from_config(
        (cfg.enc_layers, cfg.dec_layers),
        cfg.heads,
        pre_norm=cfg.pre_norm,
        activation=common_spec.Activation.RELU,
    )
    spec.config.add_source_eos = True  # nmt appends EOS to every source
    spec.config.layer_norm_epsilon = 1e-5  # nn.LayerNorm's default
    np = {k: v.detach().float().numpy() for k, v in state.items()}

    def linear(target, name: str) -> None:
        target.weight = np[f"{name}.weight"]
        if f"{name}.bias" in np:
            target.bias = np[f"{name}.bias"]

    def norm(target, name: str) -> None:
        target.gamma, target.beta = np[f"{name}.weight"], np[f"{name}.bias"]

    def fused(target, names: list[str]) -> None:
        parts = [common_spec.LinearSpec() for _ in names]
        for part, name in zip(parts, names):
            linear(part, name)
        utils.fuse_linear(target, parts)

    def attention(target, name: str, self_attention: bool) -> None:
        if self_attention:  # one fused Q/K/V projection
            fused(target.linear[0], [f"{name}.{p}_proj" for p in "qkv"])
        else:  # queries from the decoder, fused K/V from the encoder output
            linear(target.linear[0], f"{name}.q_proj")
            fused(target.linear[1], [f"{name}.k_proj", f"{name}.v_proj"])
        linear(target.linear[-1], f"{name}.out_proj")

    def ffn(target, name: str, norm_name: str) -> None:
        norm(target.layer_norm, norm_name)
        linear(target.linear_0, f"{name}.fc1")
        linear(target.linear_1, f"{name}.fc2")

    table = sinusoid_table(torch.arange(cfg.max_positions), cfg.d_model).numpy()
    spec.encoder.embeddings[0].weight = np["src_embed.weight"]
    spec.encoder.position_encodings.encodings = table
    spec.decoder.embeddings.weight = np["tgt_embed.weight"]
    spec.decoder.position_encodings.encodings = table
    spec.encoder.scale_embeddings = spec.decoder.scale_embeddings = True  # x sqrt(D)
    if cfg.pre_norm:
        norm(spec.encoder.layer_norm, "enc_norm")
        norm(spec.decoder.layer_norm, "dec_norm")
    for i, layer in enumerate(spec.encoder.layer):
        attention(layer.self_attention, f"encoder.{i}.self_attn", True)
        norm(layer.self_attention.layer_norm, f"encoder.{i}.norm1")
        ffn(layer.ffn, f"encoder.{i}.ff", f"encoder.{i}.norm2")
    for i, layer in enumerate(spec.decoder.layer):
        attention(layer.self_attention, f"decoder.{i}.self_attn", True)
        norm(layer.self_attention.layer_norm, f"decoder.{i}.norm1")
        attention(layer.attention, f"decoder.{i}.cross_attn", False)
        norm(layer.attention.layer_norm, f"decoder.{i}.norm2")
        ffn(layer.ffn, f"decoder.{i}.ff", f"decoder.{i}.norm3")
    linear(spec.decoder.projection, "generator")
    spec.register_source_vocabulary(vocabulary(tok.src))
    spec.register_target_vocabulary(vocabulary(tok.tgt))
    return spec


def export_ctranslate2(
    checkpoint: str | Path,
    out_dir: str | Path,
    force: bool = False,
    shortlist: str | Path | None = None,
) -> Path:
    """Write the checkpoint's Transformer as a CTranslate2 model folder (plus `nmt.pt`, and
    `vmap.txt` from a shortlist file). ConfigError (one line) for an RNN checkpoint, an existing
    folder without `force`, or a shortlist of another model's vocabulary."""
    choose_gemm_backend()
    from ctranslate2.converters.converter import Converter

    ckpt = load_checkpoint(checkpoint, require=("config", "tokenizer", "model"))
    cfg = to_dataclass(ckpt["config"])
    if not isinstance(cfg.model, TransformerConfig):
        raise ConfigError(
            f"{checkpoint}: an RNN model (model.arch={cfg.model.arch}); CTranslate2 runs "
            "Transformer models only, so only a Transformer checkpoint can be exported"
        )
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise ConfigError(f"{out_dir}: exists and is not empty (use --force to overwrite)")
    tok = Tokenizer.from_dict(ckpt["tokenizer"])
    vmap = None
    if shortlist is not None:
        listed = Shortlist.for_model(shortlist, tok)
        vmap = vmap_text(listed, vocabulary(tok.src), vocabulary(tok.tgt))

    class _NmtConverter(Converter):
        def _load(self):
            return _transformer_spec(cfg.model, ckpt["model"], tok)

    with tempfile.TemporaryDirectory() as tmp:
        vmap_file = None
        if vmap is not None:
            vmap_file = Path(tmp) / VMAP
            vmap_file.write_text(vmap, encoding="utf-8")
        _NmtConverter().convert(str(out_dir), vmap=vmap_file and str(vmap_file), force=True)
    save_checkpoint(out_dir / META, {"config": ckpt["config"], "tokenizer": ckpt["tokenizer"]})
    return out_dir


class CTranslate2Model:
    """An exported folder loaded in `ctranslate2.Translator`; decodes source ids like
    `nmt.decoding.decode_corpus` (no attention weights)."""

    def __init__(
        self,
        folder: str | Path,
        src_vocab: list[str],
        tgt_vocab: list[str],
        quantize: str | None = None,
        threads: int = 0,
        use_vmap: bool = False,
    ):
        """`src_vocab`, `tgt_vocab`: the pieces by id, as `vocabulary` gives them (sources are
        given to CTranslate2 as pieces, outputs map back to ids). `use_vmap`: decode over the
        folder's vocabulary map (`vmap.txt`). `threads` (0: torch's): CTranslate2 runs that
        many batches at once, one thread each (`inter_threads`, the model's weights shared),
        its documented setting for throughput on a CPU; `translate_ids` submits every batch
        before it waits for the first."""
        choose_gemm_backend()
        import ctranslate2

        self.src_vocab = src_vocab
        self.index = {p: i for i, p in enumerate(tgt_vocab)}
        self.use_vmap = use_vmap
        torch_threads = torch.get_num_threads()
        self.translator = ctranslate2.Translator(
            str(folder),
            device="cpu",
            compute_type=COMPUTE_TYPES[quantize],
            inter_threads=threads or torch_threads,
            intra_threads=1,
        )
        # Loading sets the process's OpenMP thread count, which torch shares, to intra_threads:
        # torch (and so the next model loaded here, `make bench --decode-deploy`'s second
        # CTranslate2 target) would run on 1 thread. CTranslate2's workers keep their own count.
        torch.set_num_threads(torch_threads)

    def translate_ids(
        self,
        sources: list[list[int]],
        beam: int,
        length_penalty: float,
        lengths: Lengths,
        batch_size: int,
    ) -> list[Hypothesis]:
        """One Hypothesis per source (ids without EOS)."""
        pieces, index = self.src_vocab, self.index
        lens = torch.tensor([len(ids) + 1 for ids in sources])  # + EOS, as nmt counts
        limits = lengths.limits(lens).tolist() if sources else []
        # length-sorted batches, each with its own length limit (CTranslate2 takes one per call,
        # and a batch runs until its longest hypothesis stops), as nmt.decoding.decode_corpus
        order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
        size = max(1, batch_size)
        chunks = [order[i : i + size] for i in range(0, len(order), size)]
        pending = [  # every batch queued at once, so that each of CTranslate2's workers has one
            self.translator.translate_batch(
                [[pieces[i] for i in sources[k]] for k in chunk],
                beam_size=beam,
                length_penalty=length_penalty,
                max_decoding_length=max(limits[k] for k in chunk),
                min_decoding_length=lengths.min_len,
                return_scores=True,
                suppress_sequences=[["<pad>"], ["<s>"]],  # never generated, as in nmt.decoding
                use_vmap=self.use_vmap,
                asynchronous=True,
            )
            for chunk in chunks
        ]
        hyps: list[Hypothesis | None] = [None] * len(sources)
        for chunk, results in zip(chunks, pending):
            for k, async_result in zip(chunk, results):
                result = async_result.result()
                ids = [index.get(p, UNK) for p in result.hypotheses[0]][: limits[k] - 1]
                score = float(result.scores[0]) if result.scores else 0.0
                hyps[k] = Hypothesis(ids, score, None)
        return hyps  # type: ignore[return-value]


def read_export(folder: str | Path) -> dict:
    """The config and tokenizer an exported folder was written with (`nmt.pt`)."""
    path = Path(folder) / META
    if not path.is_file():
        raise ConfigError(
            f"{folder}: not an exported CTranslate2 model (no {META}; see nmt-export)"
        )
    return load_checkpoint(path, require=("config", "tokenizer"))


def check_vmap(folder: str | Path, shortlist: Shortlist, tok: Tokenizer, path: str | Path) -> None:
    """ConfigError (naming the shortlist file `path`) unless the folder's vocabulary map is
    this shortlist's."""
    vmap = Path(folder) / VMAP
    have = vmap.read_text(encoding="utf-8") if vmap.is_file() else None
    if have != vmap_text(shortlist, vocabulary(tok.src), vocabulary(tok.tgt)):
        why = "has no vocabulary map" if have is None else "was exported with another shortlist"
        raise ConfigError(
            f"--shortlist {path}: {folder} {why}; export it with nmt-export --shortlist {path}"
        )
