"""Repairing the projections while payments flow: nothing posted during a repair is overwritten."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from billing_contracts.accounts import luhn_check_digit
from ledger import service

NUMBERS = [body + luhn_check_digit(body) for body in (f"1000000{i:04d}" for i in range(6))]
PAYMENTS = 1_500


async def test_repair_while_payments_flow_leaves_zero_drift(ledger: Any) -> None:
    for number in NUMBERS:
        await ledger.register(number)
    await ledger.pay(NUMBERS[0], 1_000, "before")
    await ledger.balance_becomes(NUMBERS[0], 1_000)
    async with ledger.runtime.db.transaction() as conn:  # something for the repairs to fix
        await conn.execute(text("UPDATE accounts SET main = main + 777 WHERE number = :n"), {"n": NUMBERS[1]})
    expected = {n: 0 for n in NUMBERS}
    expected[NUMBERS[0]] = 1_000

    async def flow() -> None:
        for i in range(PAYMENTS):
            number = NUMBERS[i % len(NUMBERS)]
            await ledger.pay(number, 100 + i, f"flow-{i}")
            expected[number] += 100 + i
            if i % 50 == 0:
                await asyncio.sleep(0.01)  # let the consumer post while the repairs run

    sending = asyncio.create_task(flow())
    repairs = []
    while not sending.done():
        repairs.append(await service.rebuild(ledger.ctx, repair=True))
    await sending
    for number in NUMBERS:
        await ledger.balance_becomes(number, expected[number])
    assert len(repairs) >= 3 and repairs[0].repaired and repairs[0].refused == []
    assert any(r.entries > repairs[0].entries for r in repairs), "no payment landed while the repairs ran"
    report = await service.verify(ledger.ctx)
    assert report.ok, report.findings
    assert report.mismatches == [] and report.transactions == 1 + PAYMENTS
