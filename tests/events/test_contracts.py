"""The published contract: schemas in the repository, breaking changes refused, docs fresh."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

from pydantic import Field

from billing_contracts import contracts
from billing_events import docs
from billing_contracts.catalog.ledger import BalanceChanged
from billing_events.clock import ManualClock
from billing_contracts.envelope import REGISTRY, Envelope, Event, decode, envelope_model
from billing_contracts.money import Money


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


def _balance_change(cause_type: str, delta_main: int, delta_bonus: int = 0) -> dict:
    """A BalanceChanged as published before ``credited_payment`` existed."""
    return {"account_number": "100000000008", "transaction_id": str(uuid4()),
            "main": {"minor": 500_00, "currency": "RUB"}, "bonus": {"minor": delta_bonus, "currency": "RUB"},
            "delta_main": {"minor": delta_main, "currency": "RUB"},
            "delta_bonus": {"minor": delta_bonus, "currency": "RUB"}, "cause_event_id": str(uuid4()),
            "cause_type": cause_type, "payment_type": "prepaid", "credit_limit": {"minor": 0, "currency": "RUB"}}


def test_an_older_balance_change_is_a_credited_payment_when_a_payment_raised_the_main_balance() -> None:
    read = {(cause, main, bonus): BalanceChanged.model_validate(_balance_change(cause, main, bonus)).credited_payment
            for cause, main, bonus in [("PaymentReceived", 100_00, 0), ("PaymentReceived", 0, 20_00),
                                       ("TransferRequested", 100_00, 0), ("ChargeApplied", -100_00, 0)]}
    assert read == {("PaymentReceived", 100_00, 0): True, ("PaymentReceived", 0, 20_00): False,
                    ("TransferRequested", 100_00, 0): False, ("ChargeApplied", -100_00, 0): False}
    envelope = Envelope.new(BalanceChanged.model_validate(_balance_change("PaymentReceived", 100_00)),
                            account="100000000008", producer="ledger", clock=ManualClock(datetime(2026, 3, 10, tzinfo=UTC)))
    sent = json.loads(envelope.to_bytes())
    del sent["payload"]["credited_payment"]
    assert decode(json.dumps(sent)).payload.credited_payment is True


def test_a_balance_change_that_says_whether_it_credited_a_payment_is_taken_at_its_word() -> None:
    stated = {**_balance_change("PaymentReceived", 100_00), "credited_payment": False}
    assert BalanceChanged.model_validate(stated).credited_payment is False
    assert BalanceChanged.model_validate({**_balance_change("SuspenseResolved", 100_00),
                                          "credited_payment": True}).credited_payment is True
