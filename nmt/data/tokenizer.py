"""SentencePiece subword tokenizers for the source and target side (joint or separate).

Special ids are fixed for every model (`nmt.vocab`: PAD=0, UNK=1, BOS=2, EOS=3) and are
re-exported here. Encoding never adds BOS/EOS; `nmt.data.batching.collate` frames sequences.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import sentencepiece as spm

from nmt.files import atomic_write
from nmt.vocab import BOS, EOS, EOS_PIECE, PAD, UNK

__all__ = ["BOS", "EOS", "EOS_PIECE", "MODEL_TYPES", "PAD", "UNK", "Tokenizer"]

MODEL_TYPES = ("unigram", "bpe", "word", "char")
JOINT_FILE = "spm.model"
SRC_FILE = "spm.src.model"
TGT_FILE = "spm.tgt.model"


def _sample(lines: Sequence[str], max_lines: int, seed: int) -> Sequence[str]:
    """At most `max_lines` of `lines`, drawn without replacement (order kept)."""
    if len(lines) <= max_lines:
        return lines
    keep = np.sort(np.random.default_rng(seed).choice(len(lines), size=max_lines, replace=False))
    return [lines[i] for i in keep]


def _train_one(
    lines: Sequence[str], model_type: str, vocab_size: int, max_lines: int, seed: int
) -> bytes:
    """Train one SentencePiece model on `lines` and return its serialized proto."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type={model_type!r} is not one of {', '.join(MODEL_TYPES)}")
    # SentencePiece rejects 1..100 for input_sentence_size; sample small limits here instead.
    if max_lines <= 100:
        lines, size = _sample(lines, max(max_lines, 1), seed), 0
    else:
        size = max_lines
    nonblank: Iterator[str] = (line for line in lines if line.strip())
    spm.set_random_generator_seed(seed)
    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=nonblank,
        model_writer=writer,
        model_type=model_type,
        vocab_size=vocab_size,
        pad_id=PAD,
        unk_id=UNK,
        bos_id=BOS,
        eos_id=EOS,
        hard_vocab_limit=False,
        character_coverage=1.0,
        input_sentence_size=size,
        shuffle_input_sentence=True,
        num_threads=2,
        train_extremely_large_corpus=False,
        minloglevel=2,
    )
    return writer.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write bytes to `path` atomically (a reader never sees half a model)."""
    atomic_write(path, lambda f: f.write(data))


class Tokenizer:
    """Source and target SentencePiece processors (`src is tgt` when the vocabulary is joint)."""

    def __init__(self, src_proto: bytes, tgt_proto: bytes | None = None) -> None:
        """Build from serialized models; `tgt_proto=None` means one joint model."""
        self.joint = tgt_proto is None
        self._src_proto = src_proto
        self._tgt_proto = src_proto if tgt_proto is None else tgt_proto
        self.src = spm.SentencePieceProcessor(model_proto=src_proto)
        self.tgt = (
            self.src if self.joint else spm.SentencePieceProcessor(model_proto=self._tgt_proto)
        )

    # --- construction -------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        src_lines: Sequence[str],
        tgt_lines: Sequence[str],
        model_type: str,
        vocab_size: int,
        joint: bool,
        out_dir: Path | str,
        max_lines: int,
        seed: int = 1,
    ) -> Tokenizer:
        """Train on the training split and save `spm.model` or `spm.{src,tgt}.model` in `out_dir`.

        `vocab_size` is a soft limit (small corpora get fewer pieces); at most `max_lines`
        sentences (per model) are sampled for training.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if joint:
            both = list(src_lines) + list(tgt_lines)
            tok = cls(_train_one(both, model_type, vocab_size, max_lines, seed))
        else:
            tok = cls(
                _train_one(src_lines, model_type, vocab_size, max_lines, seed),
                _train_one(tgt_lines, model_type, vocab_size, max_lines, seed),
            )
        tok.save(out_dir)
        return tok

    def save(self, out_dir: Path | str) -> None:
        """Write the model file(s) into `out_dir`."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if self.joint:
            _write_atomic(out_dir / JOINT_FILE, self._src_proto)
        else:
            _write_atomic(out_dir / SRC_FILE, self._src_proto)
            _write_atomic(out_dir / TGT_FILE, self._tgt_proto)

    @classmethod
    def load(cls, directory: Path | str) -> Tokenizer:
        """Load from `spm.model` (joint) or `spm.src.model` + `spm.tgt.model` in `directory`."""
        directory = Path(directory)
        if (directory / JOINT_FILE).is_file():
            return cls((directory / JOINT_FILE).read_bytes())
        src, tgt = directory / SRC_FILE, directory / TGT_FILE
        if src.is_file() and tgt.is_file():
            return cls(src.read_bytes(), tgt.read_bytes())
        raise FileNotFoundError(
            f"no tokenizer in {directory}: expected {JOINT_FILE} or {SRC_FILE} + {TGT_FILE}"
        )

    def to_dict(self) -> dict[str, bytes | bool]:
        """Plain data for a `weights_only` checkpoint: {"joint", "src", "tgt"}."""
        return {"joint": self.joint, "src": self._src_proto, "tgt": self._tgt_proto}

    @classmethod
    def from_dict(cls, d: dict) -> Tokenizer:
        """Inverse of `to_dict`."""
        src = bytes(d["src"])
        return cls(src) if d["joint"] else cls(src, bytes(d["tgt"]))

    # --- vocabulary ---------------------------------------------------------------------
    @property
    def src_vocab_size(self) -> int:
        """Number of source pieces, special symbols included."""
        return self.src.get_piece_size()

    @property
    def tgt_vocab_size(self) -> int:
        """Number of target pieces, special symbols included."""
        return self.tgt.get_piece_size()

    # --- encoding / decoding ------------------------------------------------------------
    def encode_src(self, lines: list[str]) -> list[list[int]]:
        """Source ids per line, without BOS/EOS."""
        return self.src.encode(list(lines), out_type=int)

    def encode_tgt(self, lines: list[str]) -> list[list[int]]:
        """Target ids per line, without BOS/EOS."""
        return self.tgt.encode(list(lines), out_type=int)

    def decode_tgt(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Detokenize target id sequences: stop at the first EOS, skip PAD and BOS."""
        clean = []
        for seq in ids:
            out = []
            for i in seq:
                i = int(i)
                if i == EOS:
                    break
                if i not in (PAD, BOS):
                    out.append(i)
            clean.append(out)
        return self.tgt.decode(clean)

    def decode_src(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Detokenize source id sequences like `decode_tgt`."""
        clean = [[int(i) for i in seq if int(i) not in (PAD, BOS, EOS)] for seq in ids]
        return self.src.decode(clean)

    def src_pieces(self, line: str) -> list[str]:
        """The source subword pieces of one line (no EOS), e.g. for attention plot labels."""
        return self.src.encode(line, out_type=str)

    def tgt_pieces(self, line: str) -> list[str]:
        """The target subword pieces of one line (no EOS)."""
        return self.tgt.encode(line, out_type=str)

    def src_pieces_from_ids(self, ids: Sequence[int]) -> list[str]:
        """The source piece of every id as given."""
        return [self.src.id_to_piece(int(i)) for i in ids]

    def src_pieces_with_eos(
        self, source: str | Sequence[int], limit: int | None = None
    ) -> list[str]:
        """Labels of the source positions a model attends over: pieces, cut to `limit`, then `</s>`.

        `source` is a line (split as SentencePiece splits it, characters outside the vocabulary
        kept as written, which reads better in plots) or source ids (the piece of every id,
        unknown ones as `<unk>`). The model appends EOS to every source, hence the last label.
        """
        pieces = (
            self.src_pieces(source) if isinstance(source, str) else self.src_pieces_from_ids(source)
        )
        return pieces[:limit] + [EOS_PIECE]

    def tgt_pieces_from_ids(self, ids: Sequence[int]) -> list[str]:
        """The target piece of every id as given (special ids map to `<pad>`, `<s>`, `</s>`)."""
        return [self.tgt.id_to_piece(int(i)) for i in ids]
