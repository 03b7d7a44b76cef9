"""docs/architecture.md is a claim about every service: the rooms it draws are the rooms each
service has, and the walls it lists stand. These checks read the page and the source, so the
page and the code cannot drift apart unnoticed."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
from pathlib import Path

import pytest
from billing_events.testing.imports import imported_names, top_level

ROOT = Path(__file__).parents[2]
SERVICES = ("ledger", "identity", "tariff", "notifier")
FRONT_DOORS = {"billing_cli", "billing_cabinet"}
# What a domain never touches: storage, the broker, the network, crypto, the log.
DOMAIN_FORBIDDEN = {"sqlalchemy", "alembic", "asyncpg", "aiosqlite", "faststream", "aiokafka", "httpx", "fastapi",
                    "starlette", "nacl", "cryptography", "argon2", "jwt", "structlog", "socket", "asyncio",
                    "subprocess"}
CONTRACT_MAY_IMPORT = {"billing_contracts", "pydantic", "pydantic_core"}
# The page's one exception: the tariff's refusals sit beside its domain, since the catalog raises
# them too and the domain reads the catalog (one module both import keeps the imports one-way).
MOVED_ROOMS = {"tariff": {"domain/errors.py": "errors.py"}}
DOMAIN_MAY_ALSO_IMPORT = {"tariff": {"tariff.errors", "tariff.catalog"}}


def rooms_on_the_page() -> list[str]:
    """The paths drawn under "The rooms of a service": a nested line is a file in the folder
    above it (``domain/`` then ``errors.py`` gives ``domain/errors.py``)."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    drawing = page.split("## The rooms of a service", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    rooms: list[str] = []
    folder = ""
    for line in drawing.splitlines():
        found = re.match(r"^( +)(\S+/|\S+\.py)\s", line + " ")
        if not found or found.group(2).startswith("services/"):
            continue
        depth, name = len(found.group(1)), found.group(2)
        if depth <= 2:
            folder = name if name.endswith("/") else ""
            rooms.append(name)
        else:
            rooms.append(folder + name)
    return rooms


def missing_rooms(package: Path, rooms: list[str]) -> list[str]:
    """A module room may be a package of the same name (identity's ``service/``)."""
    def present(room: str) -> bool:
        path = package / room
        if room.endswith("/"):
            return path.is_dir()
        return path.is_file() or (path.with_suffix("") / "__init__.py").is_file()

    return [room for room in rooms if not present(room)]


def imports_outside(package: Path, allowed: set[str], forbidden_top: set[str] | None = None) -> set[str]:
    """Each module's imports that leave the walls: suite packages not in ``allowed``, or any of
    ``forbidden_top``."""
    suite = {*SERVICES, *FRONT_DOORS, "billing_events", "billing_contracts"}
    found = set()
    for path in sorted(package.rglob("*.py")):
        for name in imported_names(path):
            first = top_level(name)
            crosses = first in suite and first not in allowed and not any(
                name == entry or name.startswith(f"{entry}.") for entry in allowed)
            if crosses or first in (forbidden_top or set()):
                found.add(f"{path.relative_to(package)}: {name}")
    return found


def package_of(service: str) -> Path:
    return ROOT / "services" / service / "src" / service


def test_the_page_draws_the_rooms_the_checks_use() -> None:
    assert rooms_on_the_page() == [
        "domain/", "domain/errors.py", "context.py", "service.py", "store.py", "handlers.py", "http.py", "app.py",
        "settings.py", "migrations/"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_every_room(service: str) -> None:
    moved = MOVED_ROOMS.get(service, {})
    assert missing_rooms(package_of(service), [moved.get(room, room) for room in rooms_on_the_page()]) == []


def test_the_page_gives_the_reason_for_each_exception() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert "`errors.py` beside `domain/` rather than in it, because the catalog raises them too" in page


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service_and_no_front_door(service: str) -> None:
    assert imports_outside(package_of(service), {service, "billing_events", "billing_contracts"}) == set()


@pytest.mark.parametrize("service", SERVICES)
def test_a_domain_does_no_io(service: str) -> None:
    domain = package_of(service) / "domain"
    allowed = {f"{service}.domain", "billing_contracts", "billing_events.errors",
               *DOMAIN_MAY_ALSO_IMPORT.get(service, set())}
    assert imports_outside(domain, allowed, DOMAIN_FORBIDDEN) == set()


def test_the_shared_libraries_import_no_service() -> None:
    events = ROOT / "libs" / "events" / "src" / "billing_events"
    assert imports_outside(events, {"billing_events", "billing_contracts"}) == set()


def test_the_contract_imports_pydantic_and_the_standard_library_only() -> None:
    contracts = ROOT / "libs" / "contracts" / "src" / "billing_contracts"
    found = {name for path in contracts.rglob("*.py") for name in imported_names(path)}
    assert {top_level(name) for name in found} - set(sys.stdlib_module_names) - CONTRACT_MAY_IMPORT == set()
    assert "pydantic" in {top_level(name) for name in found}  # the check reads the package


def test_the_checks_catch_a_missing_room_and_a_domain_with_a_database(tmp_path: Path) -> None:
    package = tmp_path / "billing"
    (package / "domain").mkdir(parents=True)
    (package / "domain" / "rules.py").write_text(
        "from sqlalchemy import select\nfrom billing.store import accounts\nfrom billing.domain import money\n"
        "from ledger.domain import errors\n")
    (package / "service").mkdir()
    (package / "service" / "__init__.py").write_text("")
    assert missing_rooms(package, ["domain/", "domain/errors.py", "service.py", "store.py"]) == [
        "domain/errors.py", "store.py"]
    assert imports_outside(package / "domain", {"billing.domain"}, {"sqlalchemy"}) == {
        "rules.py: sqlalchemy.select", "rules.py: ledger.domain.errors"}


@pytest.mark.parametrize("service", SERVICES)
def test_every_handler_takes_the_context_the_unit_of_work_and_the_event(service: str) -> None:
    """The page's handlers.py: one shape, ``(ctx, uow, envelope)``; the ledger's batch decision
    takes the batch's events in the same unit of work."""
    handlers = importlib.import_module(f"{service}.handlers")
    functions = list(getattr(handlers, "HANDLERS", {}).values())
    if service == "ledger":
        functions = [importlib.import_module("ledger.service").post]
    assert functions
    for function in functions:
        assert list(inspect.signature(function).parameters)[:2] == ["ctx", "uow"], function.__qualname__


def command_models_outside_commands(package: Path) -> list[str]:
    """Classes deriving from the command base (or a service's own base of it) defined anywhere
    but the service's ``commands.py``."""
    bases = {"Command", "AccountCommand"}
    found = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "commands.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(getattr(base, "id", None) in bases for base in node.bases):
                found.append(f"{path.relative_to(package)}: {node.name}")
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_a_services_command_models_are_in_its_commands_module(service: str) -> None:
    assert command_models_outside_commands(package_of(service)) == []


def test_the_command_check_finds_a_command_model_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "service.py").write_text("class Pay(Command):\n    amount: int\n", encoding="utf-8")
    (tmp_path / "commands.py").write_text("class Refund(Command):\n    amount: int\n", encoding="utf-8")
    assert command_models_outside_commands(tmp_path) == ["service.py: Pay"]
