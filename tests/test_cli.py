"""`nmt-translate` and `nmt-evaluate` on a trained checkpoint: robust to any input line, clear
one-line errors (exit code 2) for bad checkpoints, attention JSON lines, BLEU/chrF output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT

from nmt import evaluate, translate
from nmt.checkpoint import VERSION, save_checkpoint

LONG_TOKENS = 3000  # far longer than any training sentence (at most 7 symbols)

# (raw input line, what must hold for it)
BAD_LINES: list[bytes] = [
    b"a1 a2 a3",
    b"",  # empty -> empty
    b"a4 \xff\xfe a5",  # invalid UTF-8 -> replacement characters and a warning naming the line
    " ".join(["a1"] * LONG_TOKENS).encode(),  # far too long -> truncated with a warning
    "zzz \u2603 \u6f22\u5b57 \U0001f600".encode(),  # only unknown characters
    b"\x01\x02\x1b",  # control characters only -> empty
    b"   \t ",  # whitespace only -> empty
    "a2\u2028a3\x0ba4\x85".encode(),  # characters other tools read as line breaks
    b"a5 a6\r",  # CRLF line ending
]
EMPTY_OUT = {1, 5, 6}  # 0-based lines that must translate to an empty line


def _ckpt(run: Path) -> Path:
    return run / "checkpoints" / "best.pt"


def _input(tmp_path: Path) -> Path:
    path = tmp_path / "in.txt"
    path.write_bytes(b"\n".join(BAD_LINES) + b"\n")
    return path


def _check_output(text: str) -> list[str]:
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) - 1 == len(BAD_LINES), text
    lines = lines[:-1]
    assert len(text.splitlines()) == len(BAD_LINES)  # no stray line breaks of any kind
    for i in EMPTY_OUT:
        assert lines[i] == "", (i, lines[i])
    return lines


def _translate_process(args: list[str], stdin: bytes) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "nmt.translate", *args]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    proc.stdin.write(stdin)
    proc.stdin.close()
    return proc


@pytest.mark.slow
def test_translate_processes_stdin_to_stdout(trained_run, tmp_path):
    """Two real processes at once: bad input lines survive; a truncated checkpoint exits 2."""
    bad = tmp_path / "cut.pt"
    bad.write_bytes(_ckpt(trained_run).read_bytes()[:1000])
    good = _translate_process(
        [str(_ckpt(trained_run)), "--beam", "2"], _input(tmp_path).read_bytes()
    )
    cut = _translate_process([str(bad)], b"a1\n")
    out, err = good.stdout.read().decode("utf-8"), good.stderr.read().decode()
    assert good.wait(timeout=300) == 0, err
    assert "Traceback" not in err
    _check_output(out)
    assert "warning: <stdin>:3: invalid UTF-8 (byte 0xff at column 4)" in err
    assert f"warning: <stdin>:4: {LONG_TOKENS} source tokens" in err
    assert len(err.strip().splitlines()) == 2, err  # nothing else is reported
    assert cut.wait(timeout=300) == 2 and cut.stdout.read() == b""
    assert cut.stderr.read().decode().strip().splitlines() == [
        f"nmt-translate: error: {bad}: not a checkpoint, or a truncated one "
        "(PytorchStreamReader failed reading zip archive: failed finding central directory)"
    ]


def test_translate_files_and_attention_json(trained_run, tmp_path, capsys):
    out, att = tmp_path / "out.txt", tmp_path / "att.jsonl"
    args = [
        str(trained_run),
        "-i",
        str(_input(tmp_path)),
        "-o",
        str(out),
        "--attention-out",
        str(att),
    ]
    assert translate.main(args + ["--beam", "1", "--batch-size", "2"]) == 0
    assert "in.txt:3: invalid UTF-8" in capsys.readouterr().err
    lines = _check_output(out.read_text(encoding="utf-8"))
    records = [json.loads(line) for line in att.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in records] == list(range(1, len(BAD_LINES) + 1))
    for i, (record, text) in enumerate(zip(records, lines)):
        assert {"line", "source_tokens", "target_tokens", "attention"} <= set(record)
        if i in EMPTY_OUT:
            assert record["source_tokens"] == [] and record["attention"] == []
            continue
        assert record["source_tokens"][-1] == "</s>"  # translated, not skipped
        assert len(record["target_tokens"]) == len(text.split())  # word pieces <-> output words
        assert len(record["attention"]) == len(record["target_tokens"])
        for row in record["attention"]:
            assert len(row) == len(record["source_tokens"])
            # each weight is written rounded to 5 decimals (off by at most 5e-6), and a long source's
            # near-uniform row rounds alike: 300 weights of 0.003374 are written as 0.00337
            assert abs(sum(row) - 1.0) <= len(row) * 5e-6 + 1e-6
    assert {"\u2581a4", "\u2581a5"} <= set(records[2]["source_tokens"])  # the valid parts are kept
    assert len(records[3]["source_tokens"]) < LONG_TOKENS  # truncated to the model's limit


def _bad_checkpoints(run: Path, tmp_path: Path) -> dict[str, Path]:
    ckpt = torch.load(_ckpt(run), weights_only=True)
    data = _ckpt(run).read_bytes()
    files = {
        "truncated": data[: len(data) // 3],
        "random": bytes(range(256)) * 40,
    }
    out = {}
    for name, raw in files.items():
        out[name] = tmp_path / f"{name}.pt"
        out[name].write_bytes(raw)
    ckpt = {k: v for k, v in ckpt.items() if k not in ("format", "version")}
    out["newer_version"] = tmp_path / "newer.pt"
    save_checkpoint(out["newer_version"], ckpt)
    raw = torch.load(out["newer_version"], weights_only=True)
    raw["version"] = VERSION + 1
    torch.save(raw, out["newer_version"])
    out["wrong_weights"] = tmp_path / "wrong.pt"
    save_checkpoint(out["wrong_weights"], {**ckpt, "model": {"nonsense": torch.ones(3)}})
    out["missing"] = tmp_path / "missing.pt"
    return out


def test_translate_bad_checkpoints_exit_2_with_one_line(trained_run, tmp_path, capsys):
    src = _input(tmp_path)
    for name, path in _bad_checkpoints(trained_run, tmp_path).items():
        assert translate.main([str(path), "-i", str(src)]) == 2, name
        captured = capsys.readouterr()
        assert captured.out == "", name
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nmt-translate: error: "), (
            name,
            captured.err,
        )
        assert str(path) in lines[0], (name, lines[0])


def test_translate_missing_input_and_bad_arguments(trained_run, tmp_path, capsys):
    assert translate.main([str(trained_run), "-i", str(tmp_path / "nope.txt")]) == 2
    assert "nope.txt: no such input file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        translate.main([str(trained_run), "--beam", "0"])
    assert exit_.value.code == 2 and "--beam must be >= 1" in capsys.readouterr().err


def test_attention_layer_and_head_are_checked_against_the_model(tmp_path):
    from conftest import compose, tiny_overrides

    from nmt.config import ConfigError, to_dataclass
    from nmt.translate import check_attention_choice

    cfg = to_dataclass(compose(tiny_overrides(tmp_path, model="transformer")))
    heads, layers = cfg.model.heads, cfg.model.dec_layers
    check_attention_choice(cfg, -1, heads - 1)
    with pytest.raises(
        ConfigError, match=f"--layer={layers}: the model has {layers} decoder layers"
    ):
        check_attention_choice(cfg, layers, None)
    with pytest.raises(ConfigError, match=f"--head={heads}: the model has {heads} heads"):
        check_attention_choice(cfg, 0, heads)
    check_attention_choice(to_dataclass(compose(tiny_overrides(tmp_path))), 7, 9)  # RNN: ignored


def _test_split(run: Path, tmp_path: Path, n: int = 12) -> tuple[Path, Path]:
    """The first `n` lines of the run's test split, copied to `tmp_path`."""
    data = run.parent / "data"
    out = []
    for side in ("src", "tgt"):
        lines = (data / f"test.{side}").read_text(encoding="utf-8").splitlines()[:n]
        out.append(tmp_path / f"test.{side}")
        out[-1].write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return out[0], out[1]


