"""`python -m nmt.report DIR ...`: the same as `nmt-report`."""

import sys

from nmt.report.cli import main

sys.exit(main())
