"""The ledger over the real broker and PostgreSQL: payments, charges, suspense, bad input."""

from __future__ import annotations

from typing import Any

from billing_events.testing.plugin import eventually

A, B = "100000000008", "100000000016"


async def test_payment_is_credited_and_announced(ledger: Any) -> None:
    await ledger.register(A)
    payment = await ledger.pay(A, 150_000, "T-1")
    [changed] = await ledger.reader.wait_for_type("BalanceChanged", account_number=A)
    assert changed.payload.main.minor == 150_000 and changed.payload.delta_main.minor == 150_000
    assert changed.payload.cause_event_id == payment.event_id
    assert changed.correlation_id == payment.correlation_id
    assert await ledger.journal_total() == 0


async def test_same_payment_is_credited_once_however_often_delivered(ledger: Any) -> None:
    await ledger.register(A)
    first = ledger.envelope(ledger.payment(A, 10_000, "R-1"), A)
    for _ in range(3):  # the very same event redelivered
        await ledger.producer.send(ledger.runtime.topics("billing.payments"), first)
    await ledger.pay(A, 10_000, "R-1")  # the same channel reference as a new event
    await ledger.pay(A, 1, "R-2")
    await ledger.balance_becomes(A, 10_001)
    changes = await ledger.reader.wait_for_type("BalanceChanged", 2, account_number=A)
    assert [c.payload.main.minor for c in changes] == [10_000, 10_001]


async def test_a_payment_parked_before_its_account_opened_is_not_credited_by_a_redelivery(ledger: Any) -> None:
    """Registrations and payments travel on different topics: a payment can arrive first."""
    await ledger.pay(A, 25_000, "EARLY-1")
    [unmatched] = await ledger.reader.wait_for_type("PaymentUnmatched", account_number=A)
    await ledger.register(A)
    await ledger.pay(A, 25_000, "EARLY-1")  # the channel retries once the account exists
    await ledger.pay(A, 30_000, "EARLY-1")  # and the same reference with another amount: a conflict
    await ledger.pay(A, 1, "LATER-1")  # the same partition: taken after the two above
    await ledger.balance_becomes(A, 1)
    async with ledger.runtime.db.connect() as conn:
        from ledger import store

        parked = await store.open_suspense(conn)
    assert [(i.transaction_id, i.amount) for i in parked] == [(unmatched.payload.transaction_id, 25_000)]
    await eventually(lambda: _reasons_started(ledger, ["conflicting_duplicate"]), what="the conflict dead-lettered")
    assert await ledger.journal_total() == 0


async def _reasons_started(ledger: Any, codes: list[str]) -> bool:
    return [r.split(":")[0] for r in await ledger.dead_letter_reasons()] == codes


async def test_charge_debits_even_into_a_negative_balance(ledger: Any) -> None:
    await ledger.register(A)
    await ledger.pay(A, 5_000, "P-1")
    await ledger.charge(A, 7_000, f"{A}:2026-12-10:subscription:int-100")
    await ledger.charge(A, 7_000, f"{A}:2026-12-10:subscription:int-100")  # a republished charge
    await ledger.balance_becomes(A, -2_000)
    # payments and charges come on different topics: their relative order is not guaranteed
    changes = await ledger.reader.wait_for_type("BalanceChanged", 2, account_number=A)
    charged = [c for c in changes if c.payload.cause_type == "ChargeApplied"]
    assert [c.payload.delta_main.minor for c in charged] == [-7_000]
    assert await ledger.journal_total() == 0


async def test_payment_for_an_unknown_account_waits_in_suspense_until_resolved(ledger: Any) -> None:
    from ledger import service
    from ledger.commands import ResolveSuspense
    from ledger.domain import LedgerError, OperatorNote

    await ledger.register(B)
    await ledger.pay("999999999999", 40_000, "LOST-1")
    [unmatched] = await ledger.reader.wait_for_type("PaymentUnmatched")
    assert unmatched.payload.reason == "unknown_account"
    events = await service.resolve_suspense(ledger.ctx, ResolveSuspense(
        parked_transaction_id=unmatched.payload.transaction_id, target_account=B,
        operator=OperatorNote("operator.ivanova", "payer typed the number wrong")))
    assert {e.event_type for e in events} == {"BalanceChanged", "SuspenseResolved"}
    assert await ledger.main_balance(B) == 40_000
    await ledger.reader.wait_for_type("SuspenseResolved", account_number=B)
    again = None
    try:
        await service.resolve_suspense(ledger.ctx, ResolveSuspense(
            parked_transaction_id=unmatched.payload.transaction_id, target_account=B, operator=OperatorNote("x", "twice")))
    except LedgerError as exc:
        again = exc.code
    assert again == "suspense_not_open"
    assert await ledger.journal_total() == 0


