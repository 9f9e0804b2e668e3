"""`--preprocess`: streaming `prepare_data` on Multi30k train repeated 1x, 10x, 100x.

The parent writes each corpus size (`run_preprocess`), a fresh child measures it
(`run_one_preprocess`): lines/s, encoding lines/s, peak RSS and the ids' size on disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from nmt.bench.children import child
from nmt.bench.system import rss_mb
from nmt.bench.workload import COMMON, TRANSFORMER, build_config, quiet_logger


# --- the child: one corpus size ------------------------------------------------------------------
def _size_record(bundle: Any, seconds: float, baseline: float, spm_lines: int) -> dict[str, Any]:
    """bench.json's entry for one corpus size, from the prepared data bundle."""
    peak = rss_mb()
    stats = dict(bundle.stats)
    stats.pop("train_dir", None)
    n = stats["n_read"]
    disk = sum(p.stat().st_size for p in Path(bundle.stats["train_dir"]).glob("*.npy"))
    return {
        "lines": n,
        "seconds": round(seconds, 2),
        "lines_per_s": round(n / seconds, 1),
        "encode_lines_per_s": round(n / max(stats.get("encode_s", 0.0), 1e-9), 1),
        "baseline_rss_mb": round(baseline, 1),
        "peak_rss_mb": round(peak, 1),
        "peak_minus_baseline_mb": round(peak - baseline, 1),
        "spm_train_lines": spm_lines,
        "ids_on_disk_mb": round(disk / 2**20, 1),
        "stats": stats,
    }


def run_one_preprocess(args: argparse.Namespace) -> dict[str, Any]:
    """The child for `--one-preprocess N --corpus DIR`: `prepare_data` of DIR, timed."""
    import torch

    torch.set_num_threads(args.threads)
    from nmt.data import prepare_data

    cfg = build_config(
        [
            *COMMON,
            *TRANSFORMER,
            "data.source=local",
            f"data.root={Path(args.corpus)}",
            f"data.spm_train_lines={args.spm_train_lines}",
        ]
    )
    out_dir = Path(args.work) / f"pre-{os.getpid()}"
    baseline = rss_mb("VmRSS")
    tick = time.perf_counter()
    bundle = prepare_data(cfg.data, out_dir, None, args.seed, quiet_logger())
    seconds = time.perf_counter() - tick
    result = _size_record(bundle, seconds, baseline, cfg.data.spm_train_lines)
    shutil.rmtree(out_dir, ignore_errors=True)
    return result


# --- the parent: every corpus size ---------------------------------------------------------------
def write_repeated(
    base: Path, out: Path, repeats: int, src: str, tgt: str, limit: int | None
) -> None:
    """train.{src,tgt} = the base training split (first `limit` lines) repeated; val/test linked."""
    from nmt.data.corpus import find_split_file, read_lines

    out.mkdir(parents=True, exist_ok=True)
    for lang in (src, tgt):
        path = find_split_file(base, "train", lang)
        if path is None:
            raise SystemExit(
                f"bench: no train.{lang}[.gz] in {base}; set NMT_DATA_ROOT or --data-root"
            )
        text = "".join(line + "\n" for line in read_lines(path, limit)).encode("utf-8")
        with open(out / f"train.{lang}", "wb") as f:
            for _ in range(repeats):
                f.write(text)
    for item in base.iterdir():
        if not item.name.startswith("train."):
            (out / item.name).symlink_to(item.resolve())


def _measure_size(args: argparse.Namespace, cfg: Any, repeats: int) -> dict[str, Any] | None:
    """Write the corpus repeated `repeats` times, measure it in a child, delete it."""
    base = Path(cfg.data.root)
    corpus = Path(tempfile.mkdtemp(prefix=f"corpus-x{repeats}-", dir=args.work))
    try:
        print(f"bench: preprocessing {repeats}x {base.name} ...", flush=True)
        write_repeated(
            base, corpus, repeats, cfg.data.src_lang, cfg.data.tgt_lang, args.preprocess_base_lines
        )
        return child(
            args,
            ["--one-preprocess", str(repeats), "--corpus", str(corpus)],
            Path(args.work) / "preprocess.log",
        )
    finally:
        shutil.rmtree(corpus, ignore_errors=True)


def run_preprocess(args: argparse.Namespace) -> dict[str, Any]:
    """bench.json's "preprocess": one entry per size of `--preprocess-repeats`."""
    cfg = build_config(
        [*COMMON, *TRANSFORMER] + ([f"data.root={args.data_root}"] if args.data_root else [])
    )
    sizes = []
    for repeats in [int(r) for r in args.preprocess_repeats.split(",")]:
        res = _measure_size(args, cfg, repeats)
        if res is not None:
            res["repeats"] = repeats
            sizes.append(res)
    out: dict[str, Any] = {
        "corpus": str(Path(cfg.data.root)),
        "format": "plain text, train split repeated; val/test as given",
        "spm_train_lines": args.spm_train_lines,
        "sizes": sizes,
    }
    if len(sizes) >= 2:
        out["peak_rss_ratio_largest_to_smallest"] = round(
            sizes[-1]["peak_rss_mb"] / sizes[0]["peak_rss_mb"], 3
        )
    return out
