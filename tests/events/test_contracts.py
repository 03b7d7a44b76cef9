"""The published contract: schemas in the repository, breaking changes refused, docs fresh."""

from __future__ import annotations

from pydantic import Field

from billing_events import contracts, docs
from billing_events.envelope import REGISTRY, Event, envelope_model
from billing_events.money import Money


def test_every_event_version_is_published_and_docs_are_fresh() -> None:
    missing = [cls.event_type for cls in REGISTRY.values() if not contracts.schema_file(cls).exists()]
    assert missing == [], f"unpublished event versions (run `make schemas`): {missing}"
    assert docs.stale_files() == [], "generated docs are stale: run `make schemas`"


def test_no_published_event_version_was_broken() -> None:
    assert contracts.contract_problems() == []


class _V1(Event):
    """Not registered (no event_type of its own): a stand-in for a published version."""

    account_number: str
    amount: Money
    note: str | None = None


def _schema(cls: type[Event]) -> dict:
    return envelope_model(cls).model_json_schema()


def _changed(**fields: object) -> type[Event]:
    """A variant of _V1 under a throwaway name (the registry keeps only real events)."""
    namespace = {"__annotations__": {}, "__module__": __name__}
    for name, spec in fields.items():
        annotation, default = spec if isinstance(spec, tuple) else (spec, ...)
        namespace["__annotations__"][name] = annotation
        if default is not ...:
            namespace[name] = default
    return type("ContractProbeVariant", (Event,), namespace)


def test_adding_an_optional_field_is_compatible() -> None:
    newer = _changed(account_number=str, amount=Money, note=(str | None, None), channel=(str | None, Field(default=None, description="new")))
    assert contracts.breaking_changes(_schema(_V1), _schema(newer)) == []


def test_removing_retyping_or_requiring_a_field_is_breaking() -> None:
    removed = _changed(account_number=str, note=(str | None, None))
    retyped = _changed(account_number=int, amount=Money, note=(str | None, None))
    required = _changed(account_number=str, amount=Money, note=str)
    assert any("amount: removed" in p for p in contracts.breaking_changes(_schema(_V1), _schema(removed)))
    assert any("account_number: type" in p for p in contracts.breaking_changes(_schema(_V1), _schema(retyped)))
    assert any("note: became required" in p for p in contracts.breaking_changes(_schema(_V1), _schema(required)))


def test_a_change_inside_a_nested_model_is_breaking() -> None:
    old = _schema(_V1)
    new = _schema(_V1)
    new["$defs"]["Money"]["properties"]["minor"] = {"type": "string"}
    assert any("amount.minor" in p for p in contracts.breaking_changes(old, new))


def test_asyncapi_document_describes_every_topic_with_payload_schemas() -> None:
    import json

    document = json.loads(docs.asyncapi_document())
    assert set(document["channels"]) >= {"billing.payments", "billing.ledger", "billing.identity", "billing.tariff"}
    assert "PaymentReceived" in json.dumps(document["components"])
