"""Hard attention (attention.hard=reinforce|gumbel): one-hot rows, where the samples fall, the
estimators' gradients, the baseline, inference (argmax / soft), beam search and the config."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from nmt.config import AttentionConfig, ConfigError, RNNConfig
from nmt.data.batching import collate
from nmt.decoding import Lengths, beam_search
from nmt.loss import batch_loss, reinforce_loss
from nmt.models.hard_attention import HardAttention
from nmt.models.mechanisms import MECHANISMS, build_attention, mechanism
from nmt.models.rnn import RNNSeq2Seq
from nmt.runtime import resolve_precision

V, PAD = 20, 0
ESTIMATORS = ("reinforce", "gumbel")


def tiny(att: str, hard: str = "none", **kw) -> RNNSeq2Seq:
    torch.manual_seed(0)
    cfg = RNNConfig(emb_size=16, enc_hidden=8, dec_hidden=16, dropout=0.0)
    acfg = AttentionConfig(type=att, hard=hard, window=2, max_src_len=16, **kw)
    return RNNSeq2Seq(cfg, acfg, V, V)


def a_batch():
    """Three pairs of different lengths (padding in the source and the target)."""
    gen = torch.Generator().manual_seed(0)
    src = [torch.randint(4, V, (n,), generator=gen).tolist() for n in (7, 4, 2)]
    tgt = [list(reversed(s)) for s in src]
    return collate(src, tgt, [0, 1, 2])


def module_inputs(B: int = 2, T: int = 3, S: int = 6, H: int = 8):
    gen = torch.Generator().manual_seed(0)
    query = torch.randn(B, T, H, generator=gen)
    values = torch.randn(B, S, H, generator=gen)
    mask = torch.ones(B, S, dtype=torch.bool)
    mask[-1, 4:] = False  # the last source has 4 real positions
    return query, values, mask


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("att", list(MECHANISMS))
def test_rows_are_one_hot_on_positions_the_soft_weights_allow(att, estimator):
    """Training reads one sampled position per step: rows one-hot, the context that position's
    encoder state, never padding, never a position the mechanism gives weight 0 (outside a
    local window); inference reads the argmax of the mechanism's own weights."""
    cfg = AttentionConfig(type=att, hard=estimator, window=1, max_src_len=16)
    module = build_attention(cfg, 8, 8)
    query, values, mask = module_inputs()
    keys = module.project_keys(values)
    p = module.inner.distribution(query, keys, mask, step=2)  # (B,T,S) the soft weights
    module.train()
    torch.manual_seed(1)
    context, w = module(query, keys, values, mask, step=2)
    assert torch.equal(w.sum(-1), torch.ones(2, 3)) and set(w.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(p[w.bool()] > 0)  # only positions with weight (in the window, not padding)
    index = w.argmax(-1)  # (B,T)
    torch.testing.assert_close(context, values.gather(1, index[..., None].expand(-1, -1, 8)))
    module.eval()
    context, w = module(query, keys, values, mask, step=2)
    assert torch.equal(w.argmax(-1), p.argmax(-1)) and torch.equal(w.sum(-1), torch.ones(2, 3))
    assert module.take_trace() is None or estimator == "reinforce"


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_samples_follow_the_attention_distribution(estimator):
    """Both estimators sample s_t ~ a(t, .): multinomial sampling (REINFORCE) and the
    Gumbel-max trick (Gumbel-softmax's forward); 8,000 draws, frequencies within 0.02."""
    cfg = AttentionConfig(type="luong_general", hard=estimator)
    module = build_attention(cfg, 8, 8).train()
    query, values, mask = module_inputs(B=1, T=1)
    keys = module.project_keys(values)
    p = module.inner.distribution(query, keys, mask)[0, 0]  # (S,)
    torch.manual_seed(2)
    n = 8000
    _, w = module(
        query.expand(n, 1, -1), keys.expand(n, -1, -1), values.expand(n, -1, -1), mask.expand(n, -1)
    )
    freq = w[:, 0].mean(0)  # (S,)
    assert (freq - p).abs().max() < 0.02, (freq, p)


def as_soft(state: dict) -> dict:
    """A hard model's parameters under the soft model's names (the mechanism is `inner`)."""
    return {k.replace(".inner.", "."): v for k, v in state.items() if "baseline" not in k}


@pytest.mark.parametrize("att", list(MECHANISMS))
def test_soft_inference_is_the_soft_mechanism(att):
    """`hard_inference=soft` decodes with the expectation: the soft model with the same
    parameters gives the same log-probabilities and weights (local_p: see below)."""
    model = tiny(att, "gumbel", hard_inference="soft").eval()
    soft = tiny(att).eval()
    soft.load_state_dict(as_soft(model.state_dict()))
    batch = a_batch()
    logits_h, w_h = model(batch.src, batch.src_lens, batch.tgt_in, return_attention=True)
    logits_s, w_s = soft(batch.src, batch.src_lens, batch.tgt_in, return_attention=True)
    if att == "local_p":
        # its Gaussian rows do not sum to 1: the expectation reads them renormalised, so the
        # contexts (and, through input feeding, later steps) differ from soft local_p's
        w_h, w_s = w_h[:, :1], w_s[:, :1] / w_s[:, :1].sum(-1, keepdim=True)
        logits_h, logits_s = logits_h[:, :0], logits_s[:, :0]
    torch.testing.assert_close(w_h, w_s, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(logits_h, logits_s, atol=1e-5, rtol=1e-5)


def _attention_parameters(model: RNNSeq2Seq) -> list[torch.nn.Parameter]:
    """The parameters the score (and p_t) own; luong_dot has none: its query is the decoder's
    state, so its score is trained through the decoder RNN's weights."""
    own = list(model.decoder.attention.parameters())
    return own or [model.decoder.rnn.weight_hh_l0]


@pytest.mark.parametrize("att", list(MECHANISMS))
def test_gradients_reach_the_score_only_through_the_estimator(att):
    """The one-hot context carries no gradient to the score; REINFORCE's term and the
    straight-through Gumbel-softmax do (luong_dot: its query, the decoder state, instead)."""
    batch = a_batch()
    fp32 = resolve_precision("fp32", torch.device("cpu"), "test")

    def grads(model, with_estimator: bool) -> list[torch.Tensor]:
        model.train()
        model.zero_grad()
        torch.manual_seed(3)
        if with_estimator or isinstance(model.decoder.attention, HardAttention) is False:
            loss = batch_loss(
                model, model.output_layer, batch, 0.0, torch.device("cpu"), fp32
            ).total
        else:  # the likelihood alone, through the sampled one-hot context
            hidden, _ = model(batch.src, batch.src_lens, batch.tgt_in, project=False)
            model.decoder.attention.take_trace()
            loss = F.cross_entropy(
                model.output_layer(hidden).flatten(0, 1), batch.tgt_out.flatten(), ignore_index=PAD
            )
        loss.backward()
        return [
            torch.zeros_like(p) if p.grad is None else p.grad for p in _attention_parameters(model)
        ]

    own_params = bool(list(tiny(att).decoder.attention.parameters()))
    reinforce = tiny(att, "reinforce")
    if own_params:  # without the estimator the score gets no gradient at all
        assert all(g.abs().sum() == 0 for g in grads(reinforce, with_estimator=False))
    assert any(g.abs().sum() > 0 for g in grads(reinforce, with_estimator=True))
    gumbel = tiny(att, "gumbel")
    assert any(g.abs().sum() > 0 for g in grads(gumbel, with_estimator=True))


def test_reinforce_loss_and_baseline_by_hand():
    """Xu et al. 2015: b starts at the first batch's mean reward, then b = 0.9 b + 0.1 r; the
    surrogate is -sum[(r - b) log a + lambda_e H] over real steps (step and sentence rewards)."""
    att = HardAttention(
        build_attention(AttentionConfig(type="luong_dot"), 4, 4), "reinforce", entropy_bonus=0.5
    )
    log_a = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]], requires_grad=True)
    entropy = torch.tensor([[0.2, 0.4], [0.1, 0.3]])
    nll = torch.tensor([[1.0, 3.0], [2.0, 9.0]])
    real = torch.tensor([[True, True], [True, False]])
    loss = reinforce_loss(att, log_a, entropy, nll, real)
    sentence = torch.tensor([-2.0, -2.0])  # mean log p per sentence: -(1+3)/2, -2/1
    b = -2.0  # first batch: the mean
    reward = -nll
    expected = -(
        ((reward[0, 0] - b) * -1.0 + 0.5 * 0.2)
        + ((reward[0, 1] - b) * -2.0 + 0.5 * 0.4)
        + ((reward[1, 0] - b) * -0.5 + 0.5 * 0.1)
    )
    torch.testing.assert_close(loss, expected)
    assert att.baseline.item() == pytest.approx(0.9 * b + 0.1 * sentence.mean().item())
    loss.backward()
    assert log_a.grad[1, 1] == 0  # padding steps do not count
    att.reward = "sentence"
    before = att.baseline.item()
    loss = reinforce_loss(att, log_a.detach(), entropy, nll, real)
    expected = -((sentence[0] - before) * (-1.0 - 2.0) + (sentence[1] - before) * -0.5 + 0.5 * 0.7)
    torch.testing.assert_close(loss, expected)


