"""The one exception type of the data pipeline."""

from __future__ import annotations

from nmt.errors import UserError


class DataError(UserError, ValueError):
    """A corpus file or dataset is missing, unreadable or malformed; the message is one line.

    Every message names the file (or dataset), the line when there is one, and what is wrong,
    so command-line tools can print it as is instead of a traceback.
    """
