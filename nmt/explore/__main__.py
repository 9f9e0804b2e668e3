"""`python -m nmt.explore` runs `nmt-explore`."""

import sys

from nmt.explore.cli import main

sys.exit(main())
