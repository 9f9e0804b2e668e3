"""`nmt-report`: one leaderboard and side-by-side figures for every run folder under a directory.

Sweeps
------
`make sweep` compares all seven RNN attention mechanisms and the Transformer in one command::

    make sweep                                  # CPU preset (conf/sweep/cpu.yaml), then nmt-report
    make sweep SWEEP=gpu                        # GPU preset (conf/sweep/gpu.yaml): 3 seeds each
    make sweep ARGS="seed=1,2,3"                # extra overrides for every run / replace a swept list
    make sweep ARGS="+variant=bahdanau,transformer"   # only some of the eight variants

It runs `nmt-train -m +sweep=cpu` and then `nmt-report multirun/sweep-cpu`. A preset sweeps the
single choice group `variant` (conf/variant/*.yaml: `bahdanau` ... `local_p` = model=rnn with that
attention, `transformer` = model=transformer), so the Transformer runs once, not once per attention
type. Budgets are stated at the top of each preset file.

Any other sweep is one command line away; Hydra runs the cartesian product::

    nmt-train -m attention=luong_general,local_p model.dec_hidden=256,512 seed=1,2,3
    nmt-report multirun

Resuming: a preset writes to a fixed folder (multirun/sweep-cpu, one sub-folder per override set),
so running the same command again skips every run whose metrics.json says it finished
(interrupted=false; `finished_metrics` below, called by nmt-train) and continues unfinished ones
from their checkpoints/last.pt. For an ad-hoc sweep, fix the folder yourself and re-run the
identical command: `nmt-train -m hydra.sweep.dir=multirun/mine attention=...` (its sub-folders
start with the job number, so keep the order of the swept values, or also pass
`'hydra.sweep.subdir=${hydra.job.override_dirname}'`). Changing the preset file does not
invalidate finished runs: delete a run's metrics.json (or its folder) to train it again. A run
that fails with a configuration, data, checkpoint or training error writes error.txt
(`record_failure`) and the sweep goes on; the report lists it as failed.

Launchers (Hydra plugins from the `sweep` extra, `pip install -e '.[sweep]'`):

- default (basic launcher): runs one after another in this process.
- parallel local runs (joblib): `nmt-train -m hydra/launcher=parallel ...` (conf/hydra/launcher/
  parallel.yaml: 4 jobs; `hydra.launcher.n_jobs=N` to change); give each run its share of the
  cores, e.g. `trainer.threads=2` for 4 jobs on 8 cores. Plain `hydra/launcher=joblib` works too.
- SLURM (submitit): `nmt-train -m hydra/launcher=slurm +sweep=gpu`; conf/hydra/launcher/slurm.yaml
  sets partition, time, GPUs, CPUs and memory per job; override on the command line, e.g.
  `hydra.launcher.partition=gpu hydra.launcher.timeout_min=120`. The job logs land in
  `<sweep dir>/.submitit/`. `hydra/launcher=submitit_local` runs the same jobs locally.
  At the time limit SLURM sends SIGTERM: the trainer saves a checkpoint and marks the run
  interrupted; re-run the sweep to continue it.

Report
------
`nmt-report DIR [DIR ...] [-o OUT]` finds every run folder (a folder with .hydra/config.yaml)
anywhere below DIR, so several multiruns side by side are read together, and writes to OUT
(default: the first DIR):

- leaderboard.md and leaderboard.csv: one row per configuration (runs that differ only in `seed`
  are one row, mean ± std) with mechanism, model, params, dev and test BLEU, test chrF, AER (when
  metrics.json has `aer`), training target tokens/s, test decode sentences/s, wall time and steps,
  sorted by dev BLEU. Runs that failed, were interrupted or are still incomplete are listed with
  their status (never dropped): in their own table in leaderboard.md and as rows with that
  status in leaderboard.csv.
- runs.csv: every run folder, one row each.
- figures/bleu_by_length.png: test BLEU per source-length bucket, one line per configuration.
- figures/attention_grid.png: attention heatmaps of the first 3 test sentences (rows: one run per
  configuration, the seed with the best dev BLEU; columns: sentences), re-decoded from each run's
  checkpoints/best.pt on the CPU (`--no-heatmaps` skips this).
- figures/dev_bleu_vs_time.png: dev BLEU against training time (valid.jsonl), one line per run.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# (metrics.json key, Markdown header, CSV column, decimals)
METRICS: list[tuple[str, str, str, int]] = [
    ("params", "params", "params", 0),
    ("dev_bleu", "dev BLEU", "dev_bleu", 2),
    ("test_bleu", "test BLEU", "test_bleu", 2),
    ("test_chrf", "test chrF", "test_chrf", 2),
    ("aer", "AER", "aer", 3),
    ("train_tgt_tokens_per_s", "train tok/s", "train_tokens_per_s", 0),
    ("test_decode_sents_per_s", "decode sent/s", "decode_sents_per_s", 1),
    ("wall_s", "wall s", "wall_s", 0),
    ("steps", "steps", "steps", 0),
]
IGNORED_KEYS = ("seed", "resume")  # configs equal apart from these are seeds of one configuration
FAILURE_FILE = "error.txt"
MAX_GRID_TOKENS = 40  # target rows drawn per heatmap in the attention grid
SKIP_DIRS = {"checkpoints", "tb", "heatmaps", ".hydra", ".submitit", "figures"}


# --- helpers the training app calls ---------------------------------------------------------
def finished_metrics(run_dir: str | Path) -> dict[str, Any] | None:
    """metrics.json of a run that finished (interrupted=false), else None.

    `nmt-train` calls this first so that re-running a sweep skips runs that are already done.
    """
    path = Path(run_dir) / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict) or metrics.get("interrupted", True):
        return None
    return metrics


def record_failure(run_dir: str | Path, err: BaseException) -> None:
    """Write `error.txt` (first line: `Type: message`, then the traceback) into the run folder,
    so that `nmt-report` lists the run as failed with its reason."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        first = (
            f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        )
        tb = "".join(traceback.format_exception(type(err), err, err.__traceback__))
        (run_dir / FAILURE_FILE).write_text(first + "\n\n" + tb)
    except OSError:
        pass


