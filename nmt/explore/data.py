"""What the explorer page shows, computed once in Python and embedded in the page as JSON.

For every system (a checkpoint) and sentence: the hypothesis (given, e.g. a run's test.hyp, or
translated here with the checkpoint's decode settings), its sentence-level chrF and BLEU against
the reference (sacreBLEU), and the attention the model pays while it produces it. The attention
is read by forced decoding of the hypothesis (`nmt.align.forced.forced_attention_all`): the
decoder is deterministic given the source and the prefix, so this is the attention of the
search's own path, up to SentencePiece re-encoding the hypothesis text canonically. A
Transformer keeps every layer and head (the page averages heads or picks one).

With gold alignments (`gold`): every system's attention over the *reference* (forced decoding,
the read-out of `method`, at the word level of the gold text, as `nmt-align` scores it), the
model's links, the gold sure and possible links and the sentence's AER.

Compact storage: a weight w in [0, 1] is stored as one byte round(255 w) (error at most 0.002,
invisible in a heatmap), all matrices of a system in one bytes object (`att`, `gatt`; the page
packs and deflates them, `nmt.explore.page`); a sentence entry holds its offset. A Transformer
stores L x heads matrices per sentence, layer-major.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nmt.align.common import AlignError
from nmt.align.forced import forced_attention_all, model_alignments
from nmt.align.gold import GoldAlignment, check_bounds
from nmt.align.links import method_readout, score_alignments
from nmt.pieces import merge_pieces, piece_word_ids

if TYPE_CHECKING:
    from nmt.translate import Translator

LEVELS = 255  # one byte per weight
# The gold view's extraction method (see nmt.align): the plain read-out, the row that predicts
# the word (Luong 2015), which guided alignment also trains; "shift-att argmax" for Shift-Att.
DEFAULT_METHOD = "argmax"


@dataclass
class System:
    """One checkpoint on the page: its name, its model, and (optionally) its hypotheses."""

    name: str
    translator: Translator
    hypotheses: list[str] | None = None  # None: translate the sources with the checkpoint
    details: str = ""  # anchor of the system's details on the page ("" for none)
    method: str | None = None  # the gold view's extraction method; None: explorer_data's


def quantise(weights: np.ndarray) -> bytes:
    """Weights in [0, 1] as bytes round(255 w), C order."""
    return np.clip(np.rint(np.asarray(weights) * LEVELS), 0, LEVELS).astype(np.uint8).tobytes()


def dequantise(data: bytes, shape: Sequence[int]) -> np.ndarray:
    """The inverse of `quantise` (for tests and readers of the page data)."""
    return np.frombuffer(data, dtype=np.uint8).reshape(shape).astype(np.float32) / LEVELS


def sentence_scores(hyp: str, ref: str) -> tuple[float, float]:
    """Sentence-level chrF and BLEU (sacreBLEU defaults; BLEU with exponential smoothing)."""
    from sacrebleu import sentence_bleu, sentence_chrf

    return round(sentence_chrf(hyp, [ref]).score, 2), round(sentence_bleu(hyp, [ref]).score, 2)


def _pieces(translator: Translator, src: str, hyp: str) -> tuple[list[str], list[str]]:
    """The source labels (pieces, cut to the model's limit, then `</s>`) and the hypothesis
    pieces then `</s>`: the columns and rows of the forced attention."""
    tgt = translator.tokenizer.tgt_pieces(translator.prepare(hyp)) if hyp.strip() else []
    return translator.source_labels(src), list(tgt) + ["</s>"]


def _words(pieces: list[str]) -> dict[str, list]:
    """Pieces, the word each belongs to, and the words (`nmt.pieces`)."""
    return {"pieces": pieces, "ids": piece_word_ids(pieces), "words": merge_pieces(pieces)}


def hypothesis_view(
    system: System, sources: list[str], references: list[str] | None, batch_size: int
) -> tuple[list[dict[str, Any]], bytes, list[str]]:
    """Per sentence: the hypothesis, its scores, its pieces and words and the offset of its
    attention in the returned bytes; and the hypotheses."""
    tr = system.translator
    hyps = system.hypotheses
    if hyps is None:
        hyps, _ = tr.translate(sources)
    if len(hyps) != len(sources):
        raise AlignError(f"{system.name}: {len(hyps)} hypotheses for {len(sources)} sources")
    att = forced_attention_all(tr, sources, hyps, batch_size)
    blob = bytearray()
    entries = []
    for i, (src, hyp, a) in enumerate(zip(sources, hyps, att)):
        src_p, tgt_p = _pieces(tr, src, hyp)
        if a.ndim == 4:  # (T, L, heads, S) -> (L, heads, T, S): one matrix after another
            a = a.transpose(1, 2, 0, 3)
        if a.shape[-2:] != (len(tgt_p), len(src_p)):
            raise AlignError(
                f"{system.name}, sentence {i + 1}: attention {a.shape[-2:]} does not match "
                f"{len(tgt_p)} target and {len(src_p)} source pieces"
            )
        entry: dict[str, Any] = {"hyp": hyp, "src": _words(src_p), "tgt": _words(tgt_p)}
        if references is not None:
            entry["chrf"], entry["bleu"] = sentence_scores(hyp, references[i])
        entry["off"] = len(blob)
        blob += quantise(a)
        entries.append(entry)
    return entries, bytes(blob), list(hyps)


def gold_view(
    system: System,
    sources: list[str],
    references: list[str],
    gold: GoldAlignment,
    method: str,
    layer: int,
    batch_size: int,
) -> tuple[list[dict[str, Any] | None], bytes, dict[str, float]]:
    """Per sentence: the model's links, the sentence AER and the offset of the word-level
    attention over the reference (None where the pieces do not spell the gold's words); and the
    corpus-level scores of `method`."""
    tr = system.translator
    found = model_alignments(
        tr, sources, references, layer=layer, batch_size=batch_size, keep_words=range(len(sources))
    )
    if method not in found.links:
        raise AlignError(
            f"unknown alignment method {method!r}; choose from: {', '.join(sorted(found.links))}"
        )
    readout = method_readout(method)
    blob = bytearray()
    entries: list[dict[str, Any] | None] = []
    for k, links in enumerate(found.links[method]):
        words = found.words.get(k)
        if words is None:
            entries.append(None)
            continue
        one = score_alignments([links], [gold.sure[k]], [gold.possible[k]])
        entries.append(
            {"links": sorted(links), "aer": round(one["aer"], 4), "off": len(blob)}
        )  # links: (source word, target word)
        blob += quantise(words[readout])  # (T words, S words)
    return entries, bytes(blob), score_alignments(found.links[method], gold.sure, gold.possible)


def _system_info(system: System) -> dict[str, Any]:
    cfg = system.translator.cfg
    arch = cfg.model.arch
    info: dict[str, Any] = {"name": system.name, "arch": arch, "details": system.details}
    if arch == "transformer":
        info["layers"], info["heads"] = cfg.model.dec_layers, cfg.model.heads
    else:
        info["mechanism"] = cfg.attention.type
    return info


def disagreement(systems: list[dict[str, Any]], n: int) -> list[float | None]:
    """Per sentence, the spread (max - min) of the systems' sentence chrF; None without
    references or with fewer than two systems."""
    out: list[float | None] = []
    for i in range(n):
        scores = [s["sentences"][i].get("chrf") for s in systems]
        scores = [x for x in scores if x is not None]
        out.append(round(max(scores) - min(scores), 2) if len(scores) > 1 else None)
    return out


def explorer_data(
    systems: list[System],
    sources: list[str],
    references: list[str] | None = None,
    gold: GoldAlignment | None = None,
    method: str = DEFAULT_METHOD,
    layer: int = -1,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Everything the sentence explorer shows, as JSON-ready data (see the module docstring).

    `gold` links are (source word, target word) of the whitespace words of `sources` and
    `references`, 0-based."""
    if not systems:
        raise AlignError("no systems to explore")
    if references is not None and len(references) != len(sources):
        raise AlignError(f"{len(sources)} source but {len(references)} reference lines")
    if gold is not None:
        if references is None:
            raise AlignError("gold alignments need the references they link")
        if len(gold) != len(sources):
            raise AlignError(f"{len(sources)} source lines but {len(gold)} gold alignment lines")
        check_bounds(gold, [len(s.split()) for s in sources], [len(t.split()) for t in references])
    out_systems = []
    for system in systems:
        entries, blob, _ = hypothesis_view(system, sources, references, batch_size)
        info = _system_info(system) | {"sentences": entries, "att": blob}
        if gold is not None and references is not None:
            used = system.method or method
            g_entries, g_blob, scores = gold_view(
                system, sources, references, gold, used, layer, batch_size
            )
            info |= {"gold": g_entries, "gatt": g_blob, "aer": round(scores["aer"], 4)}
            info["method"] = used
        out_systems.append(info)
    data: dict[str, Any] = {
        "sources": sources,
        "references": references,
        "systems": out_systems,
        "spread": disagreement(out_systems, len(sources)),
        "levels": LEVELS,
    }
    if gold is not None:
        data["gold"] = {
            "layer": layer,
            "sure": [sorted(s) for s in gold.sure],
            "possible": [sorted(p - s) for s, p in zip(gold.sure, gold.possible)],
        }
    return data
