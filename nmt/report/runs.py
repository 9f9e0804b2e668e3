"""Finding and reading run folders: what a run was (config, overrides) and how far it got.

A run folder is any folder with `.hydra/config.yaml`. Reading one never raises: a broken,
failed or still running run is listed with a status and a one-line reason, never dropped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nmt.rundir import FAILURE_FILE, METRICS_FILE, mechanism_label, read_jsonl, read_metrics

IGNORED_KEYS = ("seed", "resume")  # configs equal apart from these are seeds of one configuration
SKIP_DIRS = {"checkpoints", "tb", "heatmaps", ".hydra", ".submitit", "figures"}
STATUSES = ("done", "interrupted", "failed", "incomplete")


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
        return mechanism_label(self.config)

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


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _read_config(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The run's config (unresolved) and its command-line overrides."""
    from omegaconf import OmegaConf

    hydra = path / ".hydra"
    try:
        config = OmegaConf.to_container(OmegaConf.load(hydra / "config.yaml"), resolve=False)
    except Exception as err:  # a truncated file: still list the run
        config = {"_unreadable": str(err)}
    overrides: list[str] = []
    if (hydra / "overrides.yaml").is_file():
        try:
            overrides = [str(o) for o in OmegaConf.load(hydra / "overrides.yaml")]
        except Exception:
            overrides = []
    return config, overrides


def _failure(path: Path) -> tuple[str, str] | None:
    """(status, detail) from error.txt: failed, or incomplete when Hydra re-wrote the config
    after the failure (a later attempt is under way); None without error.txt."""
    error = path / FAILURE_FILE
    if not error.is_file():
        return None
    first = error.read_text(errors="replace").splitlines()[:1]
    reason = first[0] if first else "unknown error"
    if _mtime(error) >= _mtime(path / ".hydra" / "config.yaml"):
        return "failed", reason
    return "incomplete", f"no metrics.json; an earlier attempt failed ({reason})"


def _progress(path: Path, valid: list[dict[str, Any]]) -> str:
    """Why an incomplete run has no metrics.json yet: how far it got."""
    if valid:
        return f"no metrics.json; last validation at step {valid[-1].get('step')}"
    if (path / "checkpoints" / "last.pt").is_file():
        return "no metrics.json; a checkpoint but no validation yet"
    return "no metrics.json; nothing trained yet (still running, or stopped early)"


def load_run(path: Path) -> Run:
    """Read one run folder; never raises for a broken or unfinished run."""
    config, overrides = _read_config(path)
    valid = read_jsonl(path / "valid.jsonl")
    if (path / METRICS_FILE).is_file():
        try:
            metrics = read_metrics(path / METRICS_FILE)
        except (OSError, ValueError) as err:
            detail = f"unreadable metrics.json ({err})"
            return Run(path, config, overrides, None, "failed", detail, valid)
        status = "interrupted" if metrics.get("interrupted", False) else "done"
        detail = str(metrics.get("stop_reason") or "")
        return Run(path, config, overrides, metrics, status, detail, valid)
    status, detail = _failure(path) or ("incomplete", _progress(path, valid))
    return Run(path, config, overrides, None, status, detail, valid)


def load_runs(roots: list[str | Path]) -> list[Run]:
    """Every run folder under the roots, each once, in the order found."""
    dirs: list[Path] = []
    for root in roots:
        dirs.extend(d for d in find_run_dirs(root) if d not in dirs)
    return [load_run(d) for d in dirs]
