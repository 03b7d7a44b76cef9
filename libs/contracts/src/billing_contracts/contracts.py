"""The published contract: JSON Schemas of every event version, kept in the repository.

A consuming team codes against ``billing_contracts/schemas/<Type>.v<N>.json`` (in the
repository: ``libs/contracts/src/billing_contracts/schemas``). Once a version is
published, a change that could break its readers is refused (see :func:`breaking_changes`);
such a change needs a new version of the event instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from billing_contracts import catalog as _catalog  # noqa: F401  (registers every event type)
from billing_contracts.dead_letter_record import DeadLetterRecord
from billing_contracts.envelope import REGISTRY, Event, envelope_model

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
_COSMETIC = frozenset({"description", "title", "examples", "default"})


def schema_file(event_cls: type[Event]) -> Path:
    return SCHEMA_DIR / f"{event_cls.event_type}.v{event_cls.version}.json"


def event_schema(event_cls: type[Event]) -> dict[str, Any]:
    schema = envelope_model(event_cls).model_json_schema()
    schema["title"] = f"{event_cls.event_type} v{event_cls.version}"
    schema["x-topic"] = event_cls.topic
    return schema


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def dead_letter_schema() -> dict[str, Any]:
    schema = DeadLetterRecord.model_json_schema()
    schema["title"] = f"{DeadLetterRecord.name} v{DeadLetterRecord.version}"
    schema["x-topic"] = "billing.<consumer>.dlq"
    return schema


DEAD_LETTER_FILE = SCHEMA_DIR / f"{DeadLetterRecord.name}.v{DeadLetterRecord.version}.json"


def current_schemas() -> dict[Path, str]:
    schemas = {schema_file(cls): event_schema(cls) for cls in REGISTRY.values()}
    return {path: render(schema) for path, schema in {**schemas, DEAD_LETTER_FILE: dead_letter_schema()}.items()}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline $refs and drop cosmetic keys, so two schemas compare by meaning only."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _resolve(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {k: _resolve(v, defs) for k, v in node.items() if k not in _COSMETIC and k != "$defs"}
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    return node


def breaking_changes(published: dict[str, Any], current: dict[str, Any], path: str = "") -> list[str]:
    """What in ``current`` could break a reader of ``published`` (or a reader of old events).

    Allowed: new optional fields, new descriptions. Refused: a field removed, a field's type or
    allowed values changed, a field becoming required, a required field becoming optional.
    """
    old = _resolve(published, published.get("$defs", {}))
    new = _resolve(current, current.get("$defs", {}))
    return _compare(old, new, path or "(event)")


def _compare(old: dict[str, Any], new: dict[str, Any], path: str) -> list[str]:
    problems: list[str] = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for name, old_prop in old_props.items():
        where = f"{path}.{name}"
        if name not in new_props:
            problems.append(f"{where}: removed")
            continue
        new_prop = new_props[name]
        if "properties" in old_prop and "properties" in new_prop:
            problems += _compare(old_prop, new_prop, where)
        elif old_prop != new_prop:
            problems.append(f"{where}: type or allowed values changed")
    for name in sorted(new_required - old_required):
        problems.append(f"{path}.{name}: became required (old events do not carry it)")
    for name in sorted(old_required - new_required):
        problems.append(f"{path}.{name}: no longer required (old readers expect it)")
    return problems


def contract_problems() -> list[str]:
    """Every breaking change against the schemas in the repository, and every version missing."""
    problems: list[str] = []
    current = {schema_file(cls): event_schema(cls) for cls in REGISTRY.values()}
    current[SCHEMA_DIR / DEAD_LETTER_FILE.name] = dead_letter_schema()
    for published_file in sorted(SCHEMA_DIR.glob("*.json")):
        if published_file not in current:
            problems.append(f"{published_file.name}: published, but the event version is gone")
            continue
        published = json.loads(published_file.read_text())
        problems += [f"{published_file.name}: {p}" for p in breaking_changes(published, current[published_file])]
    return problems
