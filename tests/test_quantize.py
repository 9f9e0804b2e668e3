"""int8 decoding (--quantize int8): dynamically quantised linear layers for both families."""

from __future__ import annotations

import pytest
import torch
from test_align import tiny_transformer_checkpoint

from nmt.config import ConfigError
from nmt.models.quantize import is_quantized
from nmt.translate import Translator
from nmt.translate import main as translate_main


def _lines(run, n=60):
    return (run.parent / "data" / "test.src").read_text().splitlines()[:n]


def test_int8_rnn_decoding_keeps_lines_and_nearly_all_outputs(trained_run, tmp_path):
    """The trained RNN decodes the test lines in int8 with the same line count and (nearly)
    the same output as in fp32; its linear layers are int8, the step-loop LSTM is not."""
    ckpt = trained_run / "checkpoints" / "best.pt"
    fp32 = Translator(ckpt, precision="fp32")
    int8 = Translator(ckpt, quantize="int8")
    assert is_quantized(int8.model) and not is_quantized(fp32.model)
    assert int8.precision.name == "fp32"
    lines = _lines(trained_run)
    a, _ = fp32.translate(lines, beam=2)
    b, _ = int8.translate(lines, beam=2)
    assert len(a) == len(b) == len(lines)
    same = sum(x == y for x, y in zip(a, b)) / len(lines)
    assert same >= 0.85, f"int8 output equals fp32 on {same:.0%} of lines"
    # the command line: one output line per input line, empty lines kept
    src = tmp_path / "in.txt"
    src.write_text("\n".join([lines[0], "", lines[1]]) + "\n")
    out = tmp_path / "out.txt"
    assert translate_main([str(ckpt), "-i", str(src), "-o", str(out), "--quantize", "int8"]) == 0
    got = out.read_text().splitlines()
    assert len(got) == 3 and got[1] == "" and got[0] == b[0] and got[2] == b[1]


def test_int8_transformer_log_probs_stay_close(trained_run):
    """Every Transformer projection in int8: teacher-forced log-probabilities close to fp32
    (per-channel weight scales, per-batch activation scales), on an untrained 16-wide model."""
    ckpt = tiny_transformer_checkpoint(trained_run)
    fp32 = Translator(ckpt, precision="fp32")
    int8 = Translator(ckpt, quantize="int8")
    assert is_quantized(int8.model)
    torch.manual_seed(0)
    src = torch.randint(4, fp32.tokenizer.src_vocab_size, (4, 7))
    lens = torch.full((4,), 7)
    tgt = torch.randint(4, fp32.tokenizer.tgt_vocab_size, (4, 6))
    with torch.no_grad():
        a = fp32.model(src, lens, tgt)[0].log_softmax(-1)
        b = int8.model(src, lens, tgt)[0].log_softmax(-1)
    diff = (a - b).abs()
    assert diff.mean() < 0.02 and diff.max() < 0.15, (diff.mean(), diff.max())  # measured 0.087
    assert len(int8.translate(_lines(trained_run, 6), beam=2)[0]) == 6


def test_int8_refuses_bf16_and_gpu(trained_run):
    ckpt = trained_run / "checkpoints" / "best.pt"
    with pytest.raises(ConfigError, match="--quantize int8 runs on the CPU with fp32 activations"):
        Translator(ckpt, precision="bf16", quantize="int8")
    with pytest.raises(ConfigError, match="drop --device cuda"):
        Translator(ckpt, device="cuda", quantize="int8")
