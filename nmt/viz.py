"""Every figure nmt draws: attention heatmaps, the report's attention grid, BLEU by source length
and dev BLEU against training time. The one place that picks matplotlib's Agg backend.

A leaf module (numpy, matplotlib and the standard library only), so that the trainer
(TensorBoard and heatmaps/), `nmt-plot`, `nmt-report` and `python -m nmt.analysis` draw the same
pictures without importing one another; callers turn their records into plain arrays and lists.

Attention weights are (T, S) arrays: row t is target token t's distribution over the source
tokens, whose last column is `</s>`. NaN cells are drawn blank (the report marks a cut-off row
that way). Labels use matplotlib's default font (DejaVu Sans, which has umlauts and `▁`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402

MAX_LABEL = 18  # longer token labels are cut, with "…"
GRID_CELL = 0.22  # inches per token in the report's attention grid

# a report grid cell: (source tokens, target tokens, (T, S) weights), or a message to show instead
GridCell = tuple[Sequence[str], Sequence[str], np.ndarray] | str


def label(token: str) -> str:
    """A tick label: the token, cut to MAX_LABEL characters."""
    token = str(token)
    return token if len(token) <= MAX_LABEL else token[: MAX_LABEL - 1] + "…"


def save_figure(fig: Figure, path: str | Path, dpi: int = 120, svg: bool = False) -> Path:
    """Save `fig` (format from the suffix; with `svg` also an .svg beside it) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    if svg and path.suffix.lower() != ".svg":
        fig.savefig(path.with_suffix(".svg"))
    plt.close(fig)
    return path


# --- attention heatmaps ----------------------------------------------------------------------
def draw_heatmap(
    ax: Axes,
    weights: Any,
    src: Sequence[str],
    tgt: Sequence[str],
    title: str | None = None,
    fontsize: float = 9,
) -> AxesImage:
    """Draw a (T, S) attention matrix on `ax`: target tokens label the rows, source tokens the
    columns; the colour scale runs from 0 to the largest weight. Returns the image."""
    weights = np.asarray(weights, dtype=np.float32)
    if weights.ndim != 2:
        raise ValueError(f"attention must be a (T, S) matrix, got shape {weights.shape}")
    T, S = weights.shape
    vmax = max(1e-6, float(np.nanmax(weights, initial=0.0)))  # NaN rows are left blank
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
    ax.set_xticks(
        range(S), labels=[label(t) for t in list(src)[:S]], rotation=90, fontsize=fontsize
    )
    ax.set_yticks(range(T), labels=[label(t) for t in list(tgt)[:T]], fontsize=fontsize)
    if title:
        ax.set_title(title, fontsize=10)
    return image


def plot_heatmap(
    weights: np.ndarray,
    src_tokens: Sequence[str],
    tgt_tokens: Sequence[str],
    path: str | Path | None = None,
    title: str = "",
    svg: bool = False,
) -> Figure:
    """One heatmap with axis names and a colour bar, sized to the sentence.

    When `path` is set the figure is saved there (the format follows the suffix: .png or .svg)
    and closed; with `svg=True` an SVG copy is written next to it as well. Without a path the
    open figure is returned (TensorBoard's `add_figure` closes it)."""
    weights = np.asarray(weights, dtype=np.float32)
    if weights.ndim != 2:
        raise ValueError(f"attention must be a (T, S) matrix, got shape {weights.shape}")
    T, S = weights.shape
    n = max(T, S, 1)
    cell = 0.32 if n <= 40 else max(0.12, 13.0 / n)  # inches per token: long sentences shrink
    fig, ax = plt.subplots(figsize=(max(4.0, 1.8 + cell * S), max(3.0, 1.2 + cell * T)))
    fontsize = 9 if n <= 40 else max(4, int(360 / n))
    image = draw_heatmap(ax, weights, src_tokens, tgt_tokens, title, fontsize)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, svg=svg)
    return fig


def draw_links(
    ax: Axes,
    sure: set[tuple[int, int]] = frozenset(),
    possible: set[tuple[int, int]] = frozenset(),
    predicted: set[tuple[int, int]] = frozenset(),
) -> None:
    """Word links (source column, target row) over a heatmap: gold sure links as white
    squares, possible-only links as dashed white squares, predicted links as red dots."""
    from matplotlib.patches import Rectangle

    for links, style in ((sure, "-"), (set(possible) - set(sure), "--")):
        for s, t in links:
            box = Rectangle((s - 0.5, t - 0.5), 1, 1, fill=False, ec="white", lw=1.4, ls=style)
            ax.add_patch(box)
    if predicted:
        cols, rows = zip(*sorted(predicted))
        ax.scatter(cols, rows, s=14, c="red", marker="o", linewidths=0)


def plot_alignment(
    weights: np.ndarray,
    src_words: Sequence[str],
    tgt_words: Sequence[str],
    sure: set[tuple[int, int]],
    possible: set[tuple[int, int]],
    predicted: set[tuple[int, int]],
    path: str | Path,
    title: str = "",
) -> Path:
    """A word-level attention heatmap with the gold links and a method's links drawn over it
    (see `draw_links`); saved to `path`."""
    fig = plot_heatmap(weights, src_words, tgt_words, None, title)
    draw_links(fig.axes[0], sure, possible, predicted)
    return save_figure(fig, path)


