"""Reliability: exact resume after SIGKILL, clean stop on SIGTERM, the non-finite guard, bad
corpora through `nmt-train`, and property tests of the reader, tokenizer and translator."""

from __future__ import annotations

import io
import json
import math
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, compose, tiny_overrides
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nmt.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow  # end-to-end runs in subprocesses

# a run whose losses depend on everything a resume must restore: dropout RNG, the batch order,
# Adam, the plateau scheduler (patience 0: the lr drops at every validation without progress)
EXACT = {
    "model.dropout": "0.3",
    "trainer.validate_every": "5",
    "trainer.plateau_patience": "0",
    "trainer.patience": "null",
    "trainer.test_at_end": "false",
    "trainer.num_heatmaps": "0",
    "trainer.threads": "1",
}


def _train(tmp: Path, run: Path, **extra: str) -> list[str]:
    overrides = tiny_overrides(tmp, **{**EXACT, **extra})
    return [sys.executable, "-m", "nmt.train", *overrides, f"hydra.run.dir={run}"]


def _start(cmd: list[str], log: Path, cwd: Path = ROOT) -> subprocess.Popen:
    """Start `cmd` with its stderr in the file `log`."""
    with open(log, "w") as err:
        return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)


def _records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _ready(run: Path, steps: int) -> bool:
    """`run` has a checkpoint and at least `steps` logged steps."""
    has_ckpt = (run / "checkpoints" / "last.pt").is_file()
    return has_ckpt and len(_records(run / "progress.jsonl")) >= steps


def _interrupt(victims: dict[str, tuple[subprocess.Popen, Path, int, int]], logs: Path) -> None:
    """Send each victim its signal once it is `ready(run, steps)`; wait for all of them."""
    deadline, waiting = time.monotonic() + 240, dict(victims)
    while waiting and time.monotonic() < deadline:
        for name, (proc, run, steps, sig) in list(waiting.items()):
            assert proc.poll() is None, f"{name} ended early: {(logs / name).read_text()[-2000:]}"
            if _ready(run, steps):
                proc.send_signal(sig)
                del waiting[name]
        time.sleep(0.005)
    assert not waiting, f"no progress in {list(waiting)}"
    for proc, *_ in victims.values():
        proc.wait(timeout=120)


def _losses(run: Path) -> dict[int, float]:
    """step -> the last loss logged for it."""
    return {r["step"]: r["loss"] for r in _records(run / "progress.jsonl")}


STEPS = 40


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> dict:
    """Three runs at once: one SIGKILLed at a random step (then resumed to STEPS steps), one
    SIGTERMed, and an uninterrupted run of STEPS steps for reference."""
    tmp = tmp_path_factory.mktemp("interrupted")
    runs = {name: tmp / "runs" / name for name in ("whole", "killed", "stopped")}

    def start(name: str, steps: int) -> subprocess.Popen:
        cmd = _train(tmp / f"data_{name}", runs[name], **{"trainer.max_steps": str(steps)})
        return _start(cmd, tmp / name)

    procs = {
        name: start(name, n)
        for name, n in (("killed", STEPS), ("stopped", 100_000), ("whole", STEPS))
    }
    target = random.Random(7).randint(7, 30)  # an arbitrary step, the same on every run
    victims = {
        "killed": (procs["killed"], runs["killed"], target, signal.SIGKILL),
        "stopped": (procs["stopped"], runs["stopped"], 8, signal.SIGTERM),
    }
    try:
        _interrupt(victims, tmp)
    finally:
        for proc, *_ in victims.values():
            proc.kill()
    state = {
        "runs": runs,
        "target": target,
        "codes": {name: procs[name].returncode for name in victims},
        "stderr": {name: (tmp / name).read_text() for name in victims},
        "at_interrupt": {name: _records(runs[name] / "progress.jsonl") for name in victims},
        "stopped_ckpt": load_checkpoint(runs["stopped"] / "checkpoints" / "last.pt"),
    }
    # resume with nothing but the run folder: the rest comes from the checkpoint
    resume = [sys.executable, "-m", "nmt.train", f"resume={runs['killed']}"]
    later = {"resumed": _start(resume, tmp / "resumed", tmp), "whole": procs["whole"]}
    for name, proc in later.items():
        assert proc.wait(timeout=300) == 0, (tmp / name).read_text()[-3000:]
    return state


