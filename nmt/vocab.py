"""Special token ids shared by the tokenizer, the models and decoding.

Every SentencePiece model is trained with these ids (`nmt.data.tokenizer`), so a model or a
decoder can rely on them without importing the data pipeline. This module imports nothing.
"""

PAD, UNK, BOS, EOS = 0, 1, 2, 3
N_SPECIAL = EOS + 1  # the ids below are the specials; a vocabulary shortlist keeps them in place
EOS_PIECE = "</s>"  # the piece SentencePiece shows for EOS, e.g. the last attention column
