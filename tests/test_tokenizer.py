"""SentencePiece tokenizer training, round trips and serialization."""

from __future__ import annotations

import pytest
import torch

from nmt.data.tokenizer import BOS, EOS, EOS_PIECE, PAD, UNK, Tokenizer

SRC = [
    "the quick brown fox jumps over the lazy dog",
    "a man is riding a bicycle down the street",
    "two children are playing in the park",
    "the dog runs after the ball",
    "a woman reads a book in the garden",
] * 4
TGT = [
    "der schnelle braune fuchs springt über den faulen hund",
    "ein mann fährt mit dem fahrrad die straße hinunter",
    "zwei kinder spielen im park",
    "der hund rennt dem ball hinterher",
    "eine frau liest ein buch im garten",
] * 4


@pytest.mark.parametrize("model_type", ["unigram", "bpe", "word"])
@pytest.mark.parametrize("joint", [True, False])
def test_train_round_trip(tmp_path, model_type, joint):
    tok = Tokenizer.train(SRC, TGT, model_type, 200, joint, tmp_path, max_lines=1000)
    files = {p.name for p in tmp_path.iterdir()}
    assert files == ({"spm.model"} if joint else {"spm.src.model", "spm.tgt.model"})
    assert (tok.src is tok.tgt) == joint
    for sp in (tok.src, tok.tgt):
        assert [sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()] == [PAD, UNK, BOS, EOS]
    ids = tok.encode_tgt(TGT[:5])
    assert all(BOS not in s and EOS not in s for s in ids)
    assert tok.decode_tgt(ids) == TGT[:5]
    framed = [[BOS, *s, EOS, PAD, PAD] for s in ids]
    assert tok.decode_tgt(framed) == TGT[:5]
    assert tok.decode_tgt([[*ids[0], EOS, *ids[1]]]) == TGT[:1]  # stops at EOS
    src_ids = tok.encode_src(SRC[:2])
    assert tok.decode_src(src_ids) == SRC[:2]
    assert "".join(tok.src_pieces(SRC[0])).replace("▁", " ").strip() == SRC[0]
    assert tok.tgt_pieces_from_ids([*ids[0], EOS])[-1] == "</s>"
    assert tok.src_vocab_size > 4 and tok.tgt_vocab_size > 4
    if not joint:
        src_vocab = {tok.src.id_to_piece(i) for i in range(tok.src_vocab_size)}
        assert "ü" not in src_vocab and "ü" in "".join(
            tok.tgt_pieces_from_ids(range(tok.tgt_vocab_size))
        )


def test_dict_and_load_round_trip(tmp_path):
    tok = Tokenizer.train(SRC, TGT, "unigram", 50, False, tmp_path, max_lines=10)
    state = tok.to_dict()
    assert set(state) == {"joint", "src", "tgt"} and isinstance(state["src"], bytes)
    torch.save({"tokenizer": state}, tmp_path / "ckpt.pt")
    restored = Tokenizer.from_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["tokenizer"])
    loaded = Tokenizer.load(tmp_path)
    for other in (restored, loaded):
        assert other.joint is False
        assert other.encode_src(SRC) == tok.encode_src(SRC)
        assert other.encode_tgt(TGT) == tok.encode_tgt(TGT)
    with pytest.raises(FileNotFoundError, match="spm.model"):
        Tokenizer.load(tmp_path / "empty")


def test_training_is_deterministic(tmp_path):
    a = Tokenizer.train(SRC, TGT, "bpe", 70, True, tmp_path / "a", max_lines=1000, seed=3)
    b = Tokenizer.train(SRC, TGT, "bpe", 70, True, tmp_path / "b", max_lines=1000, seed=3)
    assert a.to_dict() == b.to_dict()


def test_src_pieces_with_eos_from_ids_and_from_text(tmp_path):
    tok = Tokenizer.train(SRC, TGT, "word", 200, True, tmp_path, max_lines=1000)
    line = "the dog reads a €"  # "€" is not in the vocabulary
    ids = tok.encode_src([line])[0]
    from_ids = tok.src_pieces_with_eos(ids)
    assert from_ids == [*tok.src_pieces_from_ids(ids), "</s>"] and len(from_ids) == len(ids) + 1
    assert from_ids[-2] == "<unk>" and EOS_PIECE == tok.src.id_to_piece(EOS) == "</s>"
    # from text, unknown characters stay readable (attention plot labels)
    from_text = tok.src_pieces_with_eos(line)
    assert from_text[:-2] == from_ids[:-2] and from_text[-2] == "▁€" and from_text[-1] == "</s>"
    assert tok.src_pieces_with_eos(line, limit=2) == [*from_ids[:2], "</s>"]
    assert tok.src_pieces_with_eos([]) == ["</s>"]


def test_special_ids_come_from_the_core_vocab_module():
    import nmt.data.tokenizer as tokenizer_mod
    import nmt.vocab

    assert (PAD, UNK, BOS, EOS) == (nmt.vocab.PAD, nmt.vocab.UNK, nmt.vocab.BOS, nmt.vocab.EOS)
    assert (PAD, UNK, BOS, EOS) == (0, 1, 2, 3) and tokenizer_mod.EOS_PIECE == nmt.vocab.EOS_PIECE
