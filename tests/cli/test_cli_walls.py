"""The `billing` command line depends on the contract, on the services' entry points (their APIs,
their topics, `python -m <service> ...`) and on the ledger's operations library (`ledger.ops`,
which reads the journal for `verify`, `rebuild`, `replay`, `statement`, `receipt`), never on a
service's other modules."""

from __future__ import annotations

from pathlib import Path

from billing_events.testing.imports import imported_names

CLI = Path(__file__).parents[2] / "cli" / "src" / "billing_cli"
SERVICES = {"ledger", "identity", "tariff", "notifier"}
ALLOWED = "ledger.ops"


def _allowed(name: str) -> bool:
    return name == ALLOWED or name.startswith(f"{ALLOWED}.")


def test_the_command_line_imports_no_service_but_the_ledgers_operations() -> None:
    found = {f"{path.name}: {name}" for path in sorted(CLI.glob("*.py")) for name in imported_names(path)
             if name.partition(".")[0] in SERVICES and not _allowed(name)}
    assert found == set()
    assert "ledger.ops" in imported_names(CLI / "ledger_ops.py")  # the check sees `from ledger import ops`
    assert "billing_contracts.catalog.ledger.JournalSealed" in imported_names(CLI / "seals.py")  # the contract, seen


def test_the_check_catches_a_services_other_module(tmp_path: Path) -> None:
    module = tmp_path / "reads_the_store.py"
    module.write_text("from ledger import ops, store\nimport tariff.service\nfrom ledger.ops import Seal\n")
    assert {name for name in imported_names(module) if not _allowed(name)} == {"ledger.store", "tariff.service"}
