#!/usr/bin/env bash
# One prepared run on a lent GPU (a session's device time is short: everything in one call).
#   1. issue 18: the Transformer base preset (conf/model/transformer_base.yaml) in bf16, training
#      target tokens/s and MFU against the bf16 matmul peak measured in the same run (make bench,
#      --device cuda), at the GPU preset's 8,192 tokens a batch and at 25,000 (Vaswani et al.);
#      then every workload of the GPU preset (the 7 RNN mechanisms, the small Transformer).
#   2. issue 16: the alignment preset's unguided runs (conf/sweep/align.yaml, both directions) of
#      the mechanisms not yet measured, all side by side on the one GPU, stopped at a deadline
#      (numbered checkpoints every 900 steps survive), then AER of each checkpoint
#      (python -m nmt.align.sweep, methods chosen on gold lines 1-100, AER on 101-508).
# Everything lands under $OUT. The device machine has PyTorch but not Hydra, OmegaConf, antlr4
# or entmax: they travel as the pure-Python copies in .devsite/, the corpora in .devdata/ (keep
# both out of git: .git/info/exclude), which `prepare` makes from .venv and $NMT_DATA_ROOT.
#
#   bash scripts/gpu_check.sh prepare                 # here, once: .devsite/ and .devdata/
#   bash scripts/gpu_check.sh                         # there (carry .devsite and .devdata)
#   DEVICE=cpu SMOKE=1 bash scripts/gpu_check.sh      # the same path, tiny, on this machine
set -u
if [ "${1:-}" = prepare ]; then
  site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  rm -rf .devsite .devdata && mkdir -p .devsite/hydra_plugins .devdata || exit 1
  cp -r "$site"/{hydra,omegaconf,antlr4,entmax} .devsite/ &&
    cp -r "$site"/hydra_plugins/hydra_joblib_launcher .devsite/hydra_plugins/ &&
    cp -r "${NMT_DATA_ROOT:-../shared/data}"/{multi30k,wmt14-slice-de-en,rwth-align-de-en} .devdata/ ||
    exit 1
  find .devsite -name __pycache__ -prune -exec rm -rf {} +
  du -sh .devsite .devdata
  exit 0
fi
OUT=${OUT:-$PWD/gpu-out}
DEVICE=${DEVICE:-cuda}
SMOKE=${SMOKE:-0}
PY=${PY:-python3}
export PYTHONPATH=$PWD:$PWD/.devsite${PYTHONPATH:+:$PYTHONPATH}
export NMT_DATA_ROOT=${NMT_DATA_ROOT:-$PWD/.devdata}
export PYTHONUNBUFFERED=1 HYDRA_FULL_ERROR=1
mkdir -p "$OUT"
T0=$(date +%s)
BENCH_END=${BENCH_END:-200}   # seconds after the start
TRAIN_END=${TRAIN_END:-470}
SCORE_END=${SCORE_END:-565}
left() { local l=$(($1 - ($(date +%s) - T0))); echo $((l < 1 ? 1 : l)); }  # timeout 0 = none
say() { echo "[$(($(date +%s) - T0))s] $*"; }

if [ "$SMOKE" = 1 ]; then
  STEPS=2; WARM=1; SENTS=8; ALIGN="trainer.max_steps=20 trainer.validate_every=10 trainer.valid_max_sentences=8"
  CKPTS="step_10.pt step_20.pt last.pt"; MECHS="bahdanau local_m"; JOBS=2
else
  STEPS=60; WARM=10; SENTS=256; ALIGN=""
  CKPTS="step_900.pt step_1800.pt step_2700.pt step_3600.pt last.pt"  # last.pt: at the deadline
  MECHS="bahdanau luong_dot luong_concat luong_location local_m"; JOBS=14
fi