def test_resume_after_sigkill_gives_bit_identical_losses(interrupted):
    runs = interrupted["runs"]
    assert interrupted["codes"]["killed"] == -signal.SIGKILL
    at_kill = len(interrupted["at_interrupt"]["killed"])
    assert at_kill < STEPS, "the run finished before it was killed"
    assert "resumed from step" in (runs["killed"] / "train.log").read_text()
    want, got = _losses(runs["whole"]), _losses(runs["killed"])
    assert sorted(want) == list(range(1, STEPS + 1)) and sorted(got) == sorted(want)
    diverged = [s for s in want if want[s] != got[s]]
    assert not diverged, f"killed after {at_kill} steps; losses differ from step {diverged[0]}"
    lrs = {r["lr"] for r in _records(runs["whole"] / "progress.jsonl")}
    assert len(lrs) > 1, "the plateau scheduler never acted: the test would miss its state"
    logged = [r["step"] for r in _records(runs["killed"] / "progress.jsonl")]
    assert logged == list(range(1, STEPS + 1)), "the log was not cut back to the checkpoint"


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(interrupted):
    assert interrupted["codes"]["stopped"] == 0
    err = interrupted["stderr"]["stopped"]
    assert "Traceback" not in err and "received SIGTERM: saving a checkpoint and stopping" in err
    last_logged = interrupted["at_interrupt"]["stopped"][-1]["step"]
    assert interrupted["stopped_ckpt"]["progress"]["step"] == last_logged < STEPS
    assert "rng" in interrupted["stopped_ckpt"] and "optimizer" in interrupted["stopped_ckpt"]


# --- the non-finite guard ----------------------------------------------------------------
@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _trainer(tmp: Path, **extra: str):
    from nmt.config import to_dataclass
    from nmt.trainer import Trainer

    cfg = compose(tiny_overrides(tmp, **{**EXACT, "model.dropout": "0.0", **extra}))
    return Trainer(to_dataclass(cfg), tmp / "run")


def _first_batch(trainer):
    from nmt.data.batching import collate

    idx = trainer.sampler.batches(0)[0]
    train = trainer.data.train
    return collate([train.src[i] for i in idx], [train.tgt[i] for i in idx], idx)


def _poison_output(trainer, when=lambda: True):
    """Make the model's logits NaN while `when()` holds (a forward hook, like a real overflow)."""

    def hook(module, inputs, output):
        if not when():
            return None
        logits, attention = output
        return logits * float("nan"), attention

    return trainer.model.register_forward_hook(hook)


def _state(trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.model.parameters()]


def test_nonfinite_loss_or_gradient_skips_the_update(tmp_path, one_thread):
    trainer = _trainer(tmp_path)
    batch = _first_batch(trainer)
    before = _state(trainer)
    handle = _poison_output(trainer)
    assert trainer.train_step(batch) is None  # NaN loss
    handle.remove()
    param = next(trainer.model.parameters())
    handle = param.register_hook(lambda grad: grad * float("inf"))
    assert trainer.train_step(batch) is None  # finite loss, infinite gradient
    handle.remove()
    assert all(torch.equal(a, b) for a, b in zip(before, _state(trainer))), (
        "a skipped update changed weights"
    )
    assert trainer.optimizer.state == {} and trainer.progress.nonfinite_in_a_row == 2
    losses = trainer.train_step(batch)
    assert losses is not None and math.isfinite(losses["loss"])
    assert trainer.progress.nonfinite_in_a_row == 0
    assert not all(torch.equal(a, b) for a, b in zip(before, _state(trainer)))
    text = (tmp_path / "run" / "train.log").read_text()
    assert "step 1: non-finite loss, update skipped" in text
    assert "step 1: non-finite gradient, update skipped (2 in a row" in text


def test_repeated_nonfinite_steps_stop_the_run_and_keep_the_last_good_checkpoint(
    tmp_path, one_thread
):
    from nmt.trainer import TrainingError

    trainer = _trainer(tmp_path, **{"trainer.nan_tolerance": "3", "trainer.max_steps": "40"})
    _poison_output(trainer, when=lambda: trainer.model.training and trainer.progress.step >= 7)
    with pytest.raises(TrainingError) as err:
        trainer.fit()
    message = str(err.value)
    assert "\n" not in message and "3 non-finite updates in a row at step 10" in message
    assert "lower trainer.lr" in message and "trainer.clip_grad_norm" in message
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    assert str(last) in message
    ckpt = load_checkpoint(last)
    assert ckpt["progress"]["step"] == 5  # the validation before the NaNs started
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values())
    log = (tmp_path / "run" / "train.log").read_text()
    for step in (8, 9, 10):
        assert f"step {step}: non-finite loss, update skipped" in log
    assert [r["step"] for r in _records(tmp_path / "run" / "progress.jsonl")] == list(range(1, 8))


