"""The summary `make bench` prints after bench.json: one row per workload, one per corpus size."""

from __future__ import annotations

from typing import Any

NAN = float("nan")


def _lengths(m: dict[str, Any]) -> str:
    """The output length control of the decode, if any (--min-len/--max-len)."""
    low, high = m.get("decode_min_len") or 0, m.get("decode_max_len")
    if low and low == high:
        return f", every output {low} tokens"
    return (f", at least {low} tokens" if low else "") + (
        f", at most {high} tokens" if high is not None else ""
    )


def _print_workloads(rows: list[dict[str, Any]], m: dict[str, Any]) -> None:
    head = f"{'workload':<22}{'params':>10}{'src tok/s':>11}{'tgt tok/s':>11}{'greedy s/s':>12}{'beam5 s/s':>11}{'RSS MB':>9}{'GFLOP/tok':>11}{'MFU':>8}"
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        mfu = r.get("mfu")
        print(
            f"{r['workload']:<22}{r['params']:>10,}{r['train_src_tokens_per_s']:>11,.0f}"
            f"{r['train_tgt_tokens_per_s']:>11,.0f}{r.get('greedy_sents_per_s', NAN):>12.1f}"
            f"{r.get('beam5_sents_per_s', NAN):>11.1f}{r['peak_rss_mb']:>9.0f}"
            f"{r['flops_per_tgt_token'] / 1e9:>11.4f}{(mfu if mfu is not None else NAN):>8.2%}"
        )
    print(
        f"({m['precision']}, {m['threads']} threads, {m['cpu']}, torch {m['torch']}; "
        f"{m['steps']} timed steps after {m['warmup']}; decode on {rows[0].get('decode_sents')} "
        f"test2016 sentences from {rows[0].get('decode_model')}"
        + _lengths(m)
        + "; matmul peak at the start "
        + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in m.get("matmul_peak_flops", {}).items())
        + "; MFU against the larger of that and the workload's own peak after its run: "
        + ", ".join(
            f"{r['workload']} {r['matmul_peak_flops'] / 1e9:.0f}"
            for r in rows
            if "matmul_peak_flops" in r
        )
        + ")"
    )


def _print_preprocess(pre: dict[str, Any]) -> None:
    head = f"{'lines':>12}{'lines/s':>12}{'encode l/s':>12}{'peak RSS MB':>13}{'baseline MB':>13}{'ids MB':>9}"
    print(
        "\npreprocessing (streaming prepare_data, SentencePiece sample "
        f"{pre['spm_train_lines']:,} lines per side)\n" + head + "\n" + "-" * len(head)
    )
    for s in pre["sizes"]:
        print(
            f"{s['lines']:>12,}{s['lines_per_s']:>12,.0f}{s['encode_lines_per_s']:>12,.0f}"
            f"{s['peak_rss_mb']:>13.0f}{s['baseline_rss_mb']:>13.0f}{s['ids_on_disk_mb']:>9.1f}"
        )
    if "peak_rss_ratio_largest_to_smallest" in pre:
        print(f"peak RSS, largest / smallest: {pre['peak_rss_ratio_largest_to_smallest']:.2f}x")


def print_table(report: dict[str, Any], names: list[str]) -> None:
    """The workloads of `names` that have results, then the preprocessing sizes, if any."""
    rows = [r for r in (report.get(n) for n in names) if r]
    if rows:
        _print_workloads(rows, report["meta"])
    pre = report.get("preprocess")
    if pre and pre.get("sizes"):
        _print_preprocess(pre)
