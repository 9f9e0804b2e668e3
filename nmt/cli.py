"""The one error wrapper of the command-line tools: user errors as one line and exit code 2."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable

from nmt.errors import UserError


def fail(prog: str, message: str) -> int:
    """Print `PROG: error: MESSAGE` (one line) to stderr; returns the exit code 2."""
    print(f"{prog}: error: {' '.join(str(message).splitlines())}", file=sys.stderr)
    return 2


def run_main(prog: str, body: Callable[[], int | None]) -> int:
    """Run a tool's body; a UserError or an OS error (missing file, unwritable folder) becomes
    one line and exit code 2, a closed output pipe exit 0, Ctrl-C exit 130."""
    try:
        return body() or 0
    except UserError as err:
        return fail(prog, str(err))
    except BrokenPipeError:  # e.g. `nmt-translate ... | head`: the reader is gone; not an error
        with contextlib.suppress(OSError, ValueError):  # no flush error at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:  # no input file, unwritable output, a folder given as a file, ...
        where = f"{err.filename}: {err.strerror}" if err.filename and err.strerror else str(err)
        return fail(prog, where)
    except KeyboardInterrupt:
        return 130
