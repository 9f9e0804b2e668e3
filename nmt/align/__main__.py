"""`python -m nmt.align` runs `nmt-align`."""

import sys

from nmt.align.cli import main

sys.exit(main())
