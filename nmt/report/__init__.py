"""`nmt-report`: one leaderboard and side-by-side figures for every run folder under a directory.

Sweeps
------
`make sweep` compares all seven RNN attention mechanisms and the Transformer in one command::

    make sweep                                  # CPU preset (conf/sweep/cpu.yaml), then nmt-report
    make sweep SWEEP=gpu                        # GPU preset (conf/sweep/gpu.yaml): 3 seeds each
    make sweep ARGS="seed=1,2,3"                # extra overrides for every run / replace a swept list
    make sweep ARGS="+variant=bahdanau,transformer"   # only some of the eight variants

It runs `nmt-train -m +sweep=cpu` and then `nmt-report multirun/sweep-cpu`. A preset sweeps the
single choice group `variant` (conf/variant/*.yaml: `bahdanau` ... `local_p` = model=rnn with that
attention, `transformer` = model=transformer), so the Transformer runs once, not once per attention
type. Budgets are stated at the top of each preset file.

Any other sweep is one command line away; Hydra runs the cartesian product::

    nmt-train -m attention=luong_general,local_p model.dec_hidden=256,512 seed=1,2,3
    nmt-report multirun

Resuming: a preset writes to a fixed folder (multirun/sweep-cpu, one sub-folder per override set),
so running the same command again skips every run whose metrics.json says it finished
(interrupted=false; `nmt.rundir.finished_metrics`, called by nmt-train) and continues unfinished ones
from their checkpoints/last.pt. For an ad-hoc sweep, fix the folder yourself and re-run the
identical command: `nmt-train -m hydra.sweep.dir=multirun/mine attention=...` (its sub-folders
start with the job number, so keep the order of the swept values, or also pass
`'hydra.sweep.subdir=${hydra.job.override_dirname}'`). Changing the preset file does not
invalidate finished runs: delete a run's metrics.json (or its folder) to train it again. A run
that fails with a configuration, data, checkpoint or training error writes error.txt
(`nmt.rundir.record_failure`) and the sweep goes on; the report lists it as failed.

Launchers (Hydra plugins from the `sweep` extra, `pip install -e '.[sweep]'`):

- default (basic launcher): runs one after another in this process.
- parallel local runs (joblib): `nmt-train -m hydra/launcher=parallel ...` (conf/hydra/launcher/
  parallel.yaml: 4 jobs; `hydra.launcher.n_jobs=N` to change); give each run its share of the
  cores, e.g. `trainer.threads=2` for 4 jobs on 8 cores. Plain `hydra/launcher=joblib` works too.
- SLURM (submitit): `nmt-train -m hydra/launcher=slurm +sweep=gpu`; conf/hydra/launcher/slurm.yaml
  sets partition, time, GPUs, CPUs and memory per job; override on the command line, e.g.
  `hydra.launcher.partition=gpu hydra.launcher.timeout_min=120`. The job logs land in
  `<sweep dir>/.submitit/`. `hydra/launcher=submitit_local` runs the same jobs locally.
  At the time limit SLURM sends SIGTERM: the trainer saves a checkpoint and marks the run
  interrupted; re-run the sweep to continue it.

Report
------
`nmt-report DIR [DIR ...] [-o OUT]` finds every run folder (a folder with .hydra/config.yaml)
anywhere below DIR, so several multiruns side by side are read together, and writes to OUT
(default: the first DIR):

- leaderboard.md and leaderboard.csv: one row per configuration (runs that differ only in `seed`
  are one row, mean ± std) with mechanism, model, params, dev and test BLEU, test chrF, AER (when
  metrics.json has `aer`), training target tokens/s, test decode sentences/s, wall time and steps,
  sorted by dev BLEU. Runs that failed, were interrupted or are still incomplete are listed with
  their status (never dropped): in their own table in leaderboard.md and as rows with that
  status in leaderboard.csv.
- uncertainty (`--resamples N`, default 1000; 0 skips it): a 95% confidence interval for the
  test BLEU and chrF of every finished run (sacreBLEU bootstrap resampling of its test.hyp
  against the test references, read again from the run's data config; fixed seed), and
  sacreBLEU's paired bootstrap test of every configuration against the best one (highest test
  BLEU): columns bleu_ci_low/high, chrf_ci_low/high, p_vs_best, worse_than_best, is_best and
  stats_seed in leaderboard.csv (per-run intervals in runs.csv), `*` after test BLEU in
  leaderboard.md and one sentence under the table saying which differences are significant.
  A configuration with several seeds is tested with its median-BLEU seed. Runs without
  test.hyp or references get empty cells and are named under the table.
- runs.csv: every run folder, one row each.
- figures/bleu_by_length.png: test BLEU per source-length bucket, one line per configuration.
- figures/attention_grid.png: attention heatmaps of the first 3 test sentences (rows: one run per
  configuration, the seed with the best dev BLEU; columns: sentences), re-decoded from each run's
  checkpoints/best.pt on the CPU (`--no-heatmaps` skips this).
- figures/dev_bleu_vs_time.png: dev BLEU against training time (valid.jsonl), one line per run.

Layout: `runs` finds and reads run folders, `groups` groups seeds of one configuration,
`references` reads a run's test.hyp and its test references, `stats` computes the intervals and
tests, `tables` writes the CSV files, `markdown` leaderboard.md, `figures` prepares the figures
that `nmt.viz` draws, and `cli` is the command. Names the tests and other tools use are re-exported
here, so `nmt-report = nmt.report:main` keeps working.
"""

from nmt.report.cli import build_parser, draw_figures, main, make_report
from nmt.report.figures import first_test_sources, plot_attention_grid
from nmt.report.groups import Group, group_runs, settings_of
from nmt.report.markdown import budget_lines
from nmt.report.runs import Run, find_run_dirs, load_run, load_runs
from nmt.report.stats import Significance, compare
from nmt.report.tables import METRICS
from nmt.rundir import FAILURE_FILE, finished_metrics, record_failure

__all__ = [
    "FAILURE_FILE",
    "METRICS",
    "Group",
    "Run",
    "Significance",
    "budget_lines",
    "build_parser",
    "compare",
    "draw_figures",
    "find_run_dirs",
    "finished_metrics",
    "first_test_sources",
    "group_runs",
    "load_run",
    "load_runs",
    "main",
    "make_report",
    "plot_attention_grid",
    "record_failure",
    "settings_of",
]
