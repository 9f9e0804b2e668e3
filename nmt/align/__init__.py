"""`nmt-align`: alignment error rate (AER) of attention against gold word alignments.

What it does, step by step:

1. **Forced decoding** (`nmt.align.forced`). The reference translation is fed to the model with
   teacher forcing (`model.forward(..., return_attention=True)`, batched). Both sides are
   prepared like the training text (`Translator.prepare`: `data.lowercase`, `data.tokenize`).
   Attention row t is the distribution used to predict target piece t; the source `</s>`
   column is dropped before anything else. Transformer: `--layer` (default: last) and `--head`
   (default: the average over the heads of that layer).
   **Two read-outs.** The plain one gives target piece y_k the row that *predicts* it. The
   shifted one (Shift-Att, Chen et al. 2020, "Accurate Word Alignment Induction from Neural
   Machine Translation", sec. 3) gives y_k the row of the first step whose attention query has
   already *read* y_k, since attention that knows the word it just emitted points at that
   word's source (Chen et al. find this for the Transformer's middle layers):
   - Transformer and the Luong layout (every mechanism but Bahdanau): the query at step t is
     computed from the input y_{t-1}, so y_k is read at the next step: shift 1.
   - Bahdanau's layout: the query at step t is the previous state s_{t-1}, and y_{t-1} enters
     the RNN *after* the attention (s_t = RNN([E y_{t-1}; c_t], s_{t-1})), so the first query
     that has read y_k is s_{k+1}, two steps after the one that predicts y_k: shift 2.
   The last piece's shifted row lies past the step that predicts EOS, so the decoder is fed EOS
   for one (two) extra steps; it is causal, so that changes no earlier row.
2. **Subwords to words** (`nmt.align.words`). The gold alignment is over the whitespace words of
   the (lowercased, tokenized) test text. A piece belongs to the word its characters lie in (a
   word `data.tokenize` split for the model, `bzw.` -> `bzw .`, stays one word); where the
   pieces do not spell the words, a piece starting with `▁` begins a new word and every other
   piece continues the current one. The word-level weight of (target word t, source word s) is
   the **sum over the source pieces of s** of the weights, **averaged over the target pieces of
   t**. So every target word still has one distribution over source words (summing to at most 1;
   the mass the model put on `</s>` is not renormalised away unless `--renormalize`).
3. **Extraction** (`nmt.align.links`).
   - `argmax` (Luong et al. 2015): for every target word, the source word with the most weight.
   - `threshold`: every (source word, target word) with weight >= `--threshold` (default 0.3;
     several values give one method each, e.g. `--threshold 0.1,0.2,0.3`).
   Both for the plain read-out (`argmax`, `threshold>=0.3`) and the shifted one
   (`shift-att argmax`, ...).
   - with `--reverse-ckpt` (a model trained in the other direction, same text): its own argmax
     and threshold alignments, and the `intersection`, `grow-diag` and `grow-diag-final`
     symmetrisations (Koehn et al. 2003; Och & Ney 2003) of both directions' argmax alignments
     and of their threshold alignments (`grow-diag of threshold>=0.3`), per read-out (Chen et
     al. combine both directions of Shift-Att with grow-diag); and `agreement` (Liang et al.
     2006): both directions' word-level weights combined (geometric mean) before the argmax
     or threshold (`agreement of threshold>=0.3`).

   **Choosing settings without overfitting the gold**: `--lines 1-100` scores only those
   sentences (choose the layer, head, threshold, read-out there), `--lines 101-508` reports.
4. **Scoring** (Och & Ney 2003) against sure links S and possible links P (P includes S), over
   the whole corpus: precision = |A∩P|/|A|, recall = |A∩S|/|S|,
   AER = 1 - (|A∩S| + |A∩P|) / (|A| + |S|). An empty A gives precision 0.

**Direction** (`nmt.align.gold`). The gold file lists `i-j` (sure) and `ipj` (possible) links,
1-based, with the index into the first language of `--gold-order` first (default `de-en`: German
first, as in the RWTH set). `--src`/`--tgt` are the model's source and target side (for a de→en
model, `--src test.de --tgt test.en`; for en→de, the other way round). The checkpoint's
`data.src_lang`/`data.tgt_lang` decide whether the gold links are flipped; `--gold-order src-tgt`
or `tgt-src` says it explicitly.

**What it assumes about the text.** The gold set (RWTH) is lowercased and tokenized (punctuation
split off, `'s` split as in Moses). A model trained on cased text gets a warning, since it then
sees lowercase input it never saw in training. Train with `data.lowercase=true` for meaningful
numbers. A sentence whose pieces cannot be grouped into the gold's words is left out of every
score, with a warning.

**eflomal baseline** (`--eflomal`, `nmt.align.baseline`): the statistical aligner eflomal
(Östling & Tiedemann 2016, IBM1+HMM+fertility, `pip install eflomal`) is trained on
`--train-src`/`--train-tgt` (plain or .gz; lowercased and, with `--train-tokenize simple`,
punctuation split off to match the gold's tokenization) **plus the test sentences themselves**
(unsupervised, as statistical aligners are conventionally run on the test set), in both
directions, and symmetrised with `--symmetrise` (default grow-diag-final, Koehn et al. 2003).
It is scored with the same code. eflomal is a sampler without a seed option (it seeds itself
from /dev/urandom): repeated runs differ slightly.

The modules: `common` (link and error types), `gold` (talp files, direction), `words` (pieces to
words; numpy only), `links` (extraction, symmetrisation, scoring), `forced` (the model),
`baseline` (eflomal), `run` (the steps of the command), `cli` (arguments, output). Names are
re-exported here lazily, so `from nmt.align import merge_pieces` loads numpy, not the model code.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "common": ("AlignError", "Link"),
    "gold": (
        "GoldAlignment",
        "check_bounds",
        "flip",
        "format_talp",
        "gold_is_flipped",
        "parse_talp_line",
        "read_talp",
    ),
    "words": (
        "SPECIAL_WORDS",
        "WORD_START",
        "aggregate_to_words",
        "merge_pieces",
        "piece_weights",
        "piece_word_ids",
        "word_attention",
        "word_ids_in",
    ),
    "links": (
        "AGREEMENT",
        "COMBINES",
        "SHIFT_ATT",
        "SYMMETRISATIONS",
        "agreement_weights",
        "extract",
        "extract_argmax",
        "extract_threshold",
        "extraction_names",
        "method_name",
        "method_readout",
        "method_threshold",
        "method_way",
        "score_alignments",
        "symmetrise",
    ),
    "forced": (
        "ModelLinks",
        "check_layer_head",
        "forced_attention",
        "forced_attention_all",
        "model_alignments",
        "readouts",
    ),
    "baseline": ("eflomal_align", "simple_tokenize"),
    "run": ("parse_lines", "run_align"),
    "cli": ("build_parser", "format_table", "main"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """Import the submodule that defines `name` on first use (PEP 562)."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