async def test_bad_input_is_dead_lettered_and_accepted_postings_stay(ledger: Any) -> None:
    await ledger.register(A)
    await ledger.pay(A, 1_000, "OK-1")
    await ledger.balance_becomes(A, 1_000)
    raw = ledger.envelope(ledger.payment(A, 500, "BAD"), A).to_bytes()
    topic = ledger.runtime.topics("billing.payments")
    await ledger.producer.send_raw(topic, raw.replace(b'"minor":500', b'"minor":-500'), key=A.encode())
    await ledger.producer.send_raw(topic, raw.replace(b'"minor":500', b'"minor":0'), key=A.encode())
    await ledger.producer.send_raw(topic, raw.replace(b'"minor":500', b'"minor":5.005'), key=A.encode())
    await ledger.producer.send_raw(topic, raw.replace(b'"RUB"', b'"XYZ"'), key=A.encode())
    await ledger.producer.send_raw(topic, b'{"event_type": "PaymentReceived"', key=A.encode())
    await ledger.charge("100000000024", 100, "charge-for-nobody")  # unknown account
    await ledger.pay(A, 2_000, "OK-2")
    await ledger.balance_becomes(A, 3_000)
    reasons = await eventually(lambda: _six(ledger), what="six dead letters")
    assert sum("greater than zero" in r for r in reasons) == 2
    assert any("valid integer" in r for r in reasons)
    assert any("unknown currency 'XYZ'" in r for r in reasons)
    assert any("not JSON" in r for r in reasons)
    assert any(r.startswith("unknown_account") for r in reasons)


async def _six(ledger: Any) -> list[str] | None:
    reasons = await ledger.dead_letter_reasons()
    return reasons if len(reasons) >= 6 else None


async def test_the_command_topic_holds_a_subscribers_request_to_their_own_account(ledger: Any) -> None:
    """What the HTTP door enforces holds for a request written straight onto the command topic:
    a cabinet requester moves money only out of its own account and stays under the self-service
    credit ceiling; a cabinet requester without a valid account is refused. Each refusal is
    dead-lettered with its code and moves nothing."""
    from uuid import uuid4

    from billing_contracts.catalog.ledger import PaymentType, PaymentTypeChangeRequested, TransferRequested
    from billing_contracts.money import Money
    from ledger import service

    await ledger.register(A)
    await ledger.register(B)
    await ledger.pay(A, 10_000, "CMD-1")
    await ledger.balance_becomes(A, 10_000)  # the payments topic does not wait for the command topic
    ceiling = ledger.ctx.self_service_credit_limit

    def transfer(requested_by: str, minor: int) -> TransferRequested:
        return TransferRequested(request_id=uuid4(), from_account=A, to_account=B, amount=Money(minor=minor),
                                 requested_by=requested_by)

    def credit(requested_by: str, minor: int) -> PaymentTypeChangeRequested:
        return PaymentTypeChangeRequested(request_id=uuid4(), account_number=A, payment_type=PaymentType.CREDIT,
                                          credit_limit=Money(minor=minor), requested_by=requested_by)

    for refused in (transfer(f"cabinet:{B}", 5_000), credit("cabinet:", 10**14), credit(f"cabinet:{A}", 10**14),
                    credit(f"cabinet:{A}", ceiling + 1), transfer("cabinet:100000000009", 1), transfer("cabinet", 1)):
        await ledger.send(refused, A)
    await ledger.send(transfer(f"cabinet:{A}", 1_000), A)  # the same partition: taken after those above
    await ledger.send(credit("operator:ivanova", ceiling * 10), A)
    await ledger.balance_becomes(B, 1_000)
    await eventually(lambda: _reasons_started(ledger, [
        "not_own_account", "invalid_requester", "invalid_credit_limit", "invalid_credit_limit",
        "invalid_requester", "invalid_requester"]), what="the refusals dead-lettered")
    await eventually(lambda: _credit_limit_is(ledger, ceiling * 10), what="the operator's limit set")
    assert await ledger.main_balance(A) == 9_000
    state = await service.balance(ledger.ctx, A)
    assert (state.payment_type, state.credit_limit) == (PaymentType.CREDIT, ceiling * 10)


