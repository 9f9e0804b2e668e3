"""The one base class of problems a user can fix: a bad config value, corpus, checkpoint, device
or training setting. Its message is one line naming the key, file or line and what is wrong;
`nmt.cli.run_main` prints it as `PROG: error: MESSAGE` with exit code 2, never a traceback.
Anything else is a bug (or the machine) and keeps its traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem in what the user gave nmt; the message is one line."""