# --- 0. the machine ------------------------------------------------------------------------------
{
  nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,driver_version --format=csv 2>&1
  $PY -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())"
  nproc
} 2>&1 | tee "$OUT/machine.txt"
$PY -c "import nmt.train, nmt.trainer, nmt.pipeline, nmt.align.sweep, nmt.bench.cli, entmax, \
  hydra_plugins.hydra_joblib_launcher, torch.utils.tensorboard, sentencepiece, sacrebleu" || {
  echo "imports failed"; exit 3; }

# --- 1. speed: the Transformer base preset, then the GPU preset's workloads ----------------------
BASE=(--set transformer:model.d_model=512 --set transformer:model.heads=8
      --set transformer:model.ff_size=2048 --set transformer:model.enc_layers=6
      --set transformer:model.dec_layers=6 --set transformer:model.tie_all=true
      --set transformer:model.pre_norm=true --set transformer:model.dropout=0.1)
bench() {  # NAME ARGS...: one make-bench call, its table to the log, bench-NAME.json to $OUT
  local name=$1; shift
  say "bench $name"
  timeout "$(left "$BENCH_END")" $PY scripts/bench.py --device "$DEVICE" --precision bf16 \
    --no-preprocess --threads 4 --peak-size 8192 --steps "$STEPS" --warmup "$WARM" \
    --decode-sents "$SENTS" --work /tmp/gpu-bench-work --out "$OUT/bench-$name.json" "$@" 2>&1 |
    tail -25
}
[ "${SKIP_BENCH:-0}" = 1 ] || bench base8k --workloads transformer "${BASE[@]}" --set trainer.max_tokens=8192
[ "${SKIP_BENCH:-0}" = 1 ] || bench base25k --workloads transformer "${BASE[@]}" --set trainer.max_tokens=25000
[ "${SKIP_BENCH:-0}" = 1 ] || bench preset --set trainer.max_tokens=8192

# --- 2. the alignment preset's unguided runs, side by side ---------------------------------------
ROOT=multirun/align-gpu
pids=()
for m in $MECHS; do
  for d in de-en en-de; do
    dir=$ROOT/$m/$d
    mkdir -p "$dir"
    $PY -m nmt.train +sweep=align +variant="$m" +direction="$d" \
      trainer.guided_alignment.weight=0 trainer.device="$DEVICE" $ALIGN \
      hydra.run.dir="$dir" > "$dir.log" 2>&1 &
    pids+=($!)
  done
done
say "align: ${#pids[@]} runs started"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 20 > "$OUT/smi.csv" 2>&1 &
smi=$!
while [ "$(left "$TRAIN_END")" -gt 0 ]; do
  alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
  [ "$alive" = 0 ] && break
  sleep 5
done
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done  # SIGTERM: last.pt, then exit
sleep 20
for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
kill "$smi" 2>/dev/null
wait 2>/dev/null
say "align: training stopped"
for m in $MECHS; do for d in de-en en-de; do
  echo "$m $d: $(ls $ROOT/$m/$d/checkpoints 2>/dev/null | tr '\n' ' ')"
  tail -1 "$ROOT/$m/$d/progress.jsonl" 2>/dev/null | cut -c1-220; grep -h "Error\|error:" "$ROOT/$m/$d.log" | tail -2
done; done

# --- 3. AER of every checkpoint, one scorer per (mechanism, checkpoint) --------------------------
export OMP_NUM_THREADS=1
for m in $MECHS; do for c in $CKPTS; do echo "$m $c"; done; done |
  timeout "$(left "$SCORE_END")" xargs -P "$JOBS" -n 2 sh -c \
    "$PY -m nmt.align.sweep $ROOT/\$0 --checkpoint \$1 --no-eflomal > $ROOT/\$0/score-\$1.log 2>&1"
say "scored"
for m in $MECHS; do for c in $CKPTS; do
  grep -h "AER" "$ROOT/$m/score-$c.log" 2>/dev/null | head -1 | sed "s/^/$c /"
done; done
tar czf "$OUT/align-gpu.tgz" --exclude=checkpoints --exclude=tb --exclude='*.bin' \
  --exclude='*.idx' --exclude='*.npy' "$ROOT" 2>/dev/null
ls -la "$OUT"
say "done"
