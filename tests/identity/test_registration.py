"""Registration over the real broker and database: what is published, what is refused, and the
account numbers handed out (check digit, never twice, under concurrency)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from billing_contracts.catalog.identity import PasswordPurpose
from billing_events.runtime import ServiceRuntime
from billing_events.schema import outbox
from billing_events.sealing import SealingError, generate_keypair, unseal
from billing_events.testing.kafka_probe import TopicReader
from identity import commands, store
from identity.domain import (
    InvalidCommand,
    PassportAlreadyRegistered,
    is_valid_account_number,
    parse_contract_number,
)


async def count(runtime: ServiceRuntime, table: Any) -> int:
    async with runtime.db.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(table)) or 0


async def test_a_registration_opens_an_account_and_sends_the_initial_password(flow: Any) -> None:
    registered = await flow.register(email="Ivan.Petrov@Mail.ru", language="ru")

    assert is_valid_account_number(registered.account_number)
    assert parse_contract_number(registered.contract_number) == registered.contract_number
    assert registered.contract_number.startswith("D-2026-")
    envelopes = await flow.reader.wait_for(lambda found: len(found) >= 2, what="two events")
    subscriber, issued = envelopes[0], envelopes[1]
    assert (subscriber.event_type, issued.event_type) == ("SubscriberRegistered", "PasswordIssued")
    assert subscriber.account == issued.account == registered.account_number
    assert issued.causation_id == subscriber.event_id
    assert issued.correlation_id == subscriber.correlation_id
    body = subscriber.payload
    assert body.contract_number == registered.contract_number
    assert (body.region, body.legal_status.value, body.language) == ("moscow", "person", "ru")
    assert body.masked_phone == "+7 *** ***-67-89"
    assert body.masked_email == "I***@mail.ru"
    # Only the notifier opens the contact details.
    assert unseal(flow.private_key, body.sealed_contact) == {
        "phone": "+79123456789", "email": "Ivan.Petrov@mail.ru"
    }
    # No passport data in the event, not even field names.
    raw = flow.reader.records[0].value.decode()
    for forbidden in ("passport", "731942", "1990-05-17", "Иванов", "date_of_birth"):
        assert forbidden not in raw
    # The initial password: sealed, masked destination, and it logs in.
    assert issued.payload.purpose is PasswordPurpose.INITIAL
    assert (issued.payload.channel, issued.payload.masked_destination) == ("sms", "+7 *** ***-67-89")
    secret = unseal(flow.private_key, issued.payload.sealed_secret)
    assert secret["destination"] == "+79123456789"
    with pytest.raises(SealingError):
        unseal(generate_keypair()[1], issued.payload.sealed_secret)
    assert (await flow.login(registered.account_number, secret["secret"])).account_number == registered.account_number
    assert (await flow.login(registered.contract_number, secret["secret"])).account_number == registered.account_number
    assert (await flow.login("8 912 345 67 89", secret["secret"])).account_number == registered.account_number


INVALID_FIELDS = [
    ({"contract_accepted": False}, "contract_accepted", "contract_not_accepted"),
    ({"legal_status": "alien"}, "legal_status", "enum"),
    ({"surname": "  "}, "surname", "empty"),
    ({"first_name": "Iv4n"}, "first_name", "name_characters"),
    ({"patronymic": "S3rgeevich"}, "patronymic", "name_characters"),
    ({"passport_series": "45O8"}, "passport_series", "passport_series_shape"),
    ({"passport_number": "73194"}, "passport_number", "passport_number_shape"),
    ({"date_of_birth": "2009-01-01", "date_of_issue": "2023-06-01"}, "date_of_birth", "under_age"),
    ({"date_of_birth": "17.05.1990"}, "date_of_birth", "date_from_datetime_parsing"),
    ({"date_of_issue": "1989-01-01"}, "date_of_issue", "issued_before_birth"),
    ({"date_of_issue": "2026-04-01"}, "date_of_issue", "issued_in_future"),
    ({"issuing_authority": ""}, "issuing_authority", "empty"),
    ({"mobile_phone": "12345"}, "mobile_phone", "not_a_phone"),
    ({"mobile_phone": "8 800 250 0890"}, "mobile_phone", "not_mobile"),
    ({"email": "ivan@@mail"}, "email", "not_an_email"),
    ({"region": "atlantis"}, "region", "unknown_region"),
    ({"language": "fr"}, "language", "literal_error"),
]


async def test_each_invalid_field_is_named_and_nothing_is_stored_or_published(flow: Any) -> None:
    for changes, field, rule in INVALID_FIELDS:
        with pytest.raises(InvalidCommand) as caught:
            await flow.register(**changes)
        assert {error.field: error.rule for error in caught.value.errors} == {field: rule}, changes
        for value in changes.values():
            if isinstance(value, str) and len(value) > 3:
                assert value not in str(caught.value)  # messages never quote the input
    assert await count(flow.runtime, store.subscribers) == 0
    assert await count(flow.runtime, outbox) == 0
    # A valid one afterwards: its two events are the only ones on the topic.
    registered = await flow.register()
    await flow.reader.wait_for_type("PasswordIssued", account_number=registered.account_number)
    assert [e.event_type for e in flow.reader.envelopes] == ["SubscriberRegistered", "PasswordIssued"]


async def test_a_second_registration_of_the_same_passport_is_refused(flow: Any) -> None:
    first = await flow.register()

    with pytest.raises(PassportAlreadyRegistered) as caught:
        # Written differently, the same passport: another phone, spaces in the series.
        await flow.register(passport_series="45 08", mobile_phone="+7 912 000-11-22", surname="Петров")
    assert caught.value.field == "passport_number"
    assert "731942" not in str(caught.value)
    assert await count(flow.runtime, store.subscribers) == 1
    assert await count(flow.runtime, outbox) == 2
    await flow.reader.wait_for_type("PasswordIssued", account_number=first.account_number)
    assert len(flow.reader.envelopes) == 2


async def test_thirty_concurrent_registrations_get_distinct_valid_numbers(
    start_identity: Any, make_flow: Any, bootstrap_servers: str
) -> None:
    # The slow hashes wait their turn in a queue (a fuller one is answered 429): room for all 30.
    runtime, ctx = await start_identity(hash_queue=30)
    async with runtime, TopicReader(bootstrap_servers, runtime.topics("billing.identity")) as reader:
        flow = make_flow(runtime, ctx, reader)
        results = await asyncio.gather(*(flow.register(unique=True) for _ in range(30)))

        accounts = [r.account_number for r in results]
        contracts = [r.contract_number for r in results]
        assert len(set(accounts)) == 30 and len(set(contracts)) == 30
        assert all(is_valid_account_number(account) for account in accounts)
        await reader.wait_for_type("SubscriberRegistered", 30)
        assert {e.account for e in reader.envelopes if e.event_type == "SubscriberRegistered"} == set(accounts)


async def test_concurrent_registrations_of_one_passport_let_exactly_one_through(flow: Any) -> None:
    outcomes = await asyncio.gather(
        *(flow.register(mobile_phone=f"+7 912 555-00-{i:02d}") for i in range(8)), return_exceptions=True
    )

    assert sum(isinstance(o, commands.Registered) for o in outcomes) == 1
    assert sum(isinstance(o, PassportAlreadyRegistered) for o in outcomes) == 7
    assert await count(flow.runtime, store.subscribers) == 1


async def test_registration_works_the_same_on_sqlite(
    start_identity: Any, make_flow: Any, bootstrap_servers: str
) -> None:
    runtime, ctx = await start_identity(database="sqlite")
    async with runtime:
        assert runtime.db.dialect == "sqlite"
        async with TopicReader(bootstrap_servers, runtime.topics("billing.identity")) as reader:
            flow = make_flow(runtime, ctx, reader)
            results = await asyncio.gather(*(flow.register(unique=True) for _ in range(10)))
            accounts = {r.account_number for r in results}
            assert len(accounts) == 10 and all(is_valid_account_number(a) for a in accounts)
            duplicate = await asyncio.gather(
                *(flow.register(mobile_phone=f"+7 912 555-01-{i:02d}") for i in range(3)), return_exceptions=True
            )
            assert sum(isinstance(o, PassportAlreadyRegistered) for o in duplicate) == 2
            one = results[0].account_number
            password = await flow.secret(one, PasswordPurpose.INITIAL)
            assert (await flow.login(one, password)).account_number == one
