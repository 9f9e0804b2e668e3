"""`nmt-train`: the Hydra application. Composes conf/, validates it, trains, returns dev BLEU.

Configuration mistakes (an unknown key, a wrong type, a missing group option, an impossible
combination) are reported before Hydra starts the job and before any data is read, as one
line: `nmt-train: error: KEY...` (exit code 2). Set HYDRA_FULL_ERROR=1 for Python tracebacks.

Resuming: `nmt-train resume=RUN_DIR` (or `resume=RUN_DIR/checkpoints/step_N.pt`) continues the
run from `RUN_DIR/checkpoints/last.pt` in RUN_DIR, with the configuration saved in the
checkpoint. Keys given on the command line override it (e.g. `trainer.max_steps=20000` to
train longer); the data, model, attention and seed settings must stay those of the run.
Rerunning into a folder that holds `checkpoints/last.pt` (same `hydra.run.dir`, or a sweep run
again) resumes too, and a folder whose `metrics.json` says the run finished is skipped (use
`resume=` to train a finished run further). `progress.jsonl` and `valid.jsonl` are cut back to
the checkpoint's step, so every step is logged once. A checkpoint outside a run folder starts
a new run folder from its state.

Failures: one line `nmt-train: error: ...` and exit code 2; the reason is also written to the
run folder's `error.txt` for `nmt-report`. In a sweep (-m) a failed run does not stop the others.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from nmt.compose import CONF_DIR, register_configs
from nmt.config import MODEL_SCHEMAS, Config, ConfigError, model_schema, to_dataclass

register_configs()
RESUME_KEYS = ("config", "tokenizer", "model", "optimizer", "scheduler", "progress", "rng")
FIXED_ON_RESUME = ("seed", "data", "model", "attention")  # a resumed run keeps these ...
MOVABLE_ON_RESUME = ("data.root",)  # ... except where the corpus now lives
_ABSENT = object()


# --- one-line configuration errors -------------------------------------------------------
def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _field_names(cls: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []


def _allowed_keys(cause: Any) -> list[str]:
    """Field names of the config node an OmegaConf key error is about (model: by its arch)."""
    names = _field_names(getattr(cause, "object_type", None))
    parent = getattr(cause, "parent_node", None)
    if not names and isinstance(parent, DictConfig) and parent.get("arch") in MODEL_SCHEMAS:
        names = _field_names(MODEL_SCHEMAS[parent.get("arch")])
    return names


def describe_config_error(err: BaseException) -> str:
    """One line naming the key (or group) and what is allowed, for a Hydra/OmegaConf error."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    if isinstance(err, MissingConfigException) and err.missing_cfg_file:
        group, _, name = err.missing_cfg_file.rpartition("/")
        options = [o for o in (err.options or []) if not o.startswith("base_")]
        allowed = f"; choose one of {', '.join(options)}" if options else ""
        return f"{group or 'config'}={name}: no such option{allowed}"
    if isinstance(err, OverrideParseException):
        return f"cannot parse the command line: {_first_line(str(err))}"
    cause = err if isinstance(err, OmegaConfBaseException) else err.__cause__
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
        key, msg = cause.full_key, _first_line(getattr(cause, "msg", None) or str(cause))
        names = _allowed_keys(cause)
        if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and names:
            return f"{key}: unknown key; allowed keys here: {', '.join(names)}"
        return f"{key}: {msg}"
    return _first_line(str(err)) or type(err).__name__


def _check_schema(cfg: dict) -> None:
    """Merge into the typed schema, turning OmegaConf errors into one-line ConfigErrors."""
    schema = OmegaConf.structured(Config)
    schema.model = OmegaConf.structured(model_schema(cfg.get("model")))
    try:
        OmegaConf.merge(schema, cfg)
    except Exception as err:
        raise ConfigError(describe_config_error(err)) from None
    from nmt.models import check_config  # torch: imported only when a run is checked

    check_config(to_dataclass(cfg))


def _command_line(argv: list[str]) -> Any | None:
    """Hydra's own parse of argv, or None when the arguments are not plain overrides."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()

    def fail(message: str) -> None:
        raise ValueError(message)

    parser.error = fail  # type: ignore[method-assign]
    try:
        args = parser.parse_args(argv)
    except (ValueError, SystemExit):
        return None
    special = (args.help, args.hydra_help, args.cfg, args.info, args.shell_completion)
    elsewhere = (args.config_path, args.config_name, args.config_dir, args.experimental_rerun)
    return None if any(special) or any(elsewhere) else args


def _first_values(parsed: list) -> list[str] | None:
    """The overrides with every sweep replaced by its first value (None: cannot enumerate)."""
    out = []
    for o in parsed:
        if not o.is_sweep_override():
            out.append(o.input_line)
            continue
        try:
            first = next(iter(o.sweep_string_iterator()))
        except Exception:  # e.g. an interval for an optimising sweeper
            return None
        out.append(f"{o.get_key_element()}={first}")
    return out


def precheck(argv: list[str]) -> None:
    """Compose and validate the configuration argv describes; raise ConfigError (one line).

    A sweep (-m) is composed with the first value of each swept key (keys, types and groups
    are checked; each run's values are validated when it starts, and a bad run does not stop
    the sweep). --help, --cfg, --info and other config folders are left to Hydra.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    args = _command_line(argv)
    if args is None:
        return
    try:
        parsed = OverridesParser.create().parse_overrides(args.overrides)
    except Exception as err:
        raise ConfigError(describe_config_error(err)) from None
    sweeps = [o for o in parsed if o.is_sweep_override()]
    if sweeps and not args.multirun:
        raise ConfigError(
            f"{sweeps[0].input_line}: a sweep needs --multirun (-m); for a list write "
            f"{sweeps[0].key_or_group}=[a,b], for a string with commas quote it"
        )
    overrides = _first_values(parsed)
    if overrides is None:
        return
    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3", job_name="nmt-train"):
            cfg = compose("config", overrides=overrides)
        plain = OmegaConf.to_container(cfg, resolve=True)
    except Exception as err:
        raise ConfigError(describe_config_error(err)) from None
    if not args.multirun and not plain.get("resume"):  # resume: checked against the saved config
        _check_schema(plain)