def test_baseline_is_saved_with_the_model_and_loaded_back():
    """The moving-average baseline is a buffer: in the state dict, so exact resume keeps it."""
    model = tiny("luong_general", "reinforce")
    batch = a_batch()
    fp32 = resolve_precision("fp32", torch.device("cpu"), "test")
    model.train()
    batch_loss(model, model.output_layer, batch, 0.0, torch.device("cpu"), fp32).total.backward()
    state = model.state_dict()
    value = state["decoder.attention.baseline"]
    assert torch.isfinite(value)
    other = tiny("luong_general", "reinforce")
    assert torch.isnan(other.decoder.attention.baseline)
    other.load_state_dict(state)
    assert other.decoder.attention.baseline.item() == value.item()


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_beam_search_with_hard_attention(estimator):
    """Beam search decodes with hard attention: every kept attention row is one-hot."""
    model = tiny("bahdanau", estimator).eval()
    batch = a_batch()
    hyps = beam_search(
        model, batch.src, batch.src_lens, beam=3, lengths=Lengths(b=5), need_attention=True
    )
    for h in hyps:
        assert h.attention is not None and h.attention.shape[0] >= 1
        assert torch.equal(h.attention.sum(-1), torch.ones(h.attention.shape[0]))
        assert set(h.attention.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("hard", "hardest", "attention.hard='hardest' is not one of none, reinforce, gumbel"),
        ("hard_inference", "mean", "attention.hard_inference='mean' is not one of argmax, soft"),
        ("reward", "bleu", "attention.reward='bleu' is not one of step, sentence"),
        ("gumbel_tau", 0.0, "attention.gumbel_tau=0.0 must be > 0"),
        ("baseline_decay", 1.0, "attention.baseline_decay=1.0 must be in [0, 1)"),
        ("soft_mix", 1.5, "attention.soft_mix=1.5 must be in [0, 1]"),
        ("soft_mix_anneal", -0.1, "attention.soft_mix_anneal=-0.1 must be in [0, 1]"),
    ],
)
def test_bad_hard_settings_are_one_line_errors(key, value, message):
    cfg = AttentionConfig(type="luong_general", **{key: value})
    with pytest.raises(ConfigError) as err:
        mechanism(cfg).check(cfg, 50)
    assert str(err.value) == message


