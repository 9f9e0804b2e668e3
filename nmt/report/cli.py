"""`nmt-report DIR [DIR ...] [-o OUT]`: read every run folder, write the tables and figures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nmt.errors import UserError
from nmt.files import atomic_write_text
from nmt.report.figures import plot_attention_grid, plot_bleu_by_length, plot_dev_bleu_vs_time
from nmt.report.groups import Group, group_runs
from nmt.report.html import REPORT_FILE, page_summary, report_page
from nmt.report.markdown import figures_markdown, tables_markdown
from nmt.report.runs import Run, find_run_dirs, load_runs
from nmt.report.stats import RESAMPLES, compare
from nmt.report.tables import write_leaderboard_csv, write_runs_csv


def draw_figures(
    runs: list[Run], groups: list[Group], fig_dir: Path, heatmaps: bool, sentences: int, device: str
) -> tuple[dict[str, list[Path]], list[str]]:
    """{section title: figure paths} and notes on the figures that were skipped."""
    figures: dict[str, list[Path]] = {}
    notes: list[str] = []
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
    return figures, notes


def make_report(
    roots: list[str | Path],
    out: str | Path | None = None,
    heatmaps: bool = True,
    sentences: int = 3,
    device: str = "cpu",
    resamples: int = RESAMPLES,
    html: bool = True,
    explore: bool = True,
    explore_sentences: int | None = None,
    gold: str | Path | None = None,
    gold_order: str = "de-en",
) -> dict[str, Any]:
    """Write leaderboard.md/.csv, runs.csv, figures/ and report.html; returns what was written.

    `resamples`: bootstrap resamples for the confidence intervals and the paired test against
    the best configuration (`nmt.report.stats`); 0 skips them. `html`: write report.html
    (`nmt.report.html`); `explore`: with the sentence explorer (`nmt.report.explorer`) over the
    first `explore_sentences` test sentences (all by default), or over the gold-aligned test set
    in the folder `gold`."""
    runs = load_runs(roots)
    out = Path(out if out is not None else roots[0])
    out.mkdir(parents=True, exist_ok=True)
    groups, unfinished, common = group_runs(runs)
    sig = compare(groups, resamples)
    write_leaderboard_csv(groups, unfinished, common, out, sig)
    write_runs_csv(runs, common, out, sig)
    title = "Sweep report: " + ", ".join(str(r) for r in roots)
    md = tables_markdown(runs, groups, unfinished, common, out, title, sig)
    figures, notes = draw_figures(runs, groups, out / "figures", heatmaps, sentences, device)
    text = "\n".join([md] + figures_markdown(figures, notes, out)).rstrip() + "\n"
    atomic_write_text(out / "leaderboard.md", text)
    page = None
    if html:
        from nmt.explore.page import write_page
        from nmt.report.explorer import report_explorer

        explorer, page_notes = (
            report_explorer(groups, device, explore_sentences, gold, gold_order)
            if explore and groups
            else (None, [])
        )
        data = report_page(runs, groups, sig, out, title, explorer, page_notes)
        page = write_page(data, out / REPORT_FILE)
        text += f"\nreport.html: {page_summary(data)}\n"
    return {
        "html": page,
        "runs": runs,
        "groups": groups,
        "unfinished": unfinished,
        "significance": sig,
        "markdown": out / "leaderboard.md",
        "csv": out / "leaderboard.csv",
        "figures": [p for ps in figures.values() for p in ps],
        "text": text,
    }


def build_parser() -> argparse.ArgumentParser:
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
    parser.add_argument("--no-html", action="store_true", help="do not write report.html")
    parser.add_argument(
        "--no-explorer",
        action="store_true",
        help="report.html without the sentence explorer (no checkpoint is loaded for it)",
    )
    parser.add_argument(
        "--explore-sentences",
        type=int,
        default=None,
        help="test sentences in the explorer of report.html (default: all)",
    )
    parser.add_argument(
        "--gold",
        help="explore a gold-aligned test set instead: a folder with test.<src>, test.<tgt> and "
        "alignment.talp (e.g. ../shared/data/rwth-align-de-en); every system translates it",
    )
    parser.add_argument(
        "--gold-order",
        default="de-en",
        help="languages of the first and second gold index (default de-en)",
    )
    parser.add_argument(
        "--resamples",
        type=int,
        default=RESAMPLES,
        help="bootstrap resamples for the 95%% confidence intervals and the paired test against "
        f"the best configuration (sacreBLEU; default {RESAMPLES}; 0 skips them)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for d in args.dirs:
        if not Path(d).is_dir():
            print(f"nmt-report: error: {d}: no such folder", file=sys.stderr)
            return 2
    if args.sentences < 1:
        parser.error(f"--sentences must be >= 1, got {args.sentences}")
    if args.resamples < 0:
        parser.error(f"--resamples must be >= 0, got {args.resamples}")
    if not any(find_run_dirs(d) for d in args.dirs):
        print(
            f"nmt-report: error: no run folders (with .hydra/config.yaml) under {', '.join(args.dirs)}",
            file=sys.stderr,
        )
        return 2
    if args.explore_sentences is not None and args.explore_sentences < 1:
        parser.error(f"--explore-sentences must be >= 1, got {args.explore_sentences}")
    if args.gold is not None and not Path(args.gold).is_dir():
        print(f"nmt-report: error: --gold {args.gold}: no such folder", file=sys.stderr)
        return 2
    try:
        result = make_report(
            args.dirs,
            args.out,
            not args.no_heatmaps,
            args.sentences,
            args.device,
            args.resamples,
            html=not args.no_html,
            explore=not args.no_explorer,
            explore_sentences=args.explore_sentences,
            gold=args.gold,
            gold_order=args.gold_order,
        )
    except UserError as err:
        print(f"nmt-report: error: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(result["text"])
    print(
        f"\nnmt-report: wrote {result['markdown']}, {result['csv']}, "
        f"{len(result['figures'])} figures" + (f" and {result['html']}" if result["html"] else ""),
        file=sys.stderr,
    )
    return 0