# --- resuming ----------------------------------------------------------------------------
def explicit_keys(overrides: list[str]) -> list[str]:
    """The config keys (or groups) a command line sets, without hydra.* and resume."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = []
    for o in OverridesParser.create().parse_overrides(overrides):
        key = o.key_or_group
        if o.is_delete() or o.package or key == "resume" or key.split("/")[0].startswith("hydra"):
            continue
        keys.append(key.replace("/", "."))
    return keys


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flatten(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def resume_config(saved: dict, composed: DictConfig, keys: list[str]) -> dict:
    """The saved run config with the command line's explicit keys applied; ConfigError when
    they change what a resumed run must keep (data, model, attention, seed)."""
    merged = OmegaConf.create(saved)
    for key in keys:
        value = OmegaConf.select(composed, key, default=_ABSENT)
        if value is not _ABSENT:
            OmegaConf.update(merged, key, value, merge=False, force_add=True)
    out = OmegaConf.to_container(merged, resolve=True)
    _check_schema(out)
    old = _flatten(dataclasses.asdict(to_dataclass(saved)))
    new = _flatten(dataclasses.asdict(to_dataclass(out)))
    for key in sorted(new):
        fixed = key.split(".")[0] in FIXED_ON_RESUME and key not in MOVABLE_ON_RESUME
        if fixed and new[key] != old.get(key):
            raise ConfigError(
                f"{key}={new[key]!r} differs from the run being resumed ({old.get(key)!r}); a "
                "resumed run keeps its data, model, attention and seed settings"
            )
    return out


def truncate_jsonl(path: Path, step: int) -> None:
    """Keep the complete records of `path` with "step" <= `step` (drops a torn last line)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (
            isinstance(record, dict)
            and isinstance(record.get("step"), int)
            and record["step"] <= step
        ):
            kept.append(line + "\n")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    os.replace(tmp, path)


def resolve_run(cfg: DictConfig, run_dir: Path, overrides: list[str]) -> tuple[dict, Path]:
    """(config, run folder) for this job: fresh, or resumed from a checkpoint."""
    from nmt.checkpoint import load_checkpoint

    resume = cfg.get("resume")
    if not resume and (run_dir / "checkpoints" / "last.pt").is_file():
        resume = str(run_dir)  # rerun into an existing run folder: continue it
    if not resume:
        return OmegaConf.to_container(cfg, resolve=True), run_dir
    path = Path(resume)
    ckpt_path = path / "checkpoints" / "last.pt" if path.is_dir() else path
    ckpt = load_checkpoint(ckpt_path, require=RESUME_KEYS)
    try:
        out = resume_config(ckpt["config"], cfg, explicit_keys(overrides))
    except ConfigError as err:
        raise ConfigError(f"cannot resume from {ckpt_path}: {err}") from None
    out["resume"] = str(ckpt_path)
    if ckpt_path.parent.name == "checkpoints":
        run_dir = ckpt_path.parent.parent
        main_process = os.environ.get("RANK", "0") == "0"  # torchrun: rank 0 owns the logs
        for name in ("progress.jsonl", "valid.jsonl") if main_process else ():
            truncate_jsonl(run_dir / name, int(ckpt["progress"]["step"]))
    return out, run_dir


# --- the application ---------------------------------------------------------------------
def _fail(message: str, code: int = 2) -> None:
    print(f"nmt-train: error: {message}", file=sys.stderr)
    sys.exit(code)


def _run(cfg: DictConfig) -> float:
    """One job. In a sweep (-m), a run that fails is recorded (error.txt) and the sweep goes on,
    and a rerun of the sweep skips the runs that already finished."""
    from hydra.types import RunMode

    from nmt.checkpoint import CheckpointError
    from nmt.data.corpus import DataError
    from nmt.pipeline import run
    from nmt.rundir import finished_metrics, record_failure
    from nmt.trainer import TrainingError

    hc = HydraConfig.get()
    run_dir = Path(hc.runtime.output_dir)
    sweep = hc.mode == RunMode.MULTIRUN
    done = None if cfg.get("resume") else finished_metrics(run_dir)
    if done is not None:
        print(f"nmt-train: {run_dir} has finished already (metrics.json): skipped", file=sys.stderr)
        return float(done.get("dev_bleu", 0.0))
    try:
        cfg_dict, run_dir = resolve_run(cfg, run_dir, list(hc.overrides.task))
        metrics = run(cfg_dict, run_dir)
    except (ConfigError, DataError, CheckpointError, TrainingError) as err:
        record_failure(run_dir, err)
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if not sweep:
            _fail(str(err))
        print(f"nmt-train: error: {err} (in {run_dir}; the sweep goes on)", file=sys.stderr)
        return float("nan")
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as err:  # a bug or the machine (out of memory, disk full): keep the trace
        record_failure(run_dir, err)
        raise
    return float(metrics.get("dev_bleu", 0.0))


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def hydra_main(cfg: DictConfig) -> float:
    return _run(cfg)


def main() -> None:
    if os.environ.get("HYDRA_FULL_ERROR") != "1":
        try:
            precheck(sys.argv[1:])
        except ConfigError as err:
            _fail(str(err))
    hydra_main()


if __name__ == "__main__":
    main()
