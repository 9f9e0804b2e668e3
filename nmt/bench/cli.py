"""`python scripts/bench.py` (`make bench`): arguments, the parent's loop, bench.json, the table.

The parent prepares the shared data, measures the matmul peaks, then runs every workload and
every preprocessing size in a fresh child (`nmt.bench.children`); a child is this same entry
point with `--one NAME` or `--one-preprocess N`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import nmt.bench
from nmt.bench.children import child, write_result
from nmt.bench.preprocess import run_one_preprocess, run_preprocess
from nmt.bench.system import auto_precision, bench_device, matmul_peak, meta
from nmt.bench.table import print_table
from nmt.bench.wholerun import print_whole_runs, run_whole
from nmt.bench.workload import all_workloads, prepare_shared_data, run_one, workload_overrides
from nmt.config import ConfigError, DecodeConfig, check_output_lengths


# --- arguments -----------------------------------------------------------------------------------
def _add_measurement_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workloads",
        default=None,
        help="comma-separated: rnn_<mechanism>, transformer (default: every mechanism, then the Transformer)",
    )
    p.add_argument("--steps", type=int, default=30, help="timed training steps per workload")
    p.add_argument("--warmup", type=int, default=5, help="untimed training steps first")
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "auto"),
        default="auto",
        help="auto: bf16 where the CPU has AVX512-BF16/AMX (or on a CUDA GPU), else fp32",
    )
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu")
    p.add_argument("--seed", type=int, default=1)


def _add_decode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--decode-sents", type=int, default=None, help="decode only the first K test2016 sentences"
    )
    p.add_argument(
        "--decode-batch",
        type=int,
        default=DecodeConfig().batch_size,
        help="sentences per decoding batch",
    )
    p.add_argument(
        "--decode-ckpt",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="decode this trained run/checkpoint for workload NAME",
    )
    p.add_argument(
        "--min-len",
        type=int,
        default=0,
        help="decode.min_len: no end of sentence before this many output tokens",
    )
    p.add_argument(
        "--max-len",
        type=int,
        default=None,
        help="decode.max_len: at most this many output tokens; --min-len N --max-len N decodes "
        "exactly N tokens per sentence, as the peers' FIXED_LEN=N (../shared/bench-peers)",
    )
    p.add_argument(
        "--decode-deploy",
        action="store_true",
        help="with --decode-ckpt: also decode it in int8, over its vocabulary shortlist "
        "(RUN/shortlist.npz, built if missing: nmt-shortlist) in float and int8, and, for a "
        "Transformer, with CTranslate2 (float32 and int8, without and with the shortlist as its "
        "vocabulary map); bench.json gets int8_*, shortlist_*, int8_shortlist_*, ct2_*, "
        "ct2_int8_*, ct2_shortlist_*, ct2_int8_shortlist_* fields",
    )


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Hydra override; prefix rnn: or transformer: for one family",
    )
    p.add_argument(
        "--data-root",
        default=None,
        help="corpus folder (default: data.root of conf/data/multi30k.yaml)",
    )
    p.add_argument("--peak-size", type=int, default=2048, help="matrix size for the matmul peak")
    p.add_argument(
        "--whole-run",
        type=int,
        default=None,
        metavar="SECONDS",
        help="instead of the timed steps: train each workload with nmt-train for SECONDS, all "
        "side by side (each with --threads), and record each run's peak RSS (nmt.bench.wholerun)",
    )
    p.add_argument("--out", default="bench.json")
    p.add_argument(
        "--work",
        default=None,
        help="scratch folder (default: a new temporary folder, deleted at the end)",
    )


def _add_preprocess_args(p: argparse.ArgumentParser) -> None:
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--preprocess", action="store_true", help="only the preprocessing benchmark")
    mode.add_argument(
        "--no-preprocess", action="store_true", help="skip the preprocessing benchmark"
    )
    p.add_argument(
        "--preprocess-repeats", default="1,10,100", help="corpus sizes as repeats of Multi30k train"
    )
    p.add_argument(
        "--preprocess-base-lines",
        type=int,
        default=None,
        help="repeat only the first K training lines",
    )
    p.add_argument(
        "--spm-train-lines",
        type=int,
        default=100_000,
        help="preprocessing: SentencePiece sample per side",
    )


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(nmt.bench.__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_measurement_args(p)
    _add_decode_args(p)
    _add_run_args(p)
    _add_preprocess_args(p)
    p.add_argument("--one", help=argparse.SUPPRESS)  # the children's arguments
    p.add_argument("--one-preprocess", help=argparse.SUPPRESS)
    p.add_argument("--corpus", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --- the parent ----------------------------------------------------------------------------------
def _write_report(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=1) + "\n")


def workload_mfu(res: dict[str, Any], peaks: dict[str, float]) -> None:
    """Set `res`'s matmul peak and MFU: against the larger of the run's starting peak of its
    precision and the peak its child measured after its work (`workload.run_one`). A peak is
    what the machine can sustain; a lower reading is a moment when something else had the
    cores, so the larger one is taken, and the MFU is the lower, conservative one."""
    peak = max(peaks[res["precision"]], res.get("matmul_peak_after_flops", 0))
    res["matmul_peak_flops"] = round(peak)
    res["mfu"] = round(res["flops_per_tgt_token"] * res["train_tgt_tokens_per_s"] / peak, 5)


def _one_workload(args: argparse.Namespace, name: str, peaks: dict[str, float]) -> dict[str, Any]:
    """Workload `name` measured in a child, with its MFU (`workload_mfu`)."""
    res = child(args, ["--one", name], Path(args.work) / f"{name}.log")
    if res is None:
        return {"workload": name, "error": f"failed; see {args.work}/{name}.log"}
    workload_mfu(res, peaks)
    return res


def run_workloads(
    args: argparse.Namespace, names: list[str], report: dict[str, Any], out_path: Path
) -> None:
    """Shared data, matmul peaks, then every workload; bench.json rewritten after each."""
    print(f"bench: preparing data (tokenizer, encoding) in {args.work} ...", flush=True)
    report["meta"]["data"] = prepare_shared_data(args, names)
    device = bench_device(args.device)
    # bf16's peak only where it is measured: emulated bf16 (no AVX512-BF16/AMX) takes minutes
    # for a few 2048^2 matmuls and is not what any workload runs at
    wanted = ("fp32", "bf16") if args.precision == "bf16" else ("fp32",)
    peaks = {p: matmul_peak(p, args.peak_size, device) for p in wanted}
    report["meta"]["matmul_peak_flops"] = {k: round(v) for k, v in peaks.items()}
    report["meta"]["matmul_peak_size"] = args.peak_size
    for name in names:
        print(
            f"bench: {name}: {args.warmup} + {args.steps} training steps, then decoding ...",
            flush=True,
        )
        report[name] = _one_workload(args, name, peaks)
        if "error" not in report[name]:
            _write_report(out_path, report)  # partial results survive


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.one or args.one_preprocess:  # a child: one measurement, result to --result
        write_result(args.result, run_one(args) if args.one else run_one_preprocess(args))
        return 0

    try:
        check_output_lengths(args.min_len, args.max_len, "--min-len", "--max-len")
    except ConfigError as err:
        raise SystemExit(f"bench: {err}") from None
    workloads = args.workloads or ",".join(all_workloads())
    names = [] if args.preprocess else [n.strip() for n in workloads.split(",") if n.strip()]
    if args.whole_run is not None and args.whole_run <= 0:
        raise SystemExit(f"bench: --whole-run {args.whole_run}: give a positive number of seconds")
    if args.precision == "auto":
        args.precision = auto_precision(args.device)
    for name in names:
        workload_overrides(name, args)  # unknown names fail now
    own_work = args.work is None
    args.work = str(Path(args.work or tempfile.mkdtemp(prefix="nmt-bench-")).resolve())
    Path(args.work).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {"meta": meta(args), "workloads": names}
    out_path = Path(args.out).resolve()
    if args.whole_run is not None:
        return _whole_runs(args, names, report, out_path)
    try:
        if names:
            run_workloads(args, names, report, out_path)
        if not args.no_preprocess and (args.preprocess or names):
            report["preprocess"] = run_preprocess(args)
        _write_report(out_path, report)
    finally:
        failed = [n for n in names if "error" in report.get(n, {"error": 1})]
        if own_work and not failed:
            shutil.rmtree(args.work, ignore_errors=True)
    print_table(report, [n for n in names if n not in failed])
    if failed:
        print(
            f"bench: failed workloads: {', '.join(failed)} (logs in {args.work})", file=sys.stderr
        )
    print(f"\nbench: results written to {out_path}")
    return 1 if failed else 0


def _whole_runs(
    args: argparse.Namespace, names: list[str], report: dict[str, Any], out_path: Path
) -> int:
    """`--whole-run`: every workload trained by nmt-train, side by side; bench.json gets
    `whole_run` (the run folders stay in --work)."""
    print(
        f"bench: whole runs of {args.whole_run} s, side by side: {', '.join(names)} "
        f"(folders in {args.work}) ...",
        flush=True,
    )
    report["whole_run"] = run_whole(args, names)
    _write_report(out_path, report)
    print_whole_runs(report["whole_run"], report["meta"])
    print(f"\nbench: results written to {out_path}")
    failed = [n for n, r in report["whole_run"].items() if "error" in r]
    if failed:
        print(f"bench: failed whole runs: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0
