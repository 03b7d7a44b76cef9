"""A second event version: old messages read as the newest through the upcasters, producers
publishing either version, and the compatibility check guarding the published schemas."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from billing_contracts import contracts
from billing_events.archive import is_current_version
from billing_contracts.catalog.tariff import ChargeApplied, ChargeAppliedV1, ChargedItem, FeeKind
from billing_events.clock import ManualClock
from billing_contracts.envelope import Envelope, InvalidEvent, decode, is_current
from billing_events.inbox import fingerprint
from billing_contracts.money import PositiveMoney
from ledger.domain.idempotency import business_key

RECORDED = Path(__file__).parent / "recorded"
CLOCK = ManualClock(datetime(2026, 11, 26, tzinfo=UTC))


def recorded(name: str) -> bytes:
    return (RECORDED / f"ChargeApplied.v1.{name}.json").read_bytes()


@pytest.mark.parametrize(("name", "item", "code"), [
    ("subscription", ChargedItem.PLAN, "internet-100"),
    ("option", ChargedItem.OPTION, "antivirus"),
    ("voluntary_block", ChargedItem.REGION, "moscow"),
])
def test_a_recorded_v1_message_is_read_as_v2(name: str, item: ChargedItem, code: str) -> None:
    raw = recorded(name)
    sent = json.loads(raw)
    envelope = decode(raw)
    assert type(envelope.payload) is ChargeApplied
    assert (envelope.schema_version, envelope.as_sent.version) == (2, 1)
    assert str(envelope.event_id) == sent["event_id"]
    assert (envelope.payload.charged_for.item, envelope.payload.charged_for.code) == (item, code)
    v1 = ChargeAppliedV1.model_validate(sent["payload"])
    assert envelope.payload.model_dump(exclude={"charged_for"}) == v1.model_dump()
    assert is_current(envelope)


def test_an_upcast_message_keeps_the_fingerprint_of_what_was_sent() -> None:
    """A v1 delivery taken before the upgrade and delivered again after it is the same event,
    not a conflicting one."""
    raw = recorded("option")
    sent = json.loads(raw)
    as_v1 = Envelope[ChargeAppliedV1].model_validate(sent)
    assert fingerprint(decode(raw)) == fingerprint(as_v1)


def test_a_v1_charge_that_does_not_name_its_item_is_refused_as_an_invalid_payload() -> None:
    sent = json.loads(recorded("subscription"))
    sent["payload"]["charge_id"] = "C-17"
    with pytest.raises(InvalidEvent) as refused:
        decode(json.dumps(sent))
    assert refused.value.code == "invalid_payload"
    assert "charge_id does not name" in str(refused.value)


def _charge() -> ChargeApplied:
    return ChargeApplied.of("100000000008", date(2026, 11, 25), FeeKind.SUBSCRIPTION, "internet-100",
                            PositiveMoney(minor=1667), "Internet 100: day 25 of 30, monthly 500.00 RUB")


def test_v2_goes_out_with_v1_beside_it_as_a_copy_and_v1_can_go_out_alone() -> None:
    envelope = Envelope.new(_charge(), account="100000000008", producer="tariff", clock=CLOCK)
    [copy] = envelope.previous_versions()
    assert (copy.schema_version, copy.copy_of, copy.causation_id) == (1, envelope.event_id, envelope.event_id)
    assert copy.event_id != envelope.event_id
    assert not is_current(decode(copy.to_bytes())) and is_current(decode(envelope.to_bytes()))
    assert not is_current_version(copy.kafka_headers()) and is_current_version(envelope.kafka_headers())

    alone = envelope.in_version(1)
    assert (alone.event_id, alone.schema_version, alone.copy_of) == (envelope.event_id, 1, None)
    assert alone.previous_versions() == []
    assert is_current_version(alone.kafka_headers())
    assert decode(alone.to_bytes()).payload == envelope.payload


def test_the_v1_copy_made_without_validating_again_is_the_one_validation_makes() -> None:
    """The copy is built from the validated v2 as it is (a day close makes one per charge): the
    same message, to the byte and the type, as validating its fields would make."""
    envelope = Envelope.new(_charge(), account="100000000008", producer="tariff", clock=CLOCK)
    [copy] = envelope.previous_versions()
    validated = Envelope[ChargeAppliedV1].model_validate(copy.model_dump())
    assert type(copy) is type(validated) and type(copy.payload) is ChargeAppliedV1
    assert copy == validated and copy.to_bytes() == validated.to_bytes()
    assert copy.kafka_headers() == validated.kafka_headers()
    assert copy.payload == ChargeAppliedV1.model_validate(envelope.payload.model_dump(exclude={"charged_for"}))


def test_copy_of_on_the_newest_version_is_refused_not_skipped() -> None:
    """A copy is an older version beside the newest: a reader of the newest skips it. On the newest
    version itself (or a type with one version) it copies nothing, and skipping it lost the fact."""
    envelope = Envelope.new(_charge(), account="100000000008", producer="tariff", clock=CLOCK)
    forged = json.loads(envelope.to_bytes()) | {"copy_of": str(envelope.event_id)}
    with pytest.raises(InvalidEvent) as refused:
        decode(json.dumps(forged))
    assert refused.value.code == "invalid_copy"
    assert "ChargeApplied v2, its newest version" in str(refused.value)
    [copy] = envelope.previous_versions()
    assert decode(copy.to_bytes()).copy_of == envelope.event_id  # an older version stays a copy


def test_the_ledger_keys_and_fingerprints_a_charge_alike_in_both_versions() -> None:
    """The ledger's idempotency record compares fingerprints: v1 and v2 of one charge must agree,
    or the second version to arrive would be refused as a conflicting duplicate."""
    envelope = Envelope.new(_charge(), account="100000000008", producer="tariff", clock=CLOCK)
    [copy] = envelope.previous_versions()
    assert business_key(decode(copy.to_bytes()).payload) == business_key(envelope.payload)


def test_the_check_refuses_an_incompatible_edit_of_a_published_schema_and_accepts_an_additive_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    published = tmp_path / "schemas"
    shutil.copytree(contracts.SCHEMA_DIR, published)
    monkeypatch.setattr(contracts, "SCHEMA_DIR", published)
    target = published / "ChargeApplied.v2.json"
    original = json.loads(target.read_text())
    assert contracts.contract_problems() == []

    # The code gained an optional field the published file lacks: additive, accepted.
    additive = json.loads(target.read_text())
    del additive["$defs"]["ChargedFor"]["properties"]["code"]["examples"]
    additive["$defs"]["ChargeApplied"]["properties"].pop("description")
    target.write_text(contracts.render(additive))
    assert contracts.contract_problems() == []

    # The published file says a field is an integer the code now sends as text: refused.
    retyped = json.loads(json.dumps(original))
    retyped["$defs"]["ChargedFor"]["properties"]["code"] = {"type": "integer"}
    target.write_text(contracts.render(retyped))
    assert contracts.contract_problems() == [
        "ChargeApplied.v2.json: (event).payload.charged_for.code: type or allowed values changed"]

    # A published version whose event was deleted from the code: refused.
    target.write_text(contracts.render(original))
    (published / "ChargeApplied.v0.json").write_text(contracts.render(original))
    assert contracts.contract_problems() == ["ChargeApplied.v0.json: published, but the event version is gone"]


def test_a_dead_letter_message_matches_its_published_schema() -> None:
    import jsonschema

    from billing_events import deadletter

    letter = deadletter.DeadLetter(topic="billing.tariff", partition=3, offset=17, key=b"100000000008",
                                   value=recorded("subscription"), reason="no account 100000000008",
                                   code="unknown_account")
    row = {"consumer": "ledger", "code": letter.code, "reason": letter.reason, "key": "100000000008",
           "created_at": CLOCK.now()}
    message = json.loads(deadletter._dead_letter_message(row, letter))
    schema = json.loads((contracts.SCHEMA_DIR / "DeadLetter.v1.json").read_text())
    jsonschema.validate(message, schema)
    assert (message["source"], message["original_size"]) == (
        {"topic": "billing.tariff", "partition": 3, "offset": 17}, len(recorded("subscription")))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**message, "source": {"topic": "billing.tariff"}}, schema)