async def test_a_transfer_on_the_command_topic_without_the_money_is_refused_for_that_whatever_the_target(
    ledger: Any,
) -> None:
    """Too little money is said before the target is looked at: a subscriber cannot probe which
    account numbers exist by transferring more than they have."""
    from uuid import uuid4

    from billing_contracts.catalog.ledger import TransferRequested
    from billing_contracts.money import Money

    await ledger.register(A)
    await ledger.register(B)
    await ledger.pay(A, 1_000, "PROBE-1")
    await ledger.balance_becomes(A, 1_000)
    requests = {target: TransferRequested(request_id=uuid4(), from_account=A, to_account=target,
                                          amount=Money(minor=5_000), requested_by=f"cabinet:{A}")
                for target in (B, "100000000099")}
    for request in requests.values():
        await ledger.send(request, A)
    for target, request in requests.items():
        [rejected] = await ledger.reader.wait_for_type("TransferRejected", request_id=request.request_id)
        assert rejected.payload.reason == "insufficient_funds", target


async def _credit_limit_is(ledger: Any, minor: int) -> bool:
    from ledger import service

    return (await service.balance(ledger.ctx, A)).credit_limit == minor


async def test_a_payment_delivered_again_after_its_inbox_row_was_pruned_is_kept_once(ledger: Any) -> None:
    """The ledger keeps every payment it takes (its archive refills an empty broker). The very
    same event again, after the inbox forgot it, is a repeat of its business key: nothing moves,
    and it is not kept a second time, or every refill would publish it twice."""
    from sqlalchemy import delete, func, select

    from billing_events.schema import inbox, outbox

    await ledger.register(A)
    first = await ledger.pay(A, 10_000, "PRUNED-1")
    await ledger.balance_becomes(A, 10_000)
    async with ledger.runtime.db.transaction() as conn:
        await conn.execute(delete(inbox))  # the retention's prune, taken to its end
    await ledger.producer.send(ledger.runtime.topics("billing.payments"), first)
    await ledger.pay(A, 1, "PRUNED-2")  # the same partition: taken after the redelivery
    await ledger.balance_becomes(A, 10_001)
    async with ledger.runtime.db.connect() as conn:
        kept = await conn.scalar(select(func.count()).select_from(outbox).where(
            outbox.c.topic == ledger.runtime.topics("billing.payments"), outbox.c.value == first.to_bytes()))
    assert kept == 1


async def test_a_payment_repeated_under_a_new_id_is_never_kept_however_often_it_comes_back(ledger: Any) -> None:
    """A channel's retry of a payment under a new event id is a repeat of its business key: nothing
    moves, and it is not kept beside the ledger's events. Kept the first time, it came back in the
    next refill after the inbox forgot it and was kept again (the simulation, seed 1001): the same
    event twice in the archive, published twice by every refill after."""
    from sqlalchemy import delete, func, select

    from billing_events.schema import inbox, outbox
    from ledger import store

    payments = ledger.runtime.topics("billing.payments")
    await ledger.register(A)
    first = await ledger.pay(A, 10_000, "AGAIN-1")
    retry = await ledger.pay(A, 10_000, "AGAIN-1")  # the same payment, a new event id
    await ledger.pay(A, 1, "AGAIN-2")  # the same partition: taken after the retry
    await ledger.balance_becomes(A, 10_001)
    async with ledger.runtime.db.transaction() as conn:
        await conn.execute(delete(inbox))  # the retention's prune, taken to its end
    await ledger.producer.send(payments, retry)  # a refill brings it back
    await ledger.pay(A, 2, "AGAIN-3")
    await ledger.balance_becomes(A, 10_003)
    async with ledger.runtime.db.connect() as conn:
        kept = [await conn.scalar(select(func.count()).select_from(outbox).where(
            outbox.c.topic == payments, outbox.c.value == envelope.to_bytes())) for envelope in (first, retry)]
        posted = await conn.scalar(select(func.count()).select_from(store.journal).where(
            store.journal.c.business_key == "terminal:AGAIN-1"))
    assert kept == [1, 0]
    assert posted == 1
    assert await ledger.journal_total() == 0
