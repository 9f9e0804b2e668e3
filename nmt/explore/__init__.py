"""The attention explorer: one self-contained HTML page per sweep (`nmt-report` writes
report.html) or per set of checkpoints (`nmt-explore`).

`nmt-explore CKPT [CKPT ...] --src FILE [--ref FILE] [--gold FILE] -o page.html` translates the
source lines with every checkpoint (its own decode settings) and writes the sentence explorer:

- pick a sentence by number, by search (source, reference or any hypothesis), or from the list
  sorted by how much the systems disagree (the spread, max - min, of their sentence chrF; needs
  `--ref`), or by the systems' mean AER (with `--gold`);
- the source, the reference and every system's hypothesis with its sentence chrF and BLEU;
- every system's attention heatmap side by side, over words (pieces merged: source pieces
  summed, target pieces averaged, as `nmt-align` does) or over the subword pieces; a Transformer
  shows one decoder layer, the head average or one head (menus on its card);
- hovering a target word marks the source words it attends to (its largest weight and every
  weight at least half as large) in its own heatmap, and in every other heatmap the same source
  words and the target words of that system that attend to them;
- with `--gold` (talp links `i-j` sure, `ipj` possible, 1-based, first index a word of `--src`,
  second of `--ref`): a second view with each model's attention over the *reference* (forced
  decoding, the `--method` read-out of `nmt-align`, at the words of the gold text), the gold
  links (sure: solid square, possible: dashed) and the model's links (dots) drawn over it, and
  each sentence's AER. All systems then share the target words, and hovering one marks its
  source words in every system.

The page is one file: data (JSON), script and styles inline, charts and heatmaps drawn as SVG by
the page's own script; it opens from disk with no network. Attention weights are stored as one
byte each (see `nmt.explore.data`), so a sweep of 8 systems x 1,000 sentences stays a few MB.

Layout: `data` computes what the explorer shows, `page` renders and writes the HTML with the
assets (assets/explore.js, assets/explore.css), `cli` is `nmt-explore`. `nmt.report` builds the
leaderboard, the figures and the run details of report.html and uses `data` and `page` for the
rest.
"""

from __future__ import annotations

from nmt.explore.cli import main
from nmt.explore.data import DEFAULT_METHOD, System, dequantise, explorer_data, quantise
from nmt.explore.page import render, write_page

__all__ = [
    "DEFAULT_METHOD",
    "System",
    "dequantise",
    "explorer_data",
    "main",
    "quantise",
    "render",
    "write_page",
]
