"""Vocabulary shortlist for decoding: score only the target pieces a source sentence can need.

Jean et al. 2015 ("On Using Very Large Target Vocabulary for Neural Machine Translation",
sec. 3.2) decode each sentence over a candidate list: the K most frequent target words plus the
K' likeliest translations of every source word under a word-alignment model; Marian's lexical
shortlist (Junczys-Dowmunt et al. 2018, sec. 4.1) is the same list, built with fast_align. Here
the alignment model is eflomal's links of the run's own training pairs at subword level (the
links guided alignment uses, `nmt.data.guided`, cached beside the encoded split), and the list
is built per batch: the union over the batch's source pieces. The output projection, the
normalisation and the search then run over M ids instead of the vocabulary V.

`nmt-shortlist RUN` writes `RUN/shortlist.npz`; `--shortlist FILE` in nmt-translate,
nmt-evaluate and `make bench` decodes with it. Log-probabilities are normalised over the list
(as Jean et al.), so scores differ from a full-vocabulary search even where the output agrees.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nmt.config import ConfigError
from nmt.vocab import EOS

SHORTLIST_VERSION = 1
N_SPECIAL = EOS + 1  # PAD, UNK, BOS, EOS: always in the list, at their own ids (columns)


def tokenizer_digest(tokenizer_dict: dict) -> str:
    """Which tokenizer a shortlist belongs to: a digest of its saved form (`Tokenizer.to_dict`)."""
    h = hashlib.sha1(b"joint" if tokenizer_dict["joint"] else b"pair")
    for side in ("src", "tgt"):
        h.update(bytes(tokenizer_dict[side] or b""))
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Shortlist:
    frequent: np.ndarray  # (F,) int64: the F most frequent target pieces of the training text
    best: np.ndarray  # (V_src, K) int64: per source piece its K likeliest target pieces, -1 pads
    tgt_vocab: int
    tokenizer: str  # tokenizer_digest of the tokenizer it was built with

    def vocab(self, src: Tensor) -> Tensor:
        """The sorted target ids a batch may produce, (M,) long on src's device: the specials
        (so PAD, BOS, EOS keep their ids as columns), the frequent pieces, and the best
        translations of every source piece in `src` (B, S)."""
        pieces = torch.unique(src).cpu().numpy()
        pieces = pieces[(pieces >= N_SPECIAL) & (pieces < len(self.best))]
        cand = self.best[pieces].ravel()
        ids = np.concatenate([np.arange(N_SPECIAL), self.frequent, cand[cand >= 0]])
        return torch.from_numpy(np.unique(ids)).to(src.device)

    def check(self, tgt_vocab: int, tokenizer: str, name: str) -> None:
        if tgt_vocab != self.tgt_vocab or tokenizer != self.tokenizer:
            raise ConfigError(
                f"{name}: this shortlist was built for another model's vocabulary "
                f"({self.tgt_vocab} target pieces, tokenizer {self.tokenizer}; the model has "
                f"{tgt_vocab}, tokenizer {tokenizer}): rebuild it with nmt-shortlist"
            )

    def save(self, path: str | Path) -> Path:
        from nmt.files import atomic_write

        meta = {"version": SHORTLIST_VERSION, "tgt_vocab": self.tgt_vocab}
        meta["tokenizer"] = self.tokenizer

        def write(f) -> None:
            buf = io.BytesIO()
            np.savez(buf, frequent=self.frequent, best=self.best, meta=json.dumps(meta))
            f.write(buf.getvalue())

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> Shortlist:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"--shortlist {path}: no such file (make one with nmt-shortlist)")
        try:
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                frequent, best = z["frequent"].astype(np.int64), z["best"].astype(np.int64)
        except (OSError, ValueError, KeyError) as err:
            why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(
                f"--shortlist {path}: not a shortlist from nmt-shortlist ({why})"
            ) from None
        if meta.get("version") != SHORTLIST_VERSION:
            raise ConfigError(f"--shortlist {path}: version {meta.get('version')}, rebuild it")
        return cls(frequent, best, int(meta["tgt_vocab"]), str(meta["tokenizer"]))


def build_shortlist(
    src,
    tgt,
    links,
    src_vocab: int,
    tgt_vocab: int,
    tokenizer: str,
    frequent: int = 100,
    best: int = 10,
) -> Shortlist:
    """From the encoded training pairs (TokenArrays `src`, `tgt`) and their piece links
    (TokenArray of flat (source position, target position) pairs): the `frequent` most frequent
    target pieces and, per source piece s, the `best` target pieces t with the highest
    p(t | s) = count(s linked to t) / count(s linked), ties by id."""
    tgt_counts = np.bincount(np.asarray(tgt.data, dtype=np.int64), minlength=tgt_vocab)
    tgt_counts[:N_SPECIAL] = 0
    top = np.argsort(-tgt_counts, kind="stable")[:frequent]
    top = top[tgt_counts[top] > 0]
    keys = []
    for i in range(len(links)):
        pairs = np.asarray(links[i], dtype=np.int64).reshape(-1, 2)
        if len(pairs):
            s_ids = np.asarray(src[i], dtype=np.int64)[pairs[:, 0]]
            t_ids = np.asarray(tgt[i], dtype=np.int64)[pairs[:, 1]]
            keys.append(s_ids * tgt_vocab + t_ids)
    table = np.full((src_vocab, best), -1, dtype=np.int64)
    if keys:
        pair, count = np.unique(np.concatenate(keys), return_counts=True)
        s_of, t_of = pair // tgt_vocab, pair % tgt_vocab
        order = np.lexsort((t_of, -count, s_of))  # by source, then most links, then id
        s_sorted, t_sorted = s_of[order], t_of[order]
        first = np.searchsorted(s_sorted, s_sorted, side="left")
        rank = np.arange(len(s_sorted)) - first  # rank of each pair within its source piece
        keep = rank < best
        table[s_sorted[keep], rank[keep]] = t_sorted[keep]
    return Shortlist(top.astype(np.int64), table, tgt_vocab, tokenizer)


def run_folder(checkpoint: Path) -> Path:
    """The run folder of a checkpoint (RUN/checkpoints/X.pt -> RUN)."""
    return (
        checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    )


def shortlist_for_run(
    path: str | Path,
    log: logging.Logger,
    frequent: int = 100,
    best: int = 10,
    symmetrise: str = "grow-diag-final",
) -> Shortlist:
    """The shortlist of a trained run (folder or checkpoint): its training split encoded with its
    own tokenizer (reused from the run folder when there), eflomal's links of those pairs
    (cached beside them), then `build_shortlist`."""
    from nmt.checkpoint import load_checkpoint, resolve_checkpoint
    from nmt.config import to_dataclass
    from nmt.data.guided import training_links
    from nmt.data.prepare import prepare_data
    from nmt.data.tokenizer import Tokenizer

    ckpt_path = resolve_checkpoint(path)
    ckpt = load_checkpoint(ckpt_path)
    cfg = to_dataclass(ckpt["config"])
    run_dir = run_folder(ckpt_path)
    tokenizer = Tokenizer.from_dict(ckpt["tokenizer"])
    data = prepare_data(cfg.data, run_dir, tokenizer, cfg.seed, log)
    folder = Path(data.stats["train_dir"]).parent
    links = training_links(data.train.src, data.train.tgt, tokenizer, folder, symmetrise, log)
    return build_shortlist(
        data.train.src,
        data.train.tgt,
        links,
        tokenizer.src_vocab_size,
        tokenizer.tgt_vocab_size,
        tokenizer_digest(ckpt["tokenizer"]),
        frequent,
        best,
    )


def main(argv: list[str] | None = None) -> int:
    """`nmt-shortlist RUN [-o FILE]`: write the run's vocabulary shortlist (default
    RUN/shortlist.npz) for `nmt-translate --shortlist` / `nmt-evaluate --shortlist`."""
    import argparse

    from nmt.cli import run_main

    parser = argparse.ArgumentParser(prog="nmt-shortlist", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run folder or checkpoint (its training data is re-read)")
    parser.add_argument("-o", "--output", help="default: RUN/shortlist.npz")
    parser.add_argument("--frequent", type=int, default=100, help="most frequent target pieces")
    parser.add_argument("--best", type=int, default=10, help="best translations per source piece")
    parser.add_argument("--symmetrise", default="grow-diag-final", help="eflomal's two directions")
    args = parser.parse_args(argv)

    def body() -> int:
        from nmt.checkpoint import resolve_checkpoint
        from nmt.config import SYMMETRISATIONS

        for flag, value in (("--frequent", args.frequent), ("--best", args.best)):
            if value < 0:
                raise ConfigError(f"{flag} {value}: must be >= 0")
        if args.symmetrise not in SYMMETRISATIONS:
            choices = ", ".join(SYMMETRISATIONS)
            raise ConfigError(f"--symmetrise {args.symmetrise}: one of {choices}")
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        log = logging.getLogger("nmt.shortlist")
        ckpt = resolve_checkpoint(args.run)
        shortlist = shortlist_for_run(ckpt, log, args.frequent, args.best, args.symmetrise)
        out = shortlist.save(args.output or run_folder(ckpt) / "shortlist.npz")
        covered = int((shortlist.best[:, 0] >= 0).sum())
        print(
            f"nmt-shortlist: wrote {out} ({len(shortlist.frequent)} frequent target pieces, up to "
            f"{shortlist.best.shape[1]} per source piece for {covered} source pieces)"
        )
        return 0

    return run_main("nmt-shortlist", body)


if __name__ == "__main__":
    raise SystemExit(main())
