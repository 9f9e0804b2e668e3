"""The sentence explorer of report.html: which runs, which sentences, which hypotheses.

One system per configuration: its seed with the best dev BLEU (as in the attention grid), loaded
from checkpoints/best.pt. Without gold alignments the sentences are the test split of the first
system that has one, with each system's test.hyp; systems on another test set, or without
test.hyp or a checkpoint, are left out with a note. With a gold folder (`--gold`, laid out like
../shared/data/rwth-align-de-en: test.<lang> per side and alignment.talp) the sentences are the
gold test set in the first system's direction, which every system of that direction translates
here; the gold view of `nmt.explore.data` is added.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nmt.report.groups import Group
from nmt.report.references import HYP_FILE, NoTestData, data_config, read_test_split

GOLD_FILE = "alignment.talp"


def _checkpoint(run_path: Path) -> Path | None:
    from nmt.checkpoint import resolve_checkpoint

    try:
        return resolve_checkpoint(run_path)
    except Exception:  # no checkpoint: the system is left out with a note
        return None


def _test_set(group: Group) -> tuple[list[str], list[str]] | str:
    """The (sources, references) of the run's test split, or why there are none."""
    try:
        return read_test_split(data_config(group.best_run()))
    except NoTestData as err:
        return str(err)
    except Exception as err:  # missing files, no network for a hub dataset
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


def read_gold(folder: Path, src_lang: str, tgt_lang: str, gold_order: str):
    """Sources, references and gold links of a gold folder, in the src -> tgt direction."""
    from nmt.align.common import AlignError
    from nmt.align.gold import gold_is_flipped, read_talp
    from nmt.data.corpus import read_lines

    paths = [folder / f"test.{src_lang}", folder / f"test.{tgt_lang}", folder / GOLD_FILE]
    for p in paths:
        if not p.is_file():
            raise AlignError(f"--gold {folder}: no {p.name} (need test.{src_lang}, "
                             f"test.{tgt_lang} and {GOLD_FILE})")  # fmt: skip
    try:
        gold = read_talp(paths[2])
    except AlignError as err:
        raise AlignError(f"{paths[2]}: {err}") from None
    if gold_is_flipped(gold_order, src_lang, tgt_lang):
        gold = gold.flipped()
    return read_lines(paths[0]), read_lines(paths[1]), gold


def gold_method(metrics: dict[str, Any] | None) -> str | None:
    """The gold view's method for a run: the read-out of the `aer_method` that nmt.align.sweep
    chose for it (symmetrised methods need the reverse model, so its argmax); None without."""
    chosen = (metrics or {}).get("aer_method")
    if not isinstance(chosen, str):
        return None
    from nmt.align.links import method_name, method_readout

    return method_name("argmax", method_readout(chosen))


def report_explorer(
    groups: list[Group],
    device: str = "cpu",
    max_sentences: int | None = None,
    gold_dir: str | Path | None = None,
    gold_order: str = "de-en",
) -> tuple[dict[str, Any] | None, list[str]]:
    """The explorer data for the report, and notes on what was left out."""
    import torch

    from nmt.explore.data import System, explorer_data
    from nmt.translate import Translator

    notes: list[str] = []
    chosen: list[tuple[Group, Path]] = []
    for g in groups:
        ckpt = _checkpoint(g.best_run().path)
        if ckpt is None:
            notes.append(f"{g.label}: no checkpoint, not in the explorer.")
        elif gold_dir is None and not (g.best_run().path / HYP_FILE).is_file():
            notes.append(f"{g.label}: no {HYP_FILE}, not in the explorer.")
        else:
            chosen.append((g, ckpt))
    if not chosen:
        return None, notes
    translators = {id(g): Translator(ckpt, device) for g, ckpt in chosen}
    systems: list[Any] = []
    if gold_dir is not None:
        first = translators[id(chosen[0][0])].cfg.data
        direction = (first.src_lang, first.tgt_lang)
        sources, references, gold = read_gold(Path(gold_dir), *direction, gold_order)
        for g, _ in chosen:
            d = translators[id(g)].cfg.data
            if (d.src_lang, d.tgt_lang) != direction:
                notes.append(f"{g.label}: {d.src_lang}-{d.tgt_lang}, not the explorer's "
                             f"{'-'.join(direction)}; left out.")  # fmt: skip
                continue
            anchor = f"run-{groups.index(g) + 1}"
            method = gold_method(g.best_run().metrics)
            systems.append(System(g.label, translators[id(g)], None, anchor, method))
    else:
        gold = None
        test = _test_set(chosen[0][0])
        if isinstance(test, str):
            return None, notes + [f"explorer: no test set ({test})."]
        sources, references = test
        for g, _ in chosen:
            hyps = (g.best_run().path / HYP_FILE).read_text(encoding="utf-8").splitlines()
            same = g is chosen[0][0] or _test_set(g) == test  # the first one was just read
            if len(hyps) != len(sources) or not same:
                notes.append(f"{g.label}: another test set than {chosen[0][0].label}; left out.")
                continue
            systems.append(System(g.label, translators[id(g)], hyps, f"run-{groups.index(g) + 1}"))
    n = len(sources) if max_sentences is None else min(max_sentences, len(sources))
    if gold is not None:
        gold = gold.head(n)
    for s in systems:
        s.hypotheses = s.hypotheses[:n] if s.hypotheses is not None else None
    with torch.no_grad():
        data = explorer_data(systems, sources[:n], references[:n], gold)
    return data, notes