def draw_message(ax: Axes, text: str) -> None:
    """A grid cell that holds a message (e.g. why there is no heatmap) instead of a heatmap."""
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=7, wrap=True, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_attention_grid(
    rows: Sequence[tuple[str, Sequence[GridCell]]], n: int, path: str | Path
) -> Figure:
    """Heatmaps in a grid: one row per (label, cells), column c = test sentence c + 1.

    Column widths follow the longest source and row heights the longest target drawn there,
    so every token gets the same cell size. Saved as PNG (100 dpi) and closed."""
    n = max([n] + [len(cells) for _, cells in rows])
    cells = [[row[c] if c < len(row) else "no sentence" for c in range(n)] for _, row in rows]
    shapes = [[np.shape(x[2]) if not isinstance(x, str) else None for x in row] for row in cells]
    widths = [max([s[1] for row in shapes if (s := row[c])] + [6]) for c in range(n)]
    heights = [max([s[0] for s in row if s] + [6]) for row in shapes]
    fig, axes = plt.subplots(
        len(rows),
        n,
        figsize=(
            sum(1.2 + GRID_CELL * w for w in widths),
            sum(1.3 + GRID_CELL * h for h in heights),
        ),
        gridspec_kw={"width_ratios": widths, "height_ratios": heights},
        squeeze=False,
    )
    for r, (row_label, _) in enumerate(rows):
        for c, item in enumerate(cells[r]):
            ax = axes[r][c]
            if isinstance(item, str):
                draw_message(ax, item)
            else:
                draw_heatmap(ax, item[2], item[0], item[1], fontsize=6)
            if c == 0:
                ax.set_ylabel(row_label, fontsize=9, fontweight="bold")
            if r == 0:
                ax.set_title(f"test sentence {c + 1}", fontsize=9)
    with warnings.catch_warnings():  # cells holding only a message cannot always be fitted
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
    save_figure(fig, path, dpi=100)
    return fig


# --- line plots ------------------------------------------------------------------------------
def _finish(fig: Figure, ax: Axes, xlabel: str, ylabel: str, title: str, path: str | Path) -> Path:
    """Label, grid and legend a line plot, then save it (120 dpi) and close it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if any(line.get_label() and not line.get_label().startswith("_") for line in ax.lines):
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return save_figure(fig, path)


def draw_bleu_by_length(
    ax: Axes,
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    buckets: Sequence[str] | None = None,
) -> None:
    """One line per run of BLEU per source-length bucket; a bucket with bleu None is a gap.

    `runs` maps a legend label to a `bleu_by_length` table (`[{"bucket", "sentences", "bleu"}]`,
    as in metrics.json). The x axis has `buckets`, or else the first run's buckets labelled with
    its sentence counts."""
    if not runs:
        raise ValueError("no runs to plot")
    first = next(iter(runs.values()))
    if buckets is None:
        buckets = [str(b["bucket"]) for b in first]
        ticks = [f"{b['bucket']}\n(n={b.get('sentences', '?')})" for b in first]
    else:
        buckets = ticks = [str(b) for b in buckets]
    for name, table in runs.items():
        by_bucket = {str(b["bucket"]): b.get("bleu") for b in table}
        y = [np.nan if by_bucket.get(b) is None else float(by_bucket[b]) for b in buckets]
        ax.plot(range(len(buckets)), y, marker="o", label=name)
    ax.set_xticks(range(len(buckets)), labels=ticks)
    ax.margins(y=0.12)
    ax.set_ylim(bottom=0)


def plot_bleu_by_length(
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
    path: str | Path,
    title: str = "BLEU by source sentence length",
    ylabel: str = "BLEU",
    buckets: Sequence[str] | None = None,
) -> Path:
    """Line plot of BLEU per source-length bucket (Bahdanau et al. 2015, Fig. 2), one line per
    run (see `draw_bleu_by_length`). Saves PNG (or SVG by suffix) and returns the path."""
    if not runs:
        raise ValueError("no runs to plot")
    n = len(buckets) if buckets is not None else len(next(iter(runs.values())))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * n + 2.0), 3.8))
    draw_bleu_by_length(ax, runs, buckets)
    return _finish(fig, ax, "source length (words)", ylabel, title, path)


@dataclass
class Curve:
    """Dev BLEU over training time of one run; runs that share a `label` share a colour."""

    label: str
    seconds: Sequence[float]
    bleu: Sequence[float]
    finished: bool = True  # unfinished runs are dashed


def draw_dev_bleu_vs_time(ax: Axes, curves: Sequence[Curve]) -> None:
    """One line per curve; a colour per label, named in the legend once."""
    cmap = plt.get_cmap("tab10")
    colours: dict[str, Any] = {}
    for curve in curves:
        first = curve.label not in colours
        if first:
            colours[curve.label] = cmap(len(colours) % 10)
        ax.plot(
            curve.seconds,
            curve.bleu,
            marker=".",
            color=colours[curve.label],
            linestyle="-" if curve.finished else "--",
            label=curve.label if first else None,
        )


def plot_dev_bleu_vs_time(curves: Sequence[Curve], path: str | Path) -> Path:
    """Dev BLEU against training time (`draw_dev_bleu_vs_time`), saved as PNG."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    draw_dev_bleu_vs_time(ax, curves)
    title = "Dev BLEU against training time"
    return _finish(fig, ax, "training time (s)", "dev BLEU", title, path)
