"""What every alignment module shares: the link type and the error type."""

from __future__ import annotations

Link = tuple[int, int]  # (source word, target word), 0-based


class AlignError(ValueError):
    """Bad input for alignment scoring (the message is one line)."""
