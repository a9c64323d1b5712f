"""The runner's storage-layout constants, read from runner/layout.py as data (parsed, never imported).

The stack derives IAM prefixes, lifecycle filters and metric names from them, so the two cannot drift apart.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import Any

LAYOUT_PATH = Path(__file__).resolve().parents[1] / "runner" / "layout.py"


def _evaluate(node: ast.expr, known: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in known:
        return known[node.id]
    if isinstance(node, ast.Tuple):
        return tuple(_evaluate(item, known) for item in node.elts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _evaluate(node.left, known) + _evaluate(node.right, known)
    raise ValueError(f"not a plain constant: {ast.dump(node)}")


def read_constants(path: Path = LAYOUT_PATH) -> dict[str, Any]:
    """Every top-level UPPER_CASE assignment in `path` built from literals, names and `+`."""
    known: dict[str, Any] = {}
    for stmt in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name = stmt.targets[0].id
            if name.isupper():
                known[name] = _evaluate(stmt.value, known)
    return known


@functools.lru_cache(maxsize=1)
def layout() -> dict[str, Any]:
    """The constants of runner/layout.py (cached for the process)."""
    return read_constants()