def test_evaluate_prints_bleu_chrf_and_signatures(trained_run, tmp_path, capsys):
    src, ref = _test_split(trained_run, tmp_path)
    hyp = tmp_path / "hyp.txt"
    args = [str(trained_run), "--src", str(src), "--ref", str(ref), "--beam", "1"]
    assert evaluate.main(args + ["--json", "--hyp-out", str(hyp)]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert 0.0 <= scores["bleu"] <= 100.0 and 0.0 <= scores["chrf"] <= 100.0
    assert scores["bleu_signature"].startswith("nrefs:1|") and "chrf_signature" in scores
    assert (
        scores["sentences"]
        == len(src.read_text().splitlines())
        == len(hyp.read_text().splitlines())
    )
    assert evaluate.main(args) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].startswith("BLEU ") and "nrefs:1" in text[0]
    assert text[1].startswith("chrF ") and "nrefs:1" in text[1]


def test_evaluate_errors_are_one_line(trained_run, tmp_path, capsys):
    src, ref = _test_split(trained_run, tmp_path)
    short = tmp_path / "short.ref"
    short.write_text("a1\n", encoding="utf-8")
    bad = tmp_path / "bad.src"
    bad.write_bytes(b"a1\n\xc3(\n")
    cases = {
        "mismatch": ([str(trained_run), "--src", str(src), "--ref", str(short)], "has 1"),
        "invalid utf-8": (
            [str(trained_run), "--src", str(bad), "--ref", str(bad)],
            "bad.src:2: invalid UTF-8",
        ),
        "missing": (
            [str(trained_run), "--src", str(tmp_path / "x"), "--ref", str(ref)],
            "file not found",
        ),
        "no checkpoint": (
            [str(tmp_path / "no.pt"), "--src", str(src), "--ref", str(ref)],
            "no such checkpoint",
        ),
    }
    for name, (args, expect) in cases.items():
        assert evaluate.main(args) == 2, name
        lines = capsys.readouterr().err.strip().splitlines()
        assert (
            len(lines) == 1 and lines[0].startswith("nmt-evaluate: error: ") and expect in lines[0]
        ), (
            name,
            lines,
        )
