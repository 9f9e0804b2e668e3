"""sacreBLEU BLEU and chrF on detokenized text, with signatures; BLEU by sentence length."""

from __future__ import annotations

from collections.abc import Sequence

from sacrebleu.metrics import BLEU, CHRF


def corpus_scores(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, float | str]:
    """BLEU and chrF of detokenized hypotheses against raw references, with signatures."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(list(hyps), [list(refs)])
    c = chrf.corpus_score(list(hyps), [list(refs)])
    return {
        "bleu": round(b.score, 2),
        "chrf": round(c.score, 2),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def bleu_by_length(
    hyps: Sequence[str],
    refs: Sequence[str],
    sources: Sequence[str],
    edges: Sequence[int] = (10, 20, 30, 40),
) -> list[dict[str, float | int | str]]:
    """Corpus BLEU per source-length bucket (words): 1-10, 11-20, ..., 41+ by default."""
    bounds = [1, *[e + 1 for e in edges]]
    buckets = []
    for i, lo in enumerate(bounds):
        hi = bounds[i + 1] - 1 if i + 1 < len(bounds) else None
        idx = [
            k
            for k, s in enumerate(sources)
            if lo <= len(s.split()) and (hi is None or len(s.split()) <= hi)
        ]
        label = f"{lo}-{hi}" if hi is not None else f"{lo}+"
        score = (
            BLEU().corpus_score([hyps[k] for k in idx], [[refs[k] for k in idx]]).score
            if idx
            else None
        )
        buckets.append(
            {
                "bucket": label,
                "sentences": len(idx),
                "bleu": None if score is None else round(score, 2),
            }
        )
    return buckets
