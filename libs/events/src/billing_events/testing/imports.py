"""What a module imports, read from its source, for the tests that hold the walls."""

from __future__ import annotations

import ast
from pathlib import Path


def imported_names(path: Path) -> set[str]:
    """The dotted names a module imports, absolute imports only: ``from a.b import c`` imports
    ``a.b.c``; a relative import stays inside its own package and is not a wall's concern."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {f"{node.module}.{alias.name}" for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module and not node.level for alias in node.names}
    return names


def top_level(name: str) -> str:
    return name.partition(".")[0]
