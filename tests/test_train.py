"""End to end: a tiny run writes the whole run folder; the loss falls; Transformer and bf16 train
(bf16 on any CPU: emulated where it is not native, see test_runtime)."""

from __future__ import annotations

import json
import math

import pytest
import sacrebleu
from conftest import compose, tiny_overrides

from nmt.checkpoint import load_checkpoint
from nmt.pipeline import run

RUN_FILES = [
    "spm.model",
    "checkpoints/best.pt",
    "checkpoints/last.pt",
    "train.log",
    "test.hyp",
    "metrics.json",
    "progress.jsonl",
    "valid.jsonl",
    "heatmaps/test_0.png",
]
METRIC_KEYS = [
    "dev_bleu",
    "test_bleu",
    "test_chrf",
    "sacrebleu_signature",
    "params",
    "train_tgt_tokens_per_s",
    "steps",
    "epochs",
    "wall_s",
]


def test_run_folder_has_everything(trained_run):
    for name in RUN_FILES:
        assert (trained_run / name).is_file(), f"missing {name}"
    assert any((trained_run / "tb").iterdir()), "no TensorBoard event file"
    metrics = json.loads((trained_run / "metrics.json").read_text())
    for key in METRIC_KEYS:
        assert key in metrics, f"metrics.json lacks {key}"
    assert metrics["steps"] == 30
    assert metrics["sacrebleu_signature"].startswith("nrefs:1|case:mixed")
    test_lines = (trained_run / "test.hyp").read_text().splitlines()
    assert len(test_lines) == 60  # every test sentence, in order
    refs = (trained_run.parent / "data" / "test.tgt").read_text().splitlines()
    # the recorded score is sacreBLEU's on test.hyp against the references, nothing else
    assert metrics["test_bleu"] == pytest.approx(
        sacrebleu.corpus_bleu(test_lines, [refs]).score, abs=0.005
    )
    assert metrics["test_chrf"] == pytest.approx(
        sacrebleu.corpus_chrf(test_lines, [refs]).score, abs=0.005
    )
    ckpt = load_checkpoint(trained_run / "checkpoints" / "best.pt")
    assert ckpt["progress"]["step"] == metrics["best_step"]
    assert isinstance(ckpt["tokenizer"]["src"], bytes)


def test_loss_falls(trained_run):
    losses = [json.loads(line)["loss"] for line in (trained_run / "progress.jsonl").open()]
    assert len(losses) == 30
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, f"loss did not fall: {first:.3f} -> {last:.3f}"


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [
        {
            "model": "transformer",
            "model.d_model": "32",
            "model.heads": "2",
            "model.ff_size": "64",
            "model.enc_layers": "1",
            "model.dec_layers": "1",
            "trainer.schedule": "inverse_sqrt",
            "trainer.warmup_steps": "10",
        },
        {"attention": "local_p", "trainer.precision": "bf16", "model.input_feed": "false"},
    ],
    ids=["transformer", "local_p-bf16-no-input-feed"],  # bf16 emulated where not native
)
def test_other_models_train(tmp_path, extra):
    overrides = tiny_overrides(tmp_path, **extra)
    metrics = run(compose(overrides), tmp_path / "run")
    assert metrics["steps"] == 30 and math.isfinite(metrics["test_bleu"])
    losses = [json.loads(line)["loss"] for line in (tmp_path / "run" / "progress.jsonl").open()]
    assert sum(losses[-5:]) < sum(losses[:5])


@pytest.mark.slow
def test_stop_conditions(tmp_path):
    """max_epochs and max_time end a run; max_time counts training seconds."""
    metrics = run(
        compose(
            tiny_overrides(tmp_path, **{"trainer.max_steps": "null", "trainer.max_epochs": "1"})
        ),
        tmp_path / "a",
    )
    assert metrics["stop_reason"] == "trainer.max_epochs=1" and metrics["epochs"] == pytest.approx(
        1.0
    )
    metrics = run(
        compose(
            tiny_overrides(
                tmp_path,
                **{
                    "trainer.max_steps": "null",
                    "trainer.max_time": "0.5",
                    "trainer.test_at_end": "false",
                },
            )
        ),
        tmp_path / "b",
    )
    assert metrics["stop_reason"] == "trainer.max_time=0.5s"
    assert metrics["train_time_s"] < 3.0


@pytest.mark.slow
def test_location_attention_with_dev_sentences_longer_than_training(tmp_path):
    """Dev/test keep long sentences; luong_location (fixed source positions) truncates them
    instead of crashing at the first validation."""
    extra = {
        "attention": "luong_location",
        "data.task_max_len": "12",
        "data.max_len": "8",
        "attention.max_src_len": "9",
        "trainer.max_steps": "10",
        "trainer.validate_every": "5",
    }
    metrics = run(compose(tiny_overrides(tmp_path, **extra)), tmp_path / "run")
    assert metrics["steps"] == 10 and math.isfinite(metrics["test_bleu"])
