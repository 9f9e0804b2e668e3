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

import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nmt.checkpoint import run_folder
from nmt.config import SYMMETRISATIONS, ConfigError
from nmt.runtime import StderrHandler
from nmt.vocab import N_SPECIAL

SHORTLIST_VERSION = 1


@dataclass(frozen=True)
class Shortlist:
    """Per source piece its likeliest target pieces, and the most frequent target pieces, for
    one model's vocabulary (`tokenizer`: `nmt.data.stream.tokenizer_digest` of its tokenizer).
    The specials (ids below N_SPECIAL) are always listed, at their own ids: the search masks
    PAD, BOS and EOS by column and needs them where they are."""

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
        """ConfigError (naming `name`) unless the list was built for this vocabulary."""
        if tgt_vocab != self.tgt_vocab or tokenizer != self.tokenizer:
            raise ConfigError(
                f"{name}: this shortlist was built for another model's vocabulary "
                f"({self.tgt_vocab} target pieces, tokenizer {self.tokenizer}; the model has "
                f"{tgt_vocab}, tokenizer {tokenizer}): rebuild it with nmt-shortlist"
            )

    @classmethod
    def for_model(cls, path: str | Path, tokenizer) -> Shortlist:
        """`load`, then `check` against the model's tokenizer (ConfigError naming the file)."""
        from nmt.data.stream import tokenizer_digest

        shortlist = cls.load(path)
        shortlist.check(
            tokenizer.tgt_vocab_size, tokenizer_digest(tokenizer), f"--shortlist {path}"
        )
        return shortlist

    def save(self, path: str | Path) -> Path:
        """Write it as .npz (atomically); `load` reads it back."""
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
        """The shortlist `save` wrote; ConfigError (one line naming the file) for anything else."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"--shortlist {path}: no such file (make one with nmt-shortlist)")
        try:
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                frequent, best = z["frequent"].astype(np.int64), z["best"].astype(np.int64)
            version, tgt_vocab, digest = meta["version"], int(meta["tgt_vocab"]), meta["tokenizer"]
        except Exception as err:  # a zip, .npy, pickle or JSON problem: all "not a shortlist"
            why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError(
                f"--shortlist {path}: not a shortlist from nmt-shortlist ({why})"
            ) from None
        if version != SHORTLIST_VERSION:
            raise ConfigError(f"--shortlist {path}: version {version}, rebuild it")
        ids = np.concatenate([frequent, best.ravel()]) if best.ndim == 2 else None
        if ids is None or frequent.ndim != 1 or (ids < -1).any() or (ids >= tgt_vocab).any():
            raise ConfigError(f"--shortlist {path}: ids outside the {tgt_vocab}-piece vocabulary")
        return cls(frequent, best, tgt_vocab, str(digest))


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
    # every link at once: sentence k's link (i, j) reads src[k][i] and tgt[k][j]
    pairs = np.asarray(links.data, dtype=np.int64).reshape(-1, 2)  # (L, 2) positions
    sentence = np.repeat(np.arange(len(links)), links.lengths // 2)  # (L,)
    s_ids = np.asarray(src.data, dtype=np.int64)[src.offsets[sentence] + pairs[:, 0]]
    t_ids = np.asarray(tgt.data, dtype=np.int64)[tgt.offsets[sentence] + pairs[:, 1]]
    table = np.full((src_vocab, best), -1, dtype=np.int64)
    if len(pairs):
        pair, count = np.unique(s_ids * tgt_vocab + t_ids, return_counts=True)
        s_of, t_of = pair // tgt_vocab, pair % tgt_vocab
        order = np.lexsort((t_of, -count, s_of))  # by source, then most links, then id
        s_sorted, t_sorted = s_of[order], t_of[order]
        first = np.searchsorted(s_sorted, s_sorted, side="left")
        rank = np.arange(len(s_sorted)) - first  # rank of each pair within its source piece
        keep = rank < best
        table[s_sorted[keep], rank[keep]] = t_sorted[keep]
    return Shortlist(top.astype(np.int64), table, tgt_vocab, tokenizer)


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
    from nmt.data.stream import tokenizer_digest
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
        tokenizer_digest(tokenizer),
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
    parser.add_argument(
        "--symmetrise",
        default="grow-diag-final",
        choices=list(SYMMETRISATIONS),
        help="how eflomal's two directions are combined",
    )
    args = parser.parse_args(argv)

    def body() -> int:
        from nmt.checkpoint import resolve_checkpoint

        if args.frequent < 0:
            raise ConfigError(f"--frequent {args.frequent}: must be >= 0")
        if args.best < 1:
            raise ConfigError(f"--best {args.best}: must be >= 1")
        log = logging.getLogger("nmt.shortlist")
        if not log.handlers:  # its own, not the root logger's (a library caller keeps its own)
            handler = StderrHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            log.addHandler(handler)
            log.setLevel(logging.INFO)
            log.propagate = False
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
