"""Fixtures of the workflow tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import copy_repo


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """A throw-away copy of the working tree (runs never touch the checkout's results/)."""
    return copy_repo(tmp_path / "repo")
