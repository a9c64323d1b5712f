"""Fixtures for the runner's tests (the helpers live in runner_helpers.py, a name no other test folder uses)."""

from __future__ import annotations

import pytest
from runner_helpers import FakeSim


@pytest.fixture
def fake_sim(tmp_path) -> FakeSim:
    """A fake simulator whose behaviour each test sets with `fake_sim.set(...)`."""
    return FakeSim(tmp_path / "sim")
