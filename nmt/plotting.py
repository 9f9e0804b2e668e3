"""Attention heatmaps: target tokens as rows, source tokens as columns (Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_heatmap(
    weights: np.ndarray,
    src_tokens: Sequence[str],
    tgt_tokens: Sequence[str],
    path: str | Path | None = None,
    title: str = "",
) -> plt.Figure:
    """Draw a (T, S) attention matrix with labelled axes and a colour bar; save when `path` is set
    (PNG, and SVG too when the path ends in .svg)."""
    weights = np.asarray(weights, dtype=np.float32)
    T, S = weights.shape
    cell = 0.32 if max(T, S) <= 40 else max(0.12, 13.0 / max(T, S))  # long sentences shrink
    fig, ax = plt.subplots(figsize=(max(4.0, 1.8 + cell * S), max(3.0, 1.2 + cell * T)))
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=max(1e-6, float(weights.max())), aspect="auto")
    fontsize = 9 if max(T, S) <= 40 else max(4, int(360 / max(T, S)))
    ax.set_xticks(range(S), labels=list(src_tokens)[:S], rotation=90, fontsize=fontsize)
    ax.set_yticks(range(T), labels=list(tgt_tokens)[:T], fontsize=fontsize)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    if title:
        ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig
