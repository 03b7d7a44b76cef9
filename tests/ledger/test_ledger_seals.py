"""The ledger seals its chain head on its own topic: periodically, every N transactions, and when
it stops, so the seals on the broker always cover the newest history."""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack
from typing import Any

from billing_contracts import topics
from billing_contracts.catalog.identity import LegalStatus, SubscriberRegistered
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.envelope import Envelope
from billing_contracts.money import Money
from billing_events.testing.clock import RunningClock
from billing_events.testing.kafka_probe import RawProducer, TopicReader
from billing_events.testing.plugin import eventually
from ledger import store
from ledger.app import build_runtime
from ledger.settings import LedgerSettings

A = "100000000008"


async def test_the_chain_head_is_sealed_as_it_grows_and_at_stop(make_settings: Any, bootstrap_servers: str) -> None:
    settings = await make_settings(LedgerSettings, bonus_campaigns_file=None, seal_every_seconds=3600,
                                   seal_every_transactions=3)
    clock = RunningClock()
    runtime = build_runtime(settings, clock)

    async def head() -> Any:
        async with runtime.db.connect() as conn:
            return await store.head(conn)

    async with RawProducer(bootstrap_servers) as producer, AsyncExitStack() as stack:
        await runtime.start()  # creates the topics
        try:
            reader = await stack.enter_async_context(
                TopicReader(bootstrap_servers, runtime.topics(topics.LEDGER_SEALS)))
            registered = SubscriberRegistered(account_number=A, contract_number="D-1", region="moscow",
                                              legal_status=LegalStatus.PERSON, masked_phone="+7", sealed_contact="x")
            await producer.send(runtime.topics(topics.IDENTITY),
                                Envelope.new(registered, account=A, producer="test", clock=clock))
            for i in range(4):
                payment = PaymentReceived(account_number=A, channel="bank", reference=f"S-{i}",
                                          amount=Money(minor=100), received_at=clock.now())
                await producer.send(runtime.topics(topics.PAYMENTS),
                                    Envelope.new(payment, account=A, producer="test", clock=clock))
                await eventually(lambda n=i + 1: _length_is(head, n), what=f"{i + 1} transactions")
                if i == 2:  # three transactions since the last seal (none): sealed without waiting an hour
                    [grown] = await reader.wait_for_type("JournalSealed")
                    assert (grown.payload.length, grown.account) == (3, "journal")
        finally:
            await runtime.stop()
        [*_, last] = await reader.wait_for_type("JournalSealed", 2)  # the stop seals the newest head
        final = await head()
    assert (last.payload.length, last.payload.hash) == (4, final.hash.hex()) == (final.length, final.hash.hex())


async def _length_is(head: Any, length: int) -> bool:
    current = await head()
    return current is not None and current.length == length



async def test_the_first_seal_waits_for_the_whole_count_of_transactions(monkeypatch: Any) -> None:
    """Two transactions are not three: the count starts from an empty journal (it started from -1,
    so a tick that fell between the second and the third transaction sealed the second)."""
    from ledger import integrity

    growth, seen, sealed = iter([1, 2, 3]), [0], []  # the length at each tick (one a second), then unchanged

    async def length(_: Any) -> int:
        seen.append(next(growth, seen[-1]))
        return seen[-1]

    async def seal_length(_: Any) -> int:
        sealed.append(seen[-1])
        return seen[-1]

    monkeypatch.setattr(integrity, "_length", length)
    monkeypatch.setattr(integrity, "_seal_length", seal_length)
    sealing = asyncio.create_task(integrity.keep_sealing(None, every_seconds=3600, every_transactions=3))  # type: ignore[arg-type]
    await eventually(lambda: sealed, what="a seal")
    sealing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sealing
    assert sealed == [3]
