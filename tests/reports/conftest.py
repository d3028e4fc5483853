"""Fixture: a realistic fake `results/` tree (see fake_results.py), built once per session."""
from __future__ import annotations

import pytest

from .fake_results import build_fake_results


@pytest.fixture(scope="session")
def fake_results(tmp_path_factory) -> dict:
    return build_fake_results(tmp_path_factory.mktemp("fake") / "results")
