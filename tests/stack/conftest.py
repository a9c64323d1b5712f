"""Fixtures for the stack tests: the session's one real synth (tests/conftest.py `synth`), parsed as cdk.tf.json."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def tf(synth) -> dict[str, Any]:
    return synth.tf
