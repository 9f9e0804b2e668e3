"""`make bench`: the reference workload of the performance issue, measured through nmt's own code.

Workload (the same for nmt and the peers): Multi30k en->de from $NMT_DATA_ROOT/multi30k, joint
SentencePiece unigram 8k, token batches of ~4096 target tokens, Adam 3e-4, label smoothing 0.1,
2 torch threads.
- `rnn_<mechanism>`: embeddings 256, 1-layer bi-LSTM encoder 128 per direction, 1-layer LSTM
  decoder 256, input feeding, dropout 0.2, attention `<mechanism>` (bahdanau, luong_dot, ...).
- `transformer`: 3+3 layers, d_model 256, 4 heads, FF 1024, pre-norm, dropout 0.1.

For each workload, in a fresh child process (so that peak RSS is per workload): the project's
`Trainer` is built from the composed Hydra config (data from `prepare_data`, reusing one
tokenizer and one encoded training split for every workload), then W warm-up and N timed
`Trainer.train_step` calls on the trainer's own length-bucketed batches (collate and the copy to
the device included in the timed loop); then greedy and beam-5 decoding of test2016 (batch 64)
through `Trainer.translate_ids`. Tokens are non-padding tokens (EOS included). MFU = analytic
training FLOPs per target token x target tokens/s / the matmul peak (torch.mm, 2048x2048, same
threads and precision), the larger of the one measured at the start of the run and the one the
workload's child measures after its work, so that a slow second of a shared machine does not
lower the peak and inflate the MFU.

`--preprocess` (also part of the default run) measures streaming preprocessing (`prepare_data`:
tokenizer training on a sample, encoding, memory-mapped ids) on Multi30k repeated 1x, 10x and
100x (29k, 290k, 2.9M lines), each size in a fresh child process: lines/s and peak RSS.

    python scripts/bench.py                                   # everything, writes bench.json
    python scripts/bench.py --workloads rnn_bahdanau,transformer --steps 50 --precision fp32
    python scripts/bench.py --preprocess                      # preprocessing only
    python scripts/bench.py --decode-ckpt transformer=outputs/RUN   # decode a trained model

Decoding speed depends on output lengths: a model trained for only W+N steps rarely emits EOS
early, so its hypotheses run to the length limit. For figures comparable to trained peers pass
`--decode-ckpt NAME=RUN_DIR_OR_CKPT`; the hypothesis lengths (and BLEU for a checkpoint) are
recorded beside the speeds.

`--whole-run SECONDS` trains each workload with `nmt-train` instead, side by side, and records
each whole run's peak RSS (every batch shape, validation, test decoding: `wholerun`).

Modules: `cli` (arguments, the parent's loop, bench.json), `children` (one measurement per
fresh interpreter, `python -m nmt.bench`), `workload` (the reference configuration, one
training measurement), `decode`, `preprocess`, `wholerun`, `flops` (the analytic FLOP model),
`system` (machine, memory, matmul peak), `table` (the printed summary). Nothing here imports torch at
module level: the parent sets OMP_NUM_THREADS first, and the children inherit it.
"""