def _records(run) -> dict[int, dict]:
    return {r["step"]: r for r in map(json.loads, (run / "progress.jsonl").open())}


@pytest.mark.slow
def test_hard_run_end_to_end_resumes_exactly_and_aligns(tmp_path, capsys):
    """A tiny REINFORCE run: the training loop, the test decode (attention statistics: one
    position read per step), heatmaps, nmt-align on its checkpoint (at most one link per target word);
    cut at step 10 and resumed it gives the same losses bit for bit (the baseline and the
    sampling RNG are restored)."""
    from conftest import compose, cut_and_resume, tiny_overrides
    from test_align import _reverse_gold

    from nmt.align import main as align_main
    from nmt.config import to_dataclass
    from nmt.evaluate import main as evaluate_main
    from nmt.pipeline import run as run_pipeline

    over = {"attention": "luong_general", "attention.hard": "reinforce", "trainer.max_steps": "20"}
    over |= {"trainer.threads": "1", "trainer.validate_every": "10"}
    threads = torch.get_num_threads()
    try:
        composed = compose(tiny_overrides(tmp_path, **over))
        run_pipeline(composed, tmp_path / "whole")  # train, test decode, heatmaps, metrics
        cut_and_resume(to_dataclass(composed), tmp_path / "cut")
    finally:
        torch.set_num_threads(threads)
    whole, cut_records = _records(tmp_path / "whole"), _records(tmp_path / "cut")
    for step in range(11, 21):
        assert cut_records[step]["loss"] == whole[step]["loss"], step
    run = tmp_path / "whole"
    metrics = json.loads((run / "metrics.json").read_text())
    stats = metrics["attention_stats"]
    assert stats["positions_read"] == 1.0 and stats["sentences"] > 0
    assert list((run / "heatmaps").glob("*.png"))
    # nmt-align on the checkpoint: argmax of one-hot rows, one link per target word
    src, tgt, gold, lines = _reverse_gold(run, tmp_path)  # test lines, reversed-diagonal gold
    out = tmp_path / "aer.json"
    args = ["--src", str(src), "--tgt", str(tgt), "--gold", str(gold), "--gold-order", "src-tgt"]
    args += ["--json", str(out)]
    assert align_main([str(run / "checkpoints" / "best.pt"), *args]) == 0
    one_hot = json.loads(out.read_text())["results"]
    result = one_hot["argmax"]
    assert json.loads(out.read_text())["scored_sentences"] == len(lines)
    # at most one link per target word (none where the one position read is </s>)
    assert 0 < result["links"] <= sum(len(x.split()) for x in lines)
    assert 0.0 <= result["aer"] <= 1.0
    # --hard-inference soft: the distribution the argmax is read from, not one-hot rows
    assert (
        align_main([str(run / "checkpoints" / "best.pt"), *args, "--hard-inference", "soft"]) == 0
    )
    soft = json.loads(out.read_text())
    assert soft["hard_inference"] == "soft" and soft["results"] != one_hot
    # nmt-evaluate reads the argmax position or, with --hard-inference soft, the expectation
    ckpt = str(run / "checkpoints" / "best.pt")
    scores = {}
    for how in ("argmax", "soft"):
        args = ["--src", str(src), "--ref", str(tgt), "--json", "--hard-inference", how]
        capsys.readouterr()
        assert evaluate_main([ckpt, *args, "--hyp-out", str(tmp_path / f"{how}.txt")]) == 0
        scores[how] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert len((tmp_path / f"{how}.txt").read_text().splitlines()) == len(lines)
    assert 0 <= scores["argmax"]["bleu"] <= 100 and 0 <= scores["soft"]["bleu"] <= 100


