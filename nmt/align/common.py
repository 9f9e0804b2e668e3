"""What every alignment module shares: the link type and the error type (defined in
`nmt.wordlinks`, which guided alignment training also uses)."""

from __future__ import annotations

from nmt.wordlinks import AlignError, Link

__all__ = ["AlignError", "Link"]
