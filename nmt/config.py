"""Typed configuration schemas (Hydra structured configs) and start-up validation.

Every value in `conf/` lands in one of these dataclasses; code receives the dataclass (or
plain arguments taken from it), never a global. `validate()` rejects impossible combinations
before any data is read, with one line naming the key and the allowed values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from nmt.errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration value is unknown, mistyped or impossible; the message is one line."""


@dataclass
class DataConfig:
    """Where the parallel corpus comes from and how it is tokenized."""

    name: str = "multi30k"
    # "local": files under `root`; "hub": Hugging Face datasets; "auto": local if `root`
    # exists, else hub; "synthetic": a generated task (reverse/copy) written under `root`.
    source: str = "auto"
    root: str | None = None
    hub_name: str | None = None
    hub_config: str | None = None
    src_lang: str = "en"
    tgt_lang: str = "de"
    train_prefix: str = "train"
    valid_prefix: str = "val"
    test_prefix: str = "test"
    hub_train_split: str = "train"
    hub_valid_split: str = "validation"
    hub_test_split: str = "test"
    lowercase: bool = False  # lowercase all text (e.g. to match the RWTH gold alignment set)
    tokenize: bool = False  # split off punctuation (Moses-like), as in the RWTH gold text
    max_len: int = 100  # training pairs longer than this (subword tokens) are dropped
    max_train_lines: int | None = None  # read at most this many training pairs
    # more training pairs after the split: local file prefixes, `{prefix}.{lang}[.gz]` (e.g. the
    # RWTH alignment test text, which statistical aligners conventionally see unsupervised)
    extra_train: list[str] = field(default_factory=list)
    # SentencePiece
    spm_type: str = "unigram"  # unigram | bpe | word | char
    vocab_size: int = 8000
    joint_vocab: bool = True
    spm_train_lines: int = 1_000_000  # sentences sampled for SentencePiece training
    # synthetic tasks (source=synthetic)
    task: str = "reverse"  # reverse | copy
    task_size: int = 4000
    task_alphabet: int = 20
    task_min_len: int = 3
    task_max_len: int = 12


@dataclass
class AttentionConfig:
    """RNN attention mechanism; see the README's attention table."""

    type: str = "bahdanau"
    score: str = "general"  # local_m / local_p only: dot | general | concat
    window: int = 10  # local attention half-width D (window 2D+1, sigma = D/2)
    gaussian: bool | None = None  # local: multiply by the Gaussian; None = as in the paper
    max_src_len: int = 128  # luong_location: number of source positions W_a scores
    normalizer: str = "softmax"  # softmax | sparsemax | entmax15 (nmt.models.attention)
    hard: str = (
        "none"  # none (soft) | reinforce | gumbel: one position read (nmt.models.hard_attention)
    )
    hard_inference: str = "argmax"  # hard attention at inference: argmax | soft (the expectation)
    soft_mix: float = 0.0  # hard, training: share of steps that read the expectation (Xu: 0.5)
    soft_mix_anneal: float = 0.0  # share of the budget over which soft_mix falls to 0; 0: never
    reward: str = "step"  # reinforce: step (log p(y_t) of each step) | sentence (Xu et al. 2015)
    entropy_bonus: float = 0.01  # reinforce: lambda_e of the entropy term (Xu et al. 2015, eq. 12)
    baseline_decay: float = 0.9  # reinforce: moving-average baseline b = decay b + (1 - decay) r
    gumbel_tau: float = 1.0  # gumbel: temperature of the straight-through Gumbel-softmax


@dataclass
class RNNConfig:
    """RNN encoder-decoder (Bahdanau 2015 / Luong 2015)."""

    arch: str = "rnn"
    cell: str = "lstm"  # lstm | gru
    emb_size: int = 256
    enc_hidden: int = 128  # per direction when bidirectional
    bidirectional: bool = True
    enc_layers: int = 1
    dec_hidden: int = 256
    dec_layers: int = 1
    input_feed: bool = True  # Luong 2015 sec. 3.3; Bahdanau feeds its context anyway
    dropout: float = 0.2
    tie_embeddings: bool = False  # decoder input/output embeddings (needs emb_size == dec_hidden)


