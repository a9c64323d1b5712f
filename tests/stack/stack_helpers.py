"""Helpers for the stack tests: where things are, a clean subprocess environment, and cdk.tf.json lookups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envs import clean_env  # noqa: F401  (re-exported for the stack tests)

REPO_ROOT = Path(__file__).resolve().parents[2]
MAIN_PY = REPO_ROOT / "main.py"
CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
CHECKOV_CONFIG = REPO_ROOT / ".checkov.yaml"


def resources_of(tf_json: dict[str, Any], rtype: str) -> dict[str, dict[str, Any]]:
    """Every resource of one type, name -> body without cdktf's "//" metadata."""
    return {name: {k: v for k, v in body.items() if k != "//"} for name, body in tf_json["resource"].get(rtype, {}).items()}


def only(tf_json: dict[str, Any], rtype: str) -> tuple[str, dict[str, Any]]:
    """The one resource of `rtype` as (name, body); fails unless there is exactly one."""
    found = resources_of(tf_json, rtype)
    assert len(found) == 1, f"expected exactly one {rtype}, found {sorted(found)}"
    return next(iter(found.items()))


def ref(rtype: str, name: str, attribute: str) -> str:
    return "${" + f"{rtype}.{name}.{attribute}" + "}"
