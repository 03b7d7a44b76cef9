"""The cabinet is a front door as a platform team's would be: it speaks to the services over HTTP
only, never with their modules, their shared libraries or their databases."""

from __future__ import annotations

from pathlib import Path

from billing_events.testing.imports import imported_names

CABINET = Path(__file__).parents[2] / "cabinet" / "src" / "billing_cabinet"
SUITE = {"ledger", "identity", "tariff", "notifier", "billing_events", "billing_contracts", "billing_cli"}
DATABASES = {"sqlalchemy", "asyncpg", "psycopg", "psycopg2", "sqlite3", "aiosqlite", "aiokafka"}


def test_the_cabinet_imports_no_service_and_no_database() -> None:
    modules = sorted(CABINET.rglob("*.py"))
    assert len(modules) >= 5  # the check reads the package, not an empty folder
    found = {f"{path.name}: {name}" for path in modules for name in imported_names(path)
             if name.partition(".")[0] in SUITE | DATABASES}
    assert found == set()
    assert "httpx" in imported_names(CABINET / "services.py")  # how it does speak to them, seen by the check


def test_the_cabinet_package_depends_on_no_part_of_the_suite() -> None:
    declared = (CABINET.parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    assert "billing-" not in declared.partition("dependencies = [")[2].partition("]")[0]
