"""`make bench`: the reference workload of the performance issue, measured through nmt's own code.

The benchmark lives in the package `nmt.bench` (its docstring describes the workload, the
measurements and the flags; `python scripts/bench.py --help` lists them). This script only
makes the checkout importable and calls `nmt.bench.cli.main`.

    python scripts/bench.py                                   # everything, writes bench.json
    python scripts/bench.py --workloads rnn_bahdanau,transformer --steps 50 --precision fp32
    python scripts/bench.py --preprocess                      # preprocessing only
    python scripts/bench.py --decode-ckpt transformer=outputs/RUN   # decode a trained model
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nmt.bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
