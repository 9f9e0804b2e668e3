"""`python -m nmt.bench`: the same as `python scripts/bench.py` (the children run this)."""

import sys

from nmt.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