def test_a_stop_signal_at_a_validation_step_still_validates(tmp_path, one_thread):
    """Otherwise a run resumed from that checkpoint would skip the validation (and its
    scheduler step) that the uninterrupted run makes."""
    trainer = _trainer(tmp_path, **{"trainer.max_steps": "100"})

    def stop_during_step_5(module, inputs, output):  # as if Ctrl-C arrived in step 5
        if trainer.model.training and trainer.progress.step == 4:
            trainer._handle_signal(signal.SIGINT, None)

    trainer.model.register_forward_hook(stop_during_step_5)
    metrics = trainer.fit()
    assert metrics["interrupted"] and metrics["steps"] == 5
    assert metrics["stop_reason"] == "signal SIGINT"
    assert [r["step"] for r in _records(tmp_path / "run" / "valid.jsonl")] == [5]
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert ckpt["progress"]["step"] == 5 and ckpt["progress"]["best_step"] == 5


# --- bad corpora through nmt-train -------------------------------------------------------
PAIRS = [(f"a{i % 5} a{i % 3} a{i % 7}", f"a{i % 7} a{i % 3} a{i % 5}") for i in range(30)]


def _write_corpus(
    root: Path, src: list[bytes] | None = None, tgt: list[bytes] | None = None
) -> Path:
    """train/valid/test .src/.tgt under `root`; `src`/`tgt` replace the training files' lines."""
    root.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        for side, lines in (("src", [p[0] for p in PAIRS]), ("tgt", [p[1] for p in PAIRS])):
            raw = [line.encode() for line in lines]
            replaced = {"src": src, "tgt": tgt}[side]
            if split == "train" and replaced is not None:
                raw = replaced
            (root / f"{split}.{side}").write_bytes(b"".join(line + b"\n" for line in raw))
    return root


def _bad_corpora(tmp: Path) -> dict[str, tuple[Path, str | None]]:
    """name -> (data.root, text of the expected error line, or None when the run must succeed)."""
    good = [p[0].encode() for p in PAIRS]
    utf8 = list(good)
    utf8[5] = b"a1 \xff a2"
    noisy = list(good)
    noisy[3] = ("a1 " * 50_000).encode()  # a 150,000-character line: longer than max_len
    noisy[4] = ("a2 " * 40_000)[:100_000].encode()  # exactly 100,000 characters
    noisy[6], noisy[7], noisy[8] = b" \t  ", b"\x01\x02\x1b", "\u200b\u3000".encode()
    out = {
        "mismatched line counts": (
            _write_corpus(tmp / "mismatch", tgt=[p[1].encode() for p in PAIRS[:-3]]),
            "line counts differ",
        ),
        "invalid UTF-8": (
            _write_corpus(tmp / "utf8", src=utf8),
            "train.src:6: invalid UTF-8 (byte 0xff at column 4)",
        ),
        "empty corpus": (_write_corpus(tmp / "empty", src=[], tgt=[]), "train.src"),
        "only blank lines": (
            _write_corpus(tmp / "blank", src=[b"  ", b"\x07"], tgt=[b"a1", b"a2"]),
            "no training pairs",
        ),
        "long, blank and control lines": (_write_corpus(tmp / "noisy", src=noisy), None),
    }
    missing = _write_corpus(tmp / "missing")
    (missing / "train.tgt").unlink()
    out["missing file"] = (missing, "train.tgt")
    out["missing folder"] = (tmp / "nowhere", "is not a folder")
    return out


def _bad_corpus_args(tmp: Path, name: str, root: Path) -> tuple[list[str], Path]:
    run = tmp / "runs" / name.replace(" ", "_").replace(",", "")
    extra = {"data.max_len": "40", "trainer.max_steps": "2", "trainer.validate_every": "2"}
    local = {"data": "local", "data.root": str(root), "data.spm_type": "word"}
    return _train(tmp, run, **{**extra, **local})[3:], run