# --- reading run folders ---------------------------------------------------------------------
@dataclass
class Run:
    """One run folder and what it holds."""

    path: Path
    config: dict[str, Any]
    overrides: list[str]
    metrics: dict[str, Any] | None
    status: str  # done | interrupted | failed | incomplete
    detail: str
    valid: list[dict[str, Any]] = field(default_factory=list)

    @property
    def arch(self) -> str:
        return str((self.config.get("model") or {}).get("arch", "?"))

    @property
    def mechanism(self) -> str:
        if self.arch == "transformer":
            return "transformer"
        return str((self.config.get("attention") or {}).get("type", "?"))

    @property
    def seed(self) -> Any:
        return self.config.get("seed")

    @property
    def key(self) -> str:
        """The configuration apart from the seed."""
        cfg = {k: v for k, v in self.config.items() if k not in IGNORED_KEYS}
        return json.dumps(cfg, sort_keys=True, default=str)

    def value(self, name: str) -> float | None:
        """A metric, from metrics.json or (for unfinished runs) from valid.jsonl."""
        if self.metrics is not None and self.metrics.get(name) is not None:
            v = self.metrics[name]
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
        if self.valid and name == "dev_bleu":
            return max(float(r.get("bleu", 0.0)) for r in self.valid)
        if self.valid and name == "steps":
            return float(self.valid[-1].get("step", 0))
        return None