@dataclass
class TransformerConfig:
    """Transformer encoder-decoder (Vaswani et al. 2017)."""

    arch: str = "transformer"
    d_model: int = 256
    heads: int = 4
    ff_size: int = 1024
    enc_layers: int = 3
    dec_layers: int = 3
    dropout: float = 0.1
    attention_dropout: float = 0.1
    pre_norm: bool = True
    tie_embeddings: bool = True  # decoder input/output
    tie_all: bool = False  # also the encoder embeddings (needs data.joint_vocab)
    max_positions: int = 1024


# how two directions of word links are combined (`nmt.wordlinks.symmetrise`)
SYMMETRISATIONS = ("intersection", "grow-diag", "grow-diag-final", "union")


@dataclass
class GuidedAlignmentConfig:
    """Guided alignment (Garg et al. 2019, sec. 4; Liu et al. 2016): a cross-entropy loss that
    pulls one attention distribution toward eflomal's links on the training pairs."""

    weight: float = 0.0  # lambda; 0 = off (Garg et al. use 0.05)
    layer: int = -2  # Transformer: the guided cross-attention layer (Garg: the penultimate)
    head: int = 0  # Transformer: the guided head of that layer
    symmetrise: str = "grow-diag-final"  # how eflomal's two directions are combined
    # Transformer: train (and read) the guided head in a second decoder pass without the future
    # mask, so it sees the whole target (Garg et al. 2019, "full target context")
    full_context: bool = False


@dataclass
class TrainerConfig:
    """Optimisation, validation, checkpointing and stop conditions."""

    max_tokens: int = 4096  # batch size x longest padded sequence (incl. BOS/EOS)
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | adamw
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    # auto: `budget` when max_steps or max_time is set, else the family's classic schedule
    # (RNN: plateau; Transformer: inverse_sqrt); resolved by `resolve_schedule`
    schedule: str = "auto"  # auto | plateau | inverse_sqrt | budget | constant
    warmup_steps: int = 4000
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    min_lr: float = 1e-6
    label_smoothing: float = 0.1
    clip_grad_norm: float = 1.0
    max_steps: int | None = None
    max_epochs: int | None = 100
    max_time: float | None = None  # seconds of wall clock
    validate_every: int = 250  # steps
    valid_max_sentences: int | None = None  # BLEU on at most this many dev sentences
    patience: int | None = 10  # validations without dev BLEU improvement before stopping
    keep_last: int = 3  # numbered checkpoints kept beside last.pt / best.pt
    nan_tolerance: int = 5  # consecutive non-finite steps before the run stops
    precision: str = (
        "auto"  # auto (bf16 where the hardware has it natively, else fp32) | fp32 | bf16
    )
    threads: int | None = None  # torch intra-op threads; None = torch default
    device: str = "auto"  # auto | cpu | cuda
    log_every: int = 50
    num_heatmaps: int = 3  # dev sentences drawn to TensorBoard at each validation
    average_last: int = 0  # >1: average the last N checkpoints into averaged.pt at the end
    test_at_end: bool = True
    guided_alignment: GuidedAlignmentConfig = field(default_factory=GuidedAlignmentConfig)


@dataclass
class DecodeConfig:
    """Search settings for validation, test and translation."""

    beam: int = 5
    valid_beam: int = 1
    length_penalty: float = 1.0  # GNMT-style alpha; 0 = none
    max_len_a: float = 1.5  # max target length = a * source length + b
    max_len_b: int = 10
    min_len: int = 0  # no EOS before this many output tokens (min = max_len: fixed length)
    max_len: int | None = None  # at most this many output tokens (and a * S + b)
    batch_size: int = 64  # sentences per decoding batch


@dataclass
class Config:
    """The whole run: one Hydra config tree."""

    data: DataConfig = field(default_factory=DataConfig)
    model: Any = MISSING  # a ModelConfig: RNNConfig or TransformerConfig, see `model_schema`
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    seed: int = 1
    resume: str | None = None  # a run folder (or checkpoint) to continue from


