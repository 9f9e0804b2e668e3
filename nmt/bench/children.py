"""One measurement per fresh interpreter, so that peak RSS belongs to one workload or size.

The parent runs `python -m nmt.bench` with its own settings plus `--one NAME` (or
`--one-preprocess N`) and `--result FILE`; the child writes its JSON result there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from nmt.bench.system import ROOT


def forwarded(args: argparse.Namespace) -> list[str]:
    """The parent's settings as command-line arguments for a child."""
    out = [
        "--steps", str(args.steps),
        "--warmup", str(args.warmup),
        "--precision", args.precision,
        "--threads", str(args.threads),
        "--device", args.device,
        "--seed", str(args.seed),
        "--work", str(args.work),
        "--decode-batch", str(args.decode_batch),
        "--min-len", str(args.min_len),
        "--spm-train-lines", str(args.spm_train_lines),
        "--peak-size", str(args.peak_size),
    ]  # fmt: skip
    if args.decode_sents is not None:
        out += ["--decode-sents", str(args.decode_sents)]
    if args.max_len is not None:
        out += ["--max-len", str(args.max_len)]
    if args.data_root:
        out += ["--data-root", args.data_root]
    for item in args.set:
        out += ["--set", item]
    for item in args.decode_ckpt:
        out += ["--decode-ckpt", item]
    if args.decode_deploy:
        out.append("--decode-deploy")
    return out


def child(args: argparse.Namespace, extra: list[str], log_path: Path) -> dict[str, Any] | None:
    """Run the benchmark with `extra` in a fresh interpreter; its JSON result or None on failure.

    The child runs in the checkout (cwd ROOT), so `-m nmt.bench` imports this very package.
    """
    result = Path(tempfile.mkstemp(suffix=".json", dir=args.work)[1])
    cmd = [sys.executable, "-m", "nmt.bench", *forwarded(args), *extra, "--result", str(result)]
    with open(log_path, "ab") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        if proc.returncode == 0:
            return json.loads(result.read_text())
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        print(f"bench: child failed (exit {proc.returncode}); log {log_path}:", file=sys.stderr)
        print("\n".join("    " + line for line in tail), file=sys.stderr)
        return None
    finally:
        result.unlink(missing_ok=True)


def write_result(path: str, result: dict[str, Any]) -> None:
    """The child's side: its result for the parent."""
    Path(path).write_text(json.dumps(result, indent=1) + "\n")