def find_run_dirs(root: str | Path) -> list[Path]:
    """Every folder under `root` (itself included) holding .hydra/config.yaml, sorted."""
    found = []
    for here, dirs, _files in os.walk(root):
        if os.path.isfile(os.path.join(here, ".hydra", "config.yaml")):
            found.append(Path(here))
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
    return sorted(found)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if isinstance(record, dict):
            out.append(record)
    return out


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def load_run(path: Path) -> Run:
    """Read one run folder; never raises for a broken or unfinished run."""
    from omegaconf import OmegaConf

    try:
        config = OmegaConf.to_container(
            OmegaConf.load(path / ".hydra" / "config.yaml"), resolve=False
        )
    except Exception as err:  # a truncated file: still list the run
        config = {"_unreadable": str(err)}
    overrides: list[str] = []
    if (path / ".hydra" / "overrides.yaml").is_file():
        try:
            overrides = [str(o) for o in OmegaConf.load(path / ".hydra" / "overrides.yaml")]
        except Exception:
            overrides = []
    valid = _read_jsonl(path / "valid.jsonl")
    metrics, status, detail = None, "incomplete", ""
    metrics_path = path / "metrics.json"
    if metrics_path.is_file():
        try:
            metrics = json.loads(metrics_path.read_text())
            if not isinstance(metrics, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as err:
            metrics, status, detail = None, "failed", f"unreadable metrics.json ({err})"
    if metrics is not None:
        status = "interrupted" if metrics.get("interrupted", False) else "done"
        detail = str(metrics.get("stop_reason") or "")
    elif (path / FAILURE_FILE).is_file() and status == "incomplete":
        first = (path / FAILURE_FILE).read_text(errors="replace").splitlines()[:1]
        reason = first[0] if first else "unknown error"
        if _mtime(path / FAILURE_FILE) >= _mtime(path / ".hydra" / "config.yaml"):
            status, detail = "failed", reason
        else:  # Hydra re-wrote the config after the failure: a later attempt is under way
            detail = f"no metrics.json; an earlier attempt failed ({reason})"
    if status == "incomplete" and not detail:
        if valid:
            last = valid[-1]
            detail = f"no metrics.json; last validation at step {last.get('step')}"
        elif (path / "checkpoints" / "last.pt").is_file():
            detail = "no metrics.json; a checkpoint but no validation yet"
        else:
            detail = "no metrics.json; nothing trained yet (still running, or stopped early)"
    return Run(path, config, overrides, metrics, status, detail, valid)


def load_runs(roots: list[str | Path]) -> list[Run]:
    dirs: list[Path] = []
    for root in roots:
        dirs.extend(d for d in find_run_dirs(root) if d not in dirs)
    return [load_run(d) for d in dirs]


# --- grouping and aggregation ----------------------------------------------------------------
def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def settings_of(run: Run, common: set[str]) -> str:
    """The command-line overrides that set this run apart (not seed, not what other columns say)."""
    out = []
    for o in run.overrides:
        key = _override_key(o)
        value = o.split("=", 1)[1] if "=" in o else ""
        if o in common or key in ("seed", "resume", "sweep", "variant"):
            continue
        if (key == "attention" and value == run.mechanism) or (
            key == "model" and value == run.arch
        ):
            continue
        out.append(o)
    return " ".join(out)


@dataclass
class Group:
    """Finished runs of one configuration (different seeds)."""

    runs: list[Run]
    settings: str
    unfinished: int = 0

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def label(self) -> str:
        return self.first.mechanism + (f" [{self.settings}]" if self.settings else "")

    def stats(self, name: str) -> tuple[float | None, float | None]:
        values = [
            v for v in (r.value(name) for r in self.runs) if v is not None and math.isfinite(v)
        ]
        if not values:
            return None, None
        mean = statistics.fmean(values)
        return mean, (statistics.stdev(values) if len(values) > 1 else None)

    def best_run(self) -> Run:
        return max(self.runs, key=lambda r: r.value("dev_bleu") or -1.0)


def group_runs(runs: list[Run]) -> tuple[list[Group], list[Run], set[str]]:
    """Finished runs grouped by configuration (sorted by mean dev BLEU), unfinished runs, and the
    overrides every run shares."""
    common = set(runs[0].overrides) if runs else set()
    for r in runs[1:]:
        common &= set(r.overrides)
    groups: dict[str, Group] = {}
    for r in runs:
        if r.status == "done":
            if r.key not in groups:
                groups[r.key] = Group([], settings_of(r, common))
            groups[r.key].runs.append(r)
    unfinished = [r for r in runs if r.status != "done"]
    for r in unfinished:
        if r.key in groups:
            groups[r.key].unfinished += 1
    ordered = sorted(groups.values(), key=lambda g: -(g.stats("dev_bleu")[0] or -1.0))
    return ordered, unfinished, common


# --- tables ----------------------------------------------------------------------------------
def _fmt(value: float | None, decimals: int) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if decimals == 0 else f"{value:.{decimals}f}"


def _fmt_stat(mean: float | None, std: float | None, decimals: int) -> str:
    text = _fmt(mean, decimals)
    return text if std is None else f"{text} ± {_fmt(std, decimals)}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _rel(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return str(path)


def budget_lines(runs: list[Run]) -> list[str]:
    """The distinct per-run budgets (trainer stop conditions, device, threads)."""
    seen: dict[str, int] = {}
    for r in runs:
        t = r.config.get("trainer") or {}
        parts = [
            f"{k}={t.get(k)}"
            for k in ("max_time", "max_steps", "max_epochs", "patience")
            if t.get(k) is not None
        ]
        parts.append(f"device={t.get('device', 'auto')}")
        if t.get("threads"):
            parts.append(f"threads={t.get('threads')}")
        data = (r.config.get("data") or {}).get("name", "?")
        line = f"data={data}; trainer: " + ", ".join(parts)
        seen[line] = seen.get(line, 0) + 1
    return [f"{line} ({n} run{'s' if n != 1 else ''})" for line, n in seen.items()]


def write_tables(
    runs: list[Run],
    groups: list[Group],
    unfinished: list[Run],
    common: set[str],
    out: Path,
    title: str,
) -> str:
    """Write leaderboard.csv, runs.csv and return the tables part of leaderboard.md."""
    # CSV: one row per configuration of finished runs, then one row per unfinished run
    header = ["rank", "mechanism", "model", "settings", "status", "runs", "seeds"]
    for _, _, col, _ in METRICS:
        header += [col, f"{col}_std"]
    header += ["run_dirs"]
    rows = []
    for i, g in enumerate(groups, 1):
        status = "done" + (f" ({g.unfinished} more unfinished)" if g.unfinished else "")
        row = [i, g.first.mechanism, g.first.arch, g.settings, status, len(g.runs)]
        row.append(" ".join(str(r.seed) for r in g.runs))
        for key, _, _, _ in METRICS:
            mean, std = g.stats(key)
            row += ["" if mean is None else round(mean, 4), "" if std is None else round(std, 4)]
        row.append(";".join(_rel(r.path, out) for r in g.runs))
        rows.append(row)
    for r in unfinished:
        row = [
            "",
            r.mechanism,
            r.arch,
            settings_of(r, common),
            f"{r.status}: {r.detail}",
            1,
            r.seed,
        ]
        for key, _, _, _ in METRICS:
            v = r.value(key)
            row += ["" if v is None else v, ""]
        row.append(_rel(r.path, out))
        rows.append(row)
    with open(out / "leaderboard.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    # runs.csv: every run folder
    with open(out / "runs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["run_dir", "status", "detail", "mechanism", "model", "seed", "settings"]
            + [c for _, _, c, _ in METRICS]
        )
        for r in runs:
            w.writerow(
                [
                    _rel(r.path, out),
                    r.status,
                    r.detail,
                    r.mechanism,
                    r.arch,
                    r.seed,
                    settings_of(r, common),
                ]
                + ["" if r.value(k) is None else r.value(k) for k, _, _, _ in METRICS]
            )
    # Markdown
    counts = {
        s: sum(r.status == s for r in runs) for s in ("done", "interrupted", "failed", "incomplete")
    }
    md = [f"# {title}", ""]
    md.append(
        f"{len(runs)} run folders: "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + (f". Shared overrides: `{' '.join(sorted(common))}`" if common else "")
        + "."
    )
    md += ["", "Budget per run:", ""] + [f"- {line}" for line in budget_lines(runs)]
    md += ["", "## Leaderboard", ""]
    md.append(
        "Finished runs, sorted by dev BLEU; one row per configuration, mean ± std over seeds when it "
        "ran with several. Test BLEU/chrF: sacreBLEU, beam search with the best dev checkpoint."
    )
    md.append("")
    cols = ["#", "mechanism", "model", "settings", "runs"] + [h for _, h, _, _ in METRICS]
    md.append("| " + " | ".join(cols) + " |")
    md.append(
        "|"
        + "|".join(
            "---:" if c in [h for _, h, _, _ in METRICS] + ["#", "runs"] else "---" for c in cols
        )
        + "|"
    )
    for i, g in enumerate(groups, 1):
        runs_cell = str(len(g.runs)) + (f" (+{g.unfinished} unfinished)" if g.unfinished else "")
        cells = [str(i), g.first.mechanism, g.first.arch, _cell(g.settings or "–"), runs_cell]
        for key, _, _, dec in METRICS:
            mean, std = g.stats(key)
            cells.append(_fmt_stat(mean, None if key == "params" else std, dec))
        md.append("| " + " | ".join(cells) + " |")
    if not groups:
        md.append("| " + " | ".join(["–"] * len(cols)) + " |")
    md += ["", "## Unfinished runs", ""]
    if unfinished:
        md.append("Failed, interrupted or still incomplete; values are those reached so far.")
        md.append("")
        md.append(
            "| mechanism | model | settings | seed | status | detail | steps | dev BLEU | folder |"
        )
        md.append("|---|---|---|---:|---|---|---:|---:|---|")
        for r in unfinished:
            md.append(
                "| "
                + " | ".join(
                    [
                        r.mechanism,
                        r.arch,
                        _cell(settings_of(r, common) or "–"),
                        str(r.seed),
                        f"**{r.status}**",
                        _cell(r.detail),
                        _fmt(r.value("steps"), 0),
                        _fmt(r.value("dev_bleu"), 2),
                        _cell(_rel(r.path, out)),
                    ]
                )
                + " |"
            )
    else:
        md.append("None: every run finished.")
    return "\n".join(md) + "\n"


# --- figures ---------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_bleu_by_length(groups: list[Group], path: Path) -> Path | None:
    """Test BLEU per source-length bucket, one line per configuration (mean over seeds)."""
    series = []
    for g in groups:
        per_bucket: dict[str, list[float]] = {}
        order: list[str] = []
        for r in g.runs:
            for b in (r.metrics or {}).get("bleu_by_length") or []:
                label = str(b.get("bucket"))
                if label not in order:
                    order.append(label)
                if b.get("bleu") is not None:
                    per_bucket.setdefault(label, []).append(float(b["bleu"]))
        if order:
            series.append((g.label, order, per_bucket))
    if not series:
        return None
    plt = _pyplot()
    buckets = max((s[1] for s in series), key=len)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label, _, per_bucket in series:
        ys = [
            statistics.fmean(per_bucket[b]) if per_bucket.get(b) else float("nan") for b in buckets
        ]
        ax.plot(range(len(buckets)), ys, marker="o", label=label)
    ax.set_xticks(range(len(buckets)), labels=buckets)
    return _finish(
        plt, fig, ax, "source length (words)", "test BLEU", "BLEU by sentence length", path
    )


def plot_dev_bleu_vs_time(runs: list[Run], groups: list[Group], path: Path) -> Path | None:
    """Dev BLEU against training time, one line per run (colour: configuration; dashed: unfinished)."""
    with_valid = [r for r in runs if r.valid]
    if not with_valid:
        return None
    plt = _pyplot()
    labels = {r.path: g.label for g in groups for r in g.runs}
    colours: dict[str, Any] = {}
    cmap = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for r in with_valid:
        label = labels.get(r.path, f"{r.mechanism} ({r.status})")
        first = label not in colours
        if first:
            colours[label] = cmap(len(colours) % 10)
        xs = [float(v.get("train_time", 0.0)) for v in r.valid]
        ys = [float(v.get("bleu", 0.0)) for v in r.valid]
        ax.plot(
            xs,
            ys,
            marker=".",
            color=colours[label],
            linestyle="-" if r.status == "done" else "--",
            label=label if first else None,
        )
    return _finish(
        plt, fig, ax, "training time (s)", "dev BLEU", "Dev BLEU against training time", path
    )


def _finish(plt: Any, fig: Any, ax: Any, xlabel: str, ylabel: str, title: str, path: Path) -> Path:
    """Label, grid and legend a line plot, save it as PNG and close it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def first_test_sources(data_cfg: Any, n: int = 3) -> list[str]:
    """The first `n` non-empty source lines of the test split a run was evaluated on."""
    from nmt.data.corpus import SYNTHETIC_PREFIXES, find_split_file, load_corpus, read_lines

    prefix = SYNTHETIC_PREFIXES["test"] if data_cfg.source == "synthetic" else data_cfg.test_prefix
    found = find_split_file(data_cfg.root, prefix, data_cfg.src_lang) if data_cfg.root else None
    if found is not None and data_cfg.source != "hub":
        lines = read_lines(found, max_lines=max(50, 10 * n))
    elif data_cfg.source == "synthetic":  # regenerate the (deterministic) task in a scratch folder
        import dataclasses

        with tempfile.TemporaryDirectory() as tmp:
            lines = load_corpus(dataclasses.replace(data_cfg, root=tmp))["test"][0]
    else:
        lines = load_corpus(data_cfg)["test"][0]
    return [line for line in lines if line.strip()][:n]


def _attention_rows(run: Run, sentences: list[str] | None, n: int, device: str):
    """(sentences, [(source tokens, target tokens, (T, S) weights) or error text]) for one run."""
    import numpy as np

    from nmt.models import reduce_attention
    from nmt.translate import Translator

    translator = Translator(run.path / "checkpoints" / "best.pt", device=device)
    if sentences is None:
        sentences = first_test_sources(translator.cfg.data, n)
    _, hyps = translator.translate(sentences, need_attention=True)
    cells = []
    for line, hyp in zip(sentences, hyps):
        if hyp is None or hyp.attention is None or not hyp.tokens:
            cells.append("empty translation")
            continue
        text = line.lower() if translator.cfg.data.lowercase else line
        src = translator.tokenizer.src_pieces(text)[: translator.max_src_len] + ["</s>"]
        tgt = translator.tokenizer.tgt_pieces_from_ids(hyp.tokens)
        weights = reduce_attention(hyp.attention).float().numpy()
        if len(tgt) > MAX_GRID_TOKENS:  # a degenerate (looping) output: show its beginning
            tgt = tgt[:MAX_GRID_TOKENS] + ["…"]
            weights = np.vstack([weights[:MAX_GRID_TOKENS], np.full_like(weights[:1], np.nan)])
        cells.append((src, tgt, weights))
    return sentences, cells


def plot_attention_grid(
    groups: list[Group], out_dir: Path, n: int = 3, device: str = "cpu"
) -> list[Path]:
    """One grid per data set: rows = configurations, columns = the first `n` test sentences."""
    import torch

    by_data: dict[str, list[Group]] = {}
    for g in groups:
        data_key = json.dumps(g.first.config.get("data"), sort_keys=True, default=str)
        by_data.setdefault(data_key, []).append(g)
    paths = []
    for k, (_, gs) in enumerate(by_data.items()):
        sentences: list[str] | None = None
        rows = []
        for g in gs:
            run = g.best_run()
            try:
                with torch.no_grad():
                    sentences, cells = _attention_rows(run, sentences, n, device)
            except Exception as err:  # a missing/incompatible checkpoint: say so in the figure
                cells = [f"{type(err).__name__}: {err}"[:120]] * n
            rows.append((g.label, cells))
        name = (
            "attention_grid.png"
            if len(by_data) == 1
            else f"attention_grid_{k + 1}_{gs[0].first.config.get('data', {}).get('name', 'data')}.png"
        )
        paths.append(_draw_grid(rows, n, out_dir / name))
    return paths


def _draw_grid(rows: list[tuple[str, list]], n: int, path: Path) -> Path:
    import warnings

    import numpy as np

    plt = _pyplot()
    n = max([n] + [len(c) for _, c in rows])
    widths = [
        max([len(c[i][0]) for _, c in rows if i < len(c) and not isinstance(c[i], str)] + [6])
        for i in range(n)
    ]
    heights = [
        max([len(c[0 if isinstance(c, str) else 1]) for c in cells if not isinstance(c, str)] + [6])
        for _, cells in rows
    ]
    cell = 0.22
    fig, axes = plt.subplots(
        len(rows),
        n,
        figsize=(sum(1.2 + cell * w for w in widths), sum(1.3 + cell * h for h in heights)),
        gridspec_kw={"width_ratios": widths, "height_ratios": heights},
        squeeze=False,
    )
    for r, (label, cells) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            item = cells[c] if c < len(cells) else "no sentence"
            if isinstance(item, str):
                ax.text(
                    0.5,
                    0.5,
                    item,
                    ha="center",
                    va="center",
                    fontsize=7,
                    wrap=True,
                    transform=ax.transAxes,
                )
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                src, tgt, w = item
                T, S = w.shape
                ax.imshow(
                    w, cmap="viridis", vmin=0.0, vmax=max(1e-6, float(np.nanmax(w))), aspect="auto"
                )
                ax.set_xticks(range(S), labels=list(src)[:S], rotation=90, fontsize=6)
                ax.set_yticks(range(T), labels=list(tgt)[:T], fontsize=6)
            if c == 0:
                ax.set_ylabel(label, fontsize=9, fontweight="bold")
            if r == 0:
                ax.set_title(f"test sentence {c + 1}", fontsize=9)
    with warnings.catch_warnings():  # cells holding only a message cannot always be fitted
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# --- the command ------------------------------------------------------------------------------
def make_report(
    roots: list[str | Path],
    out: str | Path | None = None,
    heatmaps: bool = True,
    sentences: int = 3,
    device: str = "cpu",
) -> dict[str, Any]:
    """Write leaderboard.md/.csv, runs.csv and figures/; returns what was written."""
    runs = load_runs(roots)
    out = Path(out if out is not None else roots[0])
    out.mkdir(parents=True, exist_ok=True)
    groups, unfinished, common = group_runs(runs)
    title = "Sweep report: " + ", ".join(str(r) for r in roots)
    md = write_tables(runs, groups, unfinished, common, out, title)
    figures: dict[str, list[Path]] = {}
    notes: list[str] = []
    fig_dir = out / "figures"
    p = plot_bleu_by_length(groups, fig_dir / "bleu_by_length.png")
    figures["BLEU by source length (test)"] = [p] if p else []
    if not p:
        notes.append("no bleu_by_length in any metrics.json: BLEU-by-length figure skipped")
    if heatmaps and groups:
        figures[f"Attention on the first {sentences} test sentences"] = plot_attention_grid(
            groups, fig_dir, sentences, device
        )
    elif not heatmaps:
        notes.append("attention grid skipped (--no-heatmaps)")
    p = plot_dev_bleu_vs_time(runs, groups, fig_dir / "dev_bleu_vs_time.png")
    figures["Dev BLEU against training time"] = [p] if p else []
    md_lines = [md, "## Figures", ""]
    for name, paths in figures.items():
        for path in paths:
            md_lines += [f"### {name}", "", f"![{name}]({_rel(path, out)})", ""]
    md_lines += [f"- {note}" for note in notes]
    text = "\n".join(md_lines).rstrip() + "\n"
    (out / "leaderboard.md").write_text(text)
    return {
        "runs": runs,
        "groups": groups,
        "unfinished": unfinished,
        "markdown": out / "leaderboard.md",
        "csv": out / "leaderboard.csv",
        "figures": [p for ps in figures.values() for p in ps],
        "text": text,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nmt-report",
        description="Aggregate every run folder under DIR into a leaderboard (Markdown, CSV) and figures.",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="folder(s) searched for run folders")
    parser.add_argument("-o", "--out", help="output folder (default: the first DIR)")
    parser.add_argument(
        "--no-heatmaps", action="store_true", help="skip re-decoding for the attention grid"
    )
    parser.add_argument(
        "--sentences", type=int, default=3, help="test sentences in the attention grid"
    )
    parser.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda", "auto"], help="for the attention grid"
    )
    args = parser.parse_args(argv)
    for d in args.dirs:
        if not Path(d).is_dir():
            print(f"nmt-report: error: {d}: no such folder", file=sys.stderr)
            return 2
    if args.sentences < 1:
        parser.error(f"--sentences must be >= 1, got {args.sentences}")
    if not any(find_run_dirs(d) for d in args.dirs):
        print(
            f"nmt-report: error: no run folders (with .hydra/config.yaml) under {', '.join(args.dirs)}",
            file=sys.stderr,
        )
        return 2
    result = make_report(args.dirs, args.out, not args.no_heatmaps, args.sentences, args.device)
    sys.stdout.write(result["text"])
    print(
        f"\nnmt-report: wrote {result['markdown']}, {result['csv']} and {len(result['figures'])} figures",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