MODEL_SCHEMAS = {"rnn": RNNConfig, "transformer": TransformerConfig}
ModelConfig = RNNConfig | TransformerConfig  # what Config.model holds after `to_dataclass`


def model_schema(model: Any) -> type[RNNConfig] | type[TransformerConfig]:
    """The dataclass a model config's `arch` names (the RNN when it names none): the one place
    that decides the model kind. OmegaConf cannot type a field as a Union of structured configs,
    so `Config.model` is declared `Any` and resolved here."""
    arch = (model or {}).get("arch", RNNConfig.arch)
    if arch not in MODEL_SCHEMAS:
        raise ConfigError(
            f"model.arch={arch!r} is not allowed; choose one of {', '.join(MODEL_SCHEMAS)}"
        )
    return MODEL_SCHEMAS[arch]


def _one_line(err: Exception) -> str:
    """The first line of an OmegaConf error, which names the key."""
    return str(err).strip().splitlines()[0]


def to_dataclass(cfg: DictConfig | dict) -> Config:
    """Convert a composed config into typed dataclasses, raising ConfigError on bad keys/types."""
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(cfg)
    try:
        schema = OmegaConf.structured(Config)
        schema.model = OmegaConf.structured(model_schema(cfg.get("model")))
        merged = OmegaConf.merge(schema, cfg)
        out = OmegaConf.to_object(merged)
    except ConfigError:
        raise
    except Exception as err:  # omegaconf's ValidationError / ConfigKeyError name the key
        raise ConfigError(_one_line(err)) from None
    validate(out)
    out.trainer.schedule = resolve_schedule(out)
    return out


def resolve_schedule(cfg: Config) -> str:
    """`trainer.schedule=auto` made concrete: under a budget (max_steps or max_time) the budget
    schedule (linear decay to the floor when the budget runs out: Li, Yumer & Ramanan 2020,
    measured best here, see conf/model/*.yaml); without one, plateau for RNNs and Vaswani's
    inverse square root for the Transformer. Explicit values pass through."""
    t = cfg.trainer
    if t.schedule != "auto":
        return t.schedule
    if t.max_steps or t.max_time:
        return "budget"
    return "inverse_sqrt" if isinstance(cfg.model, TransformerConfig) else "plateau"


