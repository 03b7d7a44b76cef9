"""The `billing` command line depends on the contract and on the services' entry points (their
APIs, their topics, `python -m <service> ...`), never on a service's modules."""

from __future__ import annotations

import ast
from pathlib import Path

CLI = Path(__file__).parents[2] / "cli" / "src" / "billing_cli"
SERVICES = {"ledger", "identity", "tariff", "notifier"}


def _imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return names


def test_the_command_line_imports_no_service() -> None:
    found = {f"{path.name}: {name}" for path in sorted(CLI.glob("*.py")) for name in _imported(path)
             if name.partition(".")[0] in SERVICES}
    assert found == set()
    assert "billing_events.catalog.ledger" in _imported(CLI / "seals.py")  # the contract, seen by the check
