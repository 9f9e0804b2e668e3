"""`make bench ARGS="--whole-run SECONDS"`: the peak memory of whole training runs.

The timed steps of the benchmark meet part of the batch shapes of one epoch; a whole `nmt-train`
run meets all of them, validates and decodes the test set at the end, and its memory grows with
each new shape (oneDNN caches a primitive per matmul shape; the allocator keeps what it freed).
Here every workload is trained by `nmt-train` (`python -m nmt.train`, the workload's overrides)
for SECONDS of training, validating every 250 steps, with beam-5 test decoding at the end. The
workloads train side by side, each with `--threads` threads (two workloads on a 2-core CPU:
`--threads 1`), and each process's peak RSS is the kernel's (`os.wait4`'s ru_maxrss, as
`/usr/bin/time -v` reports it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from nmt.bench.system import ROOT
from nmt.bench.workload import workload_overrides
from nmt.rundir import finished_metrics

WHOLE_RUN = ["trainer.validate_every=250", "trainer.patience=null", "trainer.test_at_end=true"]
METRICS = ("steps", "epochs", "train_tgt_tokens_per_s", "test_bleu", "wall_s")


def whole_run_command(name: str, args: argparse.Namespace, folder: Path) -> list[str]:
    """`nmt-train` for workload `name`: its overrides, `--whole-run` seconds, run folder."""
    return [
        sys.executable, "-m", "nmt.train",
        *workload_overrides(name, args),
        f"trainer.max_time={args.whole_run}",
        *WHOLE_RUN,
        f"hydra.run.dir={folder}",
    ]  # fmt: skip


def run_whole(args: argparse.Namespace, names: list[str]) -> dict[str, dict[str, Any]]:
    """Every workload of `names` trained side by side for `args.whole_run` seconds: each
    one's peak RSS (MiB) and its run's steps, epochs, target tokens/s, test BLEU and wall
    time (metrics.json), or an error naming its log."""
    started: dict[str, tuple[subprocess.Popen, Path, Path]] = {}
    for name in names:
        folder, log_path = Path(args.work) / f"whole-{name}", Path(args.work) / f"whole-{name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                whole_run_command(name, args, folder), stdout=log, stderr=log, cwd=ROOT
            )
        started[name] = (proc, folder, log_path)
    out: dict[str, dict[str, Any]] = {}
    for name, (proc, folder, log_path) in started.items():
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        metrics = finished_metrics(folder)
        if proc.returncode != 0 or metrics is None:
            out[name] = {"error": f"exit {proc.returncode}; see {log_path}"}
            continue
        out[name] = {
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux, as in system.rss_mb
            "seconds": args.whole_run,
            "threads": args.threads,
            "side_by_side": len(names),
            **{key: metrics.get(key) for key in METRICS},
        }
    return out


def print_whole_runs(rows: dict[str, dict[str, Any]], meta: dict[str, Any]) -> None:
    head = f"{'workload':<22}{'peak RSS MB':>13}{'steps':>8}{'epochs':>8}{'tgt tok/s':>11}{'test BLEU':>11}"
    print("\nwhole runs (nmt-train)\n" + head + "\n" + "-" * len(head))
    for name, r in rows.items():
        if "error" in r:
            print(f"{name:<22}  failed: {r['error']}")
            continue
        bleu = r["test_bleu"] if r["test_bleu"] is not None else float("nan")
        print(
            f"{name:<22}{r['peak_rss_mb']:>13,.0f}{r['steps']:>8,}{r['epochs']:>8.2f}"
            f"{r['train_tgt_tokens_per_s']:>11,.0f}{bleu:>11.2f}"
        )
    first = next((r for r in rows.values() if "error" not in r), None)
    if first:
        print(
            f"({meta['precision']}, {first['seconds']} s of training each, {first['threads']} "
            f"thread(s) each, {first['side_by_side']} side by side, {meta['cpu']}; validation "
            "every 250 steps, beam-5 test decoding at the end)"
        )
