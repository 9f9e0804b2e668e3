"""`nmt-export CHECKPOINT --format ctranslate2 -o DIR`: a Transformer checkpoint as a CTranslate2
model folder (nmt.ct2), which `nmt-translate --engine ctranslate2 DIR` and `nmt-evaluate
--engine ctranslate2 DIR` decode (float32, or int8 with --quantize int8). `--shortlist FILE`
(from nmt-shortlist) adds CTranslate2's vocabulary map of that list; decode with `--shortlist
FILE` to use it."""

from __future__ import annotations

import argparse

from nmt.cli import run_main

FORMATS = ("ctranslate2",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nmt-export", description=__doc__)
    parser.add_argument("checkpoint", help="a Transformer checkpoint (.pt)")
    parser.add_argument("--format", default="ctranslate2", choices=FORMATS)
    parser.add_argument("-o", "--output", required=True, help="the model folder to write")
    parser.add_argument("--force", action="store_true", help="overwrite a non-empty folder")
    parser.add_argument(
        "--shortlist",
        default=None,
        help="a vocabulary shortlist from nmt-shortlist (RUN/shortlist.npz), written into the "
        "folder as CTranslate2's vocabulary map (vmap.txt)",
    )
    args = parser.parse_args(argv)

    def body() -> int:
        from nmt.ct2 import export_ctranslate2

        out = export_ctranslate2(args.checkpoint, args.output, args.force, args.shortlist)
        use = f" --shortlist {args.shortlist}" if args.shortlist else ""
        print(
            f"nmt-export: wrote {out} (CTranslate2; decode with nmt-translate --engine "
            f"ctranslate2{use})"
        )
        return 0

    return run_main("nmt-export", body)


if __name__ == "__main__":
    raise SystemExit(main())
