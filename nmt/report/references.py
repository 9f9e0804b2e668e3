"""The two sides of a run's test score: its test.hyp and the references of its test split.

A run folder keeps its hypotheses (test.hyp, one line per test sentence, in order) but not the
references; they are read again from the data its config names (`.hydra/config.yaml`, `data`),
through the same `nmt.data` source and normalisation (`data.lowercase`, `data.tokenize`) that
training scored them against. Runs on one data set share one read. Whatever is missing (no
test.hyp, data no longer where it was, no network for a hub dataset) becomes a one-line reason,
never an exception out of the report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

from nmt.config import DataConfig
from nmt.report.runs import Run

HYP_FILE = "test.hyp"
DATA_FIELDS = {f.name for f in dataclasses.fields(DataConfig)}


class NoTestData(Exception):
    """Why a run cannot be scored; the message is one line."""


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def read_hypotheses(run_dir: Path) -> list[str]:
    """The lines of `run_dir/test.hyp` (blank ones kept: they are empty translations)."""
    from nmt.data import read_lines

    path = Path(run_dir) / HYP_FILE
    if not path.is_file():
        raise NoTestData(f"no {HYP_FILE}")
    try:
        return read_lines(path)
    except Exception as err:  # invalid UTF-8, unreadable file
        raise NoTestData(f"unreadable {HYP_FILE} ({_one_line(err)})") from None


def _locate(root: str | None, run_dir: Path) -> str | None:
    """A relative `data.root` is relative to where training was started (Hydra does not change
    folder): the report's own folder, else the first folder above the run that holds it."""
    if root is None or os.path.isabs(root) or os.path.isdir(root):
        return root
    for parent in Path(run_dir).resolve().parents:
        if (parent / root).is_dir():
            return str(parent / root)
    return root


def data_config(run: Run) -> DataConfig:
    """The run's `data` config, interpolations resolved, as a `DataConfig`."""
    from omegaconf import OmegaConf

    try:
        conf = OmegaConf.create(run.config)
        data = OmegaConf.to_container(conf.data, resolve=True) if "data" in conf else None
    except Exception as err:  # an interpolation that cannot be resolved here
        raise NoTestData(f"data config ({_one_line(err)})") from None
    if not isinstance(data, dict):
        raise NoTestData("no data config")
    cfg = DataConfig(**{k: v for k, v in data.items() if k in DATA_FIELDS})
    return dataclasses.replace(cfg, root=_locate(cfg.root, run.path))


def read_test_split(cfg: DataConfig) -> tuple[list[str], list[str]]:
    """The source and target sides of the test split, normalised as in training.

    A synthetic task is regenerated in a scratch folder (it is deterministic), so the report
    never writes into the data folder."""
    from nmt.data import open_source

    if cfg.source == "synthetic":
        with tempfile.TemporaryDirectory() as tmp:
            src, tgt = open_source(dataclasses.replace(cfg, root=tmp)).load("test")
    else:
        src, tgt = open_source(cfg).load("test")
    return list(src), list(tgt)


def read_references(cfg: DataConfig) -> list[str]:
    """The target side of the test split (`read_test_split`)."""
    return read_test_split(cfg)[1]


@dataclasses.dataclass
class TestSet:
    """One test split: its references, and the data name to call it by."""

    name: str
    references: list[str]


class References:
    """The test references of each run, read once per distinct data config.

    `sets` maps a test-set key (a hash of the references themselves, so runs whose data configs
    differ only in, say, vocabulary size share one) to the `TestSet`."""

    def __init__(self) -> None:
        self.sets: dict[str, TestSet] = {}
        self._keys: dict[str, str] = {}  # data config -> test-set key
        self._failed: dict[str, str] = {}  # data config -> why its references cannot be read

    def of(self, run: Run) -> str:
        """The key of the run's test set in `sets`; raises NoTestData with the reason."""
        cfg = data_config(run)
        config_key = json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str)
        if config_key not in self._keys and config_key not in self._failed:
            try:
                refs = read_references(cfg)
            except Exception as err:  # missing files, no network for the hub, a bad config
                self._failed[config_key] = _one_line(err)
            else:
                key = hashlib.sha1("\n".join(refs).encode("utf-8")).hexdigest()
                self.sets.setdefault(key, TestSet(cfg.name, refs))
                self._keys[config_key] = key
        if config_key in self._failed:
            raise NoTestData(f"no references ({self._failed[config_key]})")
        return self._keys[config_key]