def _choice(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(
            f"{key}={value!r} is not allowed; choose one of {', '.join(map(str, allowed))}"
        )


def _check_guided_alignment(g: GuidedAlignmentConfig, m: Any, a: AttentionConfig) -> None:
    if g.weight < 0:
        raise ConfigError(f"trainer.guided_alignment.weight={g.weight} must be >= 0")
    if g.weight > 0 and not isinstance(m, TransformerConfig) and a.hard != "none":
        raise ConfigError(
            f"trainer.guided_alignment.weight={g.weight} with attention.hard={a.hard}: hard "
            "attention returns the sampled one-hot rows, which the guided loss cannot train; "
            "guide a soft mechanism (attention.hard=none)"
        )
    _choice(
        "trainer.guided_alignment.symmetrise",
        g.symmetrise,
        SYMMETRISATIONS,
    )
    if g.full_context and not isinstance(m, TransformerConfig):
        raise ConfigError(
            "trainer.guided_alignment.full_context=true needs model=transformer: an RNN's "
            "attention has no future mask to lift"
        )
    if g.weight > 0 and isinstance(m, TransformerConfig):
        if not -m.dec_layers <= g.layer < m.dec_layers:
            raise ConfigError(
                f"trainer.guided_alignment.layer={g.layer} is out of range: "
                f"the decoder has {m.dec_layers} layers"
            )
        if not -m.heads <= g.head < m.heads:
            raise ConfigError(
                f"trainer.guided_alignment.head={g.head} is out of range: "
                f"the model has {m.heads} heads"
            )


def validate(cfg: Config) -> None:
    """Reject impossible combinations with one line naming the key and what is allowed."""
    d, m, t, dec = cfg.data, cfg.model, cfg.trainer, cfg.decode
    _choice("data.source", d.source, ("auto", "local", "hub", "synthetic"))
    _choice("data.spm_type", d.spm_type, ("unigram", "bpe", "word", "char"))
    _choice("data.task", d.task, ("reverse", "copy"))
    if d.vocab_size < 8:
        raise ConfigError(f"data.vocab_size={d.vocab_size} must be >= 8")
    if d.max_len < 1:
        raise ConfigError(f"data.max_len={d.max_len} must be >= 1")
    if d.src_lang == d.tgt_lang:
        raise ConfigError(
            f"data.src_lang and data.tgt_lang are both {d.src_lang!r}; they must differ"
        )
    # attention.type, .score, .window and .max_src_len: nmt.models.check_config (the table)
    if isinstance(m, RNNConfig):
        _choice("model.cell", m.cell, ("lstm", "gru"))
        for key in ("emb_size", "enc_hidden", "dec_hidden", "enc_layers", "dec_layers"):
            if getattr(m, key) < 1:
                raise ConfigError(f"model.{key}={getattr(m, key)} must be >= 1")
        if m.tie_embeddings and m.emb_size != m.dec_hidden:
            raise ConfigError(
                f"model.tie_embeddings needs model.emb_size ({m.emb_size}) == model.dec_hidden ({m.dec_hidden})"
            )
    else:
        if m.heads < 1 or m.d_model % m.heads != 0:
            raise ConfigError(
                f"model.d_model={m.d_model} must be divisible by model.heads={m.heads}"
            )
        if m.tie_all and not d.joint_vocab:
            raise ConfigError("model.tie_all=true needs data.joint_vocab=true")
    if not 0.0 <= getattr(m, "dropout", 0.0) < 1.0:
        raise ConfigError(f"model.dropout={m.dropout} must be in [0, 1)")
    _choice("trainer.optimizer", t.optimizer, ("adam", "adamw"))
    _choice(
        "trainer.schedule", t.schedule, ("auto", "plateau", "inverse_sqrt", "budget", "constant")
    )
    if t.schedule == "budget" and not (t.max_steps or t.max_time):
        raise ConfigError("trainer.schedule=budget needs trainer.max_steps or trainer.max_time")
    _choice("trainer.precision", t.precision, ("auto", "fp32", "bf16"))
    _check_guided_alignment(t.guided_alignment, m, cfg.attention)
    _choice("trainer.device", t.device, ("auto", "cpu", "cuda"))
    if t.lr <= 0:
        raise ConfigError(f"trainer.lr={t.lr} must be > 0")
    if t.max_tokens < 1:
        raise ConfigError(f"trainer.max_tokens={t.max_tokens} must be >= 1")
    if not 0.0 <= t.label_smoothing < 1.0:
        raise ConfigError(f"trainer.label_smoothing={t.label_smoothing} must be in [0, 1)")
    if t.validate_every < 1:
        raise ConfigError(f"trainer.validate_every={t.validate_every} must be >= 1")
    if t.keep_last < 0:
        raise ConfigError(f"trainer.keep_last={t.keep_last} must be >= 0")
    if t.nan_tolerance < 1:
        raise ConfigError(f"trainer.nan_tolerance={t.nan_tolerance} must be >= 1")
    for key in ("beam", "valid_beam", "batch_size"):
        if getattr(dec, key) < 1:
            raise ConfigError(f"decode.{key}={getattr(dec, key)} must be >= 1")
    if dec.max_len_a <= 0 and dec.max_len_b <= 0:
        raise ConfigError("decode.max_len_a and decode.max_len_b cannot both be <= 0")
    check_output_lengths(dec.min_len, dec.max_len, "decode.min_len", "decode.max_len")


def check_output_lengths(min_len: int, max_len: int | None, min_key: str, max_key: str) -> None:
    """Refuse output length limits no output can meet (keys name them: the config's or flags)."""
    if min_len < 0:
        raise ConfigError(f"{min_key}={min_len} must be >= 0")
    if max_len is not None and max_len < 1:
        raise ConfigError(f"{max_key}={max_len} must be >= 1")
    if max_len is not None and min_len > max_len:
        raise ConfigError(f"{min_key}={min_len} is above {max_key}={max_len}")