def _nmt_train_in_process(args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """Run the `nmt-train` entry point in this process (Hydra leaves logging alone)."""
    from nmt.train import main

    argv = ["nmt-train", *args, "hydra/job_logging=none", "hydra/hydra_logging=none"]
    monkeypatch.setattr(sys, "argv", argv)
    code = 0
    try:
        main()
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


def test_bad_corpora_give_one_line_errors_or_are_filtered(
    tmp_path, monkeypatch, capsys, one_thread
):
    corpora = _bad_corpora(tmp_path)
    args, _ = _bad_corpus_args(tmp_path, "process", corpora["invalid UTF-8"][0])
    process = subprocess.Popen(
        [sys.executable, "-m", "nmt.train", *args], cwd=ROOT, stderr=subprocess.PIPE, text=True
    )
    for name, (root, want) in corpora.items():  # the same entry point, without a process each
        args, run = _bad_corpus_args(tmp_path, name, root)
        code, err = _nmt_train_in_process(args, monkeypatch, capsys)
        assert "Traceback" not in err, (name, err)
        if want is None:
            assert code == 0, (name, err)
            kept = [
                line for line in (run / "train.log").read_text().splitlines() if " kept " in line
            ]
            assert "kept 25 of 30 pairs (dropped 3 empty, 2 longer than max_len=40)" in kept[0], (
                kept
            )
            continue
        errors = [line for line in err.splitlines() if line.startswith("nmt-train: error: ")]
        assert code == 2 and len(errors) == 1, (name, err)
        assert want in errors[0], (name, errors[0])
    _, err = process.communicate(timeout=300)
    assert process.returncode == 2 and "Traceback" not in err
    assert (
        err.strip().splitlines()[-1].endswith("train.src:6: invalid UTF-8 (byte 0xff at column 4)")
    )


# --- property tests: random text through the reader, the tokenizer and the translator -----
ANY_CHAR = st.characters(
    exclude_characters="\n", exclude_categories=("Cs",)
)  # controls, \r, U+2028, ...
MIXED = st.sampled_from(
    list("a1 a2 é 漢字 русский عربي हिन्दी 😀\u200b\u0301\t\x00\x1b\r\u2028\x85\ufeff")
)
LINE = st.one_of(
    st.text(ANY_CHAR, max_size=40),
    st.text(MIXED, max_size=40),
    st.builds(
        lambda unit, n: (unit * n)[:100_000],
        st.text(ANY_CHAR, min_size=1, max_size=6),
        st.integers(300, 25_000),
    ),
)
RAW_LINE = st.one_of(
    LINE.map(lambda s: s.encode("utf-8")),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),
)
# derandomize: the same 30 examples on every run (a failure found once is found again; none
# depends on the run); new edge cases are added as explicit examples
PROPERTY = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPERTY
@given(lines=st.lists(LINE, min_size=1, max_size=6))
def test_reader_returns_every_line_unchanged(lines):
    from nmt.data.corpus import read_lines

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.txt"
        path.write_bytes(b"".join(line.encode("utf-8") + b"\n" for line in lines))
        got = read_lines(path)
    want = [line.rstrip("\r") for line in lines]
    want[0] = want[0].removeprefix("\ufeff")  # a byte order mark is not text
    assert got == want


@PROPERTY
@given(raw=st.lists(RAW_LINE, min_size=1, max_size=6))
def test_reader_names_the_first_invalid_line(raw):
    from nmt.data.corpus import DataError, read_lines

    bad = [i for i, line in enumerate(raw, start=1) if not _is_utf8(line)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.txt"
        path.write_bytes(b"".join(line + b"\n" for line in raw))
        if not bad:
            assert len(read_lines(path)) == len(raw)
            return
        with pytest.raises(DataError) as err:
            read_lines(path)
    assert str(err.value).startswith(f"{path}:{bad[0]}: invalid UTF-8") and "\n" not in str(
        err.value
    )


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.fixture(scope="module")
def translator(trained_run):
    from nmt.translate import Translator

    translator = Translator(trained_run)
    translator.max_src_len = 40  # long lines still get truncated, and decode in a moment
    return translator


@PROPERTY
@given(lines=st.lists(LINE, min_size=1, max_size=6))
def test_tokenizer_round_trip_keeps_alignment(translator, lines):
    tok = translator.tokenizer
    ids = tok.encode_src(lines)
    assert len(ids) == len(lines)
    assert all(0 <= i < tok.src_vocab_size for seq in ids for i in seq)
    assert len(tok.decode_tgt(ids)) == len(lines) and len(tok.decode_src(ids)) == len(lines)
    for line, seq in zip(lines, ids):
        assert len(tok.src_pieces(line)) == len(seq)  # attention labels match the model's input


@PROPERTY
@given(raw=st.lists(RAW_LINE, min_size=1, max_size=6))
@example(raw=[b"\xc2\x85", b" \t", b"\xe2\x80\xa8x", b"\x01"])  # NEL alone: found by hypothesis
def test_translation_keeps_line_alignment(translator, raw):
    from nmt.translate import read_lines_lenient, translate_stream

    lines = list(read_lines_lenient(io.BytesIO(b"".join(line + b"\n" for line in raw)), "<prop>"))
    assert len(lines) == len(raw)
    out = io.StringIO()
    assert translate_stream(translator, iter(lines), out, beam=1, batch_size=4) == len(raw)
    text = out.getvalue()
    assert text.count("\n") == len(raw) and len(text.splitlines()) == len(raw)
    for line, hyp in zip(lines, text.split("\n")):
        if not line.strip():
            assert hyp == ""
    direct, _ = translator.translate(lines, beam=1)
    assert direct == text.split("\n")[:-1]  # the API and the CLI path agree
