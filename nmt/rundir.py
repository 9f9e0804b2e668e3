"""Run-folder facts: the files by which a run tells `nmt-train` and `nmt-report` how it ended.

A run folder is a Hydra output folder (`.hydra/config.yaml`) that training fills with

- `metrics.json`: the final metrics; `interrupted: false` means the run finished, so a rerun
  of the same sweep skips it (`finished_metrics`);
- `error.txt`: why the run failed (`record_failure`), first line `Type: message`, then the
  traceback, so that the report can list a failed run with its reason;
- `valid.jsonl` (one JSON object per validation) and `progress.jsonl`, read with `read_jsonl`.

Files are written atomically (`nmt.files.atomic_write_text`): a crash mid-write leaves the old
file or the new one, never half a metrics.json that would make a finished run look unfinished.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

from nmt.files import atomic_write_text

METRICS_FILE = "metrics.json"
FAILURE_FILE = "error.txt"


def hard_attention(config: dict[str, Any]) -> str:
    """A run's hard-attention estimator from its config (`gumbel`, `reinforce`), or `none` for
    soft attention and for the Transformer (attention.hard applies to the RNN only)."""
    if (config.get("model") or {}).get("arch") == "transformer":
        return "none"
    return str((config.get("attention") or {}).get("hard") or "none")


def mechanism_label(config: dict[str, Any], inference: bool = True) -> str:
    """What a run's attention is, from its config: `transformer`, `luong_general`, with
    `+sparsemax` / `+entmax15` when the normaliser is not the softmax and `+hard-gumbel` /
    `+hard-reinforce` when the attention is hard, then `(soft)` when it decodes with the soft
    distribution (attention.hard_inference; `inference=False` leaves that out, for tables that
    name the read-out themselves). The leaderboard's mechanism column and the alignment table's
    system names both use it."""
    if (config.get("model") or {}).get("arch") == "transformer":
        return "transformer"
    attention = config.get("attention") or {}
    normalizer = attention.get("normalizer") or "softmax"
    suffix = "" if normalizer == "softmax" else f"+{normalizer}"
    hard = hard_attention(config)
    if hard != "none":
        read = attention.get("hard_inference") or "argmax"
        suffix += f"+hard-{hard}" + ("" if read == "argmax" or not inference else f"({read})")
    return str(attention.get("type", "?")) + suffix


def read_metrics(path: str | Path) -> dict[str, Any]:
    """metrics.json of a run folder (or the given JSON file); raises OSError or ValueError."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    metrics = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(metrics, dict):
        raise ValueError("not a JSON object")
    return metrics


def write_metrics(run_dir: str | Path, metrics: dict[str, Any]) -> Path:
    """Write `run_dir/metrics.json` atomically (indented, one trailing newline)."""
    return atomic_write_text(Path(run_dir) / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")


def update_metrics(run_dir: str | Path, extra: dict[str, Any]) -> bool:
    """Merge `extra` into an existing metrics.json; False (and nothing written) if there is none."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return False
    write_metrics(run_dir, {**read_metrics(path), **extra})
    return True


def finished_metrics(run_dir: str | Path) -> dict[str, Any] | None:
    """metrics.json of a run that finished (interrupted=false), else None.

    `nmt-train` calls this first so that re-running a sweep skips runs that are already done;
    a missing, truncated or interrupted metrics.json means "train (or continue) this run".
    """
    try:
        metrics = read_metrics(Path(run_dir) / METRICS_FILE)
    except (OSError, ValueError):
        return None
    if metrics.get("interrupted", True):
        return None
    return metrics


def failure_text(err: BaseException) -> str:
    """`Type: first line of the message`, a blank line, then the full traceback."""
    message = str(err).strip()
    first = f"{type(err).__name__}: {message.splitlines()[0] if message else ''}"
    trace = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return first + "\n\n" + trace


def record_failure(run_dir: str | Path, err: BaseException) -> None:
    """Write `error.txt` into the run folder, so that `nmt-report` lists the run as failed with
    its reason. Never raises: a full disk must not hide the original error."""
    try:
        atomic_write_text(Path(run_dir) / FAILURE_FILE, failure_text(err))
    except OSError:
        pass


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of a .jsonl file; a missing file gives [], a line cut short is skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if isinstance(record, dict):
            out.append(record)
    return out
