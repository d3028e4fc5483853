"""The base of every expected failure (bad input, damaged file, refused operation).

`come.cli.main` prints an expected failure as one line and exits 1; anything else is a bug and
keeps its traceback. Subclasses also derive from the builtin they refine (RuntimeError,
ValueError), so older `except` clauses keep working.
"""
from __future__ import annotations


class ComeError(Exception):
    """An expected failure; the message names the file or setting and what is wrong."""