def test_hard_inference_option_refuses_a_soft_checkpoint(trained_run, tmp_path, capsys):
    """--hard-inference on a soft model is a one-line error naming the checkpoint."""
    from nmt.evaluate import main as evaluate_main

    src = trained_run.parent / "data" / "test.src"
    ref = trained_run.parent / "data" / "test.tgt"
    ckpt = str(trained_run / "checkpoints" / "best.pt")
    assert (
        evaluate_main([ckpt, "--src", str(src), "--ref", str(ref), "--hard-inference", "soft"]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"--hard-inference soft: {ckpt} has soft attention (attention.hard=none)" in err
    # nmt-align too (its option reads a hard model's soft distribution)
    from test_align import hard_copy_checkpoint

    from nmt.align import main as align_main

    gold = tmp_path / "gold.talp"
    gold.write_text("".join("1-1\n" for _ in src.read_text().splitlines()))
    args = ["--src", str(src), "--tgt", str(ref), "--gold", str(gold), "--gold-order", "src-tgt"]
    assert align_main([ckpt, *args, "--hard-inference", "soft"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has soft attention (attention.hard=none)" in err
    # a hard model whose --reverse-ckpt is soft: the error names the reverse checkpoint
    hard = str(hard_copy_checkpoint(trained_run, tmp_path / "hard.pt"))
    assert align_main([hard, *args, "--reverse-ckpt", ckpt, "--hard-inference", "soft"]) == 2
    errors = [x for x in capsys.readouterr().err.splitlines() if "warning:" not in x]
    assert len(errors) == 1 and f"{ckpt} has soft attention" in errors[0]  # (cased-text warning)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_soft_mix_and_its_annealing(estimator):
    """soft_mix: the share of training steps that read the expectation (Xu et al. 2015, sec.
    4.1); with soft_mix_anneal it falls linearly to 0 over that share of the budget."""
    cfg = AttentionConfig(type="luong_general", hard=estimator, soft_mix=1.0, soft_mix_anneal=0.5)
    module = build_attention(cfg, 8, 8).train()
    query, values, mask = module_inputs()
    keys = module.project_keys(values)
    p = module.inner.distribution(query, keys, mask)  # (B,T,S)
    module.set_progress(0.0)
    _, w = module(query, keys, values, mask)
    torch.testing.assert_close(w, p)  # every step soft
    if estimator == "reinforce":  # soft steps are not REINFORCE's
        assert torch.all(module.take_trace()[0] == 0)
    module.set_progress(0.25)
    assert module.mix_now == pytest.approx(0.5)
    module.set_progress(0.6)
    _, w = module(query, keys, values, mask)
    assert torch.equal(w.sum(-1), torch.ones(2, 3)) and set(w.unique().tolist()) <= {0.0, 1.0}
