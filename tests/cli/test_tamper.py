"""Tampering with a PostgreSQL ledger behind its back, as an auditor tries it: each kind of damage
gives its exact findings from `billing verify --json` (exit 1, never a crash), the repair
refuses to copy a damaged journal into the balances (a consistent rewrite of the chain found by
its seal included), and one repair makes every projection what the journal says. The operator
accounts hold two currencies: a dollar payment for a rouble account is parked in suspense."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from billing_contracts import topics
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.catalog.tariff import ChargeApplied, ChargedFor, ChargedItem, FeeKind
from billing_contracts.envelope import Envelope
from billing_contracts.money import Money
from billing_events.testing.intruder import as_intruder
from billing_events.testing.kafka_probe import TopicReader
from ledger import integrity, service, store

A, B = "100000000008", "100000000016"  # the accounts the `cli` fixture opens
CASH, SUSPENSE = "op:cash:terminal", "op:suspense"
PAID_A, PAID_B = (CASH, f"sub:{A}:main"), (CASH, f"sub:{B}:main")  # a payment's accounts, as posted

PLAN = ChargedFor(item=ChargedItem.PLAN, code="internet-100")


async def _journal(cli: Any) -> list[str]:
    """After a dollar payment parked in suspense (A is kept in roubles), four transactions: A
    pays 100.00, B pays 200.00, A pays 50.00, B is charged 30.00. Their ids, in chain order."""
    await cli.opened()
    clock = cli.clock
    now = clock.now()
    payloads = [
        (PaymentReceived(account_number=A, channel="terminal", reference="T-0",
                         amount=Money(minor=4_200, currency="USD"), received_at=now), A),
        (PaymentReceived(account_number=A, channel="terminal", reference="T-1", amount=Money(minor=10_000),
                         received_at=now), A),
        (PaymentReceived(account_number=B, channel="terminal", reference="T-2", amount=Money(minor=20_000),
                         received_at=now), B),
        (PaymentReceived(account_number=A, channel="terminal", reference="T-3", amount=Money(minor=5_000),
                         received_at=now), A),
        (ChargeApplied(charge_id="C-4", account_number=B, amount=Money(minor=3_000), charged_for=PLAN, fee_kind=FeeKind.SUBSCRIPTION,
                       billing_day=now.date()), B),
    ]
    for payload, account in payloads:  # one database transaction each: five links of the chain
        outcome = await cli.ledger.unit_of_work(lambda uow: service.post(cli.ledger, uow, [
            Envelope.new(payload, account=account, producer="test", clock=clock)]))
        assert outcome.rejected == []
    async with cli.runtime.db.connect() as conn:
        ids = (await conn.execute(text(
            "SELECT txn_id FROM journal WHERE account_settings IS NULL ORDER BY seq"))).scalars().all()
    assert len(ids) == 5
    return [str(i) for i in ids[1:]]


async def _sql(cli: Any, *statements: str, **params: Any) -> None:
    async with as_intruder(cli.runtime.db) as conn:
        for statement in statements:
            await conn.execute(text(statement), params)


async def _verify(cli: Any, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = await cli("verify", "--json", *args)
    assert out, err  # the complete report, whatever was found
    return code, json.loads(out)


OPENINGS = 2
"""The chain starts with the two accounts' openings (account facts)."""
PRELUDE = OPENINGS + 1
"""Then the dollar payment parked in suspense; the four transactions the tests tamper with come after."""


def _found(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Each finding, its chain position counted from the first money transaction."""
    return [(f["kind"], None if f["position"] is None else f["position"] - PRELUDE, f["transaction_id"],
             tuple(f["accounts"])) for f in report["findings"]]


async def test_a_clean_journal_verifies_and_names_its_chain_head(cli: Any) -> None:
    await _journal(cli)
    code, report = await _verify(cli)
    assert code == 0 and report["ok"] is True and report["findings"] == []
    assert report["transactions"] == 5 and report["entries"] == 10 and report["chain_head"]["length"] == PRELUDE + 4
    assert report["account_facts"] == OPENINGS
    code, _, err = await cli("verify", env={"BILLING_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert code == 5 and "not reachable to read the seals" in err  # a configured broker must answer
    code, report = await _verify(cli, "--no-seals-from-broker")
    assert code == 0 and report["seals"] == {"from_broker": None, "given": 0, "checked": 0}


async def test_an_edited_posting_amount_is_unbalanced_breaks_the_chain_and_blocks_the_repair(cli: Any) -> None:
    ids = await _journal(cli)
    await _sql(cli, "UPDATE postings SET amount = amount + 5000 WHERE txn_id = :t AND account = :a",
               t=ids[2], a=f"sub:{A}:main")
    code, report = await _verify(cli)
    assert code == 1 and report["ok"] is False
    assert _found(report) == [
        ("unbalanced", 2, ids[2], PAID_A),
        ("broken_link", 2, ids[2], PAID_A),
        ("suspect_after_break", 3, ids[3], ()),
        ("projection_drift", None, None, (f"sub:{A}:main",)),
    ]
    assert report["unbalanced_transactions"] == [ids[2]] and report["totals"] == {"RUB": 5_000, "USD": 0}
    assert report["first_broken_link"] == {"position": PRELUDE + 2, "transaction_id": ids[2]}
    assert "postings sum to 50.00 RUB, not zero" in report["findings"][0]["detail"]

    code, out, _ = await cli("rebuild", "--repair")  # repairing would copy the tampering into the balance
    assert code == 1 and "repair refused" in out and await cli.balance(A) == 15_000
    code, out, err = await cli("rebuild", "--repair", "--trust-journal", env={"BILLING_OPERATOR": "auditor.petrova"})
    assert code == 0 and "(repaired)" in out and await cli.balance(A) == 20_000
    assert "fails verification" in err and "auditor.petrova" in err  # logged as the operator's act


async def test_a_deleted_posting_leaves_a_one_legged_transaction(cli: Any) -> None:
    ids = await _journal(cli)
    await _sql(cli, "DELETE FROM postings WHERE txn_id = :t AND account = :a", t=ids[1], a=CASH)
    code, report = await _verify(cli)
    assert code == 1
    assert _found(report) == [
        ("too_few_postings", 1, ids[1], (f"sub:{B}:main",)),
        ("unbalanced", 1, ids[1], (f"sub:{B}:main",)),
        ("broken_link", 1, ids[1], (f"sub:{B}:main",)),
        ("suspect_after_break", 2, ids[2], ()),
        ("projection_drift", None, None, (CASH,)),
    ]


async def test_a_deleted_transaction_breaks_the_next_link_and_shortens_the_journal(cli: Any) -> None:
    ids = await _journal(cli)
    await _sql(cli, "DELETE FROM postings WHERE txn_id = :t", "DELETE FROM journal WHERE txn_id = :t", t=ids[1])
    code, report = await _verify(cli)
    assert code == 1
    assert _found(report) == [
        ("broken_link", 1, ids[2], PAID_A),
        ("suspect_after_break", 2, ids[3], ()),
        ("journal_shorter_than_head", 2, ids[3], ()),
        ("projection_drift", None, None, (CASH,)),
        ("projection_drift", None, None, (f"sub:{B}:main",)),
    ]


async def test_the_newest_transaction_cut_off_with_balances_fixed_is_found_by_the_chain_head(cli: Any) -> None:
    ids = await _journal(cli)
    await _sql(cli, "DELETE FROM postings WHERE txn_id = :t", "DELETE FROM journal WHERE txn_id = :t",
               "UPDATE accounts SET main = main + 3000 WHERE number = :b",
               "UPDATE operator_balances SET balance = balance - 3000 WHERE code LIKE 'op:revenue:%'", t=ids[3], b=B)
    code, out, _ = await cli("rebuild")
    assert code == 0 and "every projection equals the journal" in out  # the projections alone cannot tell
    code, report = await _verify(cli)
    assert code == 1
    assert _found(report) == [("journal_shorter_than_head", 2, ids[2], ())]
    assert f"counts {PRELUDE + 4} records, the journal holds {PRELUDE + 3}" in report["findings"][0]["detail"]
    code, out, _ = await cli("rebuild", "--repair")
    assert code == 1 and "repair refused" in out


async def test_two_transactions_swapped_break_their_links_and_the_next(cli: Any) -> None:
    ids = await _journal(cli)
    await _sql(cli, "UPDATE journal SET seq = -seq WHERE txn_id IN (:x, :y)",
               "UPDATE journal SET seq = CASE WHEN txn_id = :x THEN"
               " (SELECT -seq FROM journal WHERE txn_id = :y) ELSE (SELECT -seq FROM journal WHERE txn_id = :x) END"
               " WHERE txn_id IN (:x, :y)", x=ids[1], y=ids[2])
    code, report = await _verify(cli)
    assert code == 1
    assert _found(report) == [
        ("broken_link", 1, ids[2], PAID_A),
        ("broken_link", 2, ids[1], PAID_B),
        ("broken_link", 3, ids[3], (f"sub:{B}:main", "op:revenue:subscription")),
    ]


async def _seal(cli: Any) -> Any:
    """Seal the chain head now, and wait until the seal is on the broker."""
    sealed = await integrity.seal(cli.ledger)
    assert sealed is not None
    async with TopicReader(cli.env["BILLING_KAFKA__BOOTSTRAP_SERVERS"],
                           cli.runtime.topics(topics.LEDGER_SEALS)) as reader:
        [published] = await reader.wait_for_type("JournalSealed")
    assert published.payload.hash == sealed.payload.hash
    return published


async def _rewrite_first_payment(cli: Any, ids: list[str], *, balances_too: bool) -> None:
    """Whoever can write the database makes A's first payment 10.00 instead of 100.00 and
    recomputes every hash and the chain head (and, ``balances_too``, the balances): the
    database is consistent again."""
    await _sql(cli, "UPDATE postings SET amount = amount / 10 WHERE txn_id = :t", t=ids[0])
    if balances_too:
        await _sql(cli, "UPDATE accounts SET main = main - 9000 WHERE number = :a",
                   "UPDATE operator_balances SET balance = balance + 9000 WHERE code = :c AND currency = 'RUB'",
                   a=A, c=CASH)
    async with as_intruder(cli.runtime.db) as conn:
        previous = bytes(32)
        async for record in store.raw_journal(conn):
            previous = record.content_hash(previous)
            await conn.execute(text("UPDATE journal SET hash = :h WHERE seq = :s"), {"h": previous, "s": record.seq})
        await conn.execute(text("UPDATE chain_head SET hash = :h"), {"h": previous})


async def test_a_consistently_rewritten_chain_is_found_only_by_the_published_seal(cli: Any) -> None:
    ids = await _journal(cli)
    sealed = await _seal(cli)
    assert sealed.payload.length == PRELUDE + 4 and sealed.account == "journal"
    assert str(sealed.payload.last_transaction_id) == ids[3]

    await _rewrite_first_payment(cli, ids, balances_too=True)
    code, report = await _verify(cli, "--no-seals-from-broker")
    assert code == 0 and report["findings"] == []  # the database alone proves nothing against its writer
    code, report = await _verify(cli)  # the seals on the broker are read by default
    assert code == 1 and report["seals"]["from_broker"] == 1 and report["seals"]["checked"] == 1
    assert _found(report) == [("seal_not_reproduced", 3, ids[3], (f"sub:{B}:main", "op:revenue:subscription"))]
    code, report = await _verify(cli, "--no-seals-from-broker", "--seal", f"{PRELUDE + 4}:{sealed.payload.hash}")
    assert code == 1 and [f["kind"] for f in report["findings"]] == ["seal_not_reproduced"]
    assert "the seal given on the command line" in report["findings"][0]["detail"]
    code, report = await _verify(cli, "--no-seals-from-broker", "--seal", f"9:{sealed.payload.hash}")
    assert code == 1 and f"journal holds only {PRELUDE + 4}" in report["findings"][0]["detail"]
    code, _, err = await cli("verify", "--seal", "4:nothex")
    assert code == 2 and "is not a seal" in err


async def test_an_edited_balance_row_is_drift_that_the_repair_fixes(cli: Any) -> None:
    await _journal(cli)
    await _sql(cli, "UPDATE accounts SET main = main - 1 WHERE number = :a", a=A)
    code, report = await _verify(cli)
    assert code == 1
    assert _found(report) == [("projection_drift", None, None, (f"sub:{A}:main",))]
    assert report["projection_drift"] == [{"account": f"sub:{A}:main", "currency": "RUB", "stored": 14_999,
                                           "replayed": 15_000}]
    assert report["findings"][0]["detail"] == "stored 149.99 RUB, the journal says 150.00 RUB"
    code, out, _ = await cli("rebuild")
    assert code == 1 and await cli.balance(A) == 14_999
    code, out, _ = await cli("rebuild", "--repair")
    assert code == 0 and "(repaired)" in out and await cli.balance(A) == 15_000
    code, report = await _verify(cli)
    assert code == 0 and report["ok"] is True


async def test_a_consistently_rewritten_chain_is_not_repaired_into_the_balances(cli: Any) -> None:
    ids = await _journal(cli)
    sealed = await _seal(cli)
    await _rewrite_first_payment(cli, ids, balances_too=False)  # the balances still say 100.00 was paid
    code, out, _ = await cli("rebuild", "--repair")  # the seals on the broker are read, as verify reads them
    assert code == 1 and "repair refused" in out and await cli.balance(A) == 15_000
    code, out, _ = await cli("rebuild", "--repair", "--json")
    report = json.loads(out)
    assert code == 1 and report["repaired"] is False and report["seals"] == {"from_broker": 1, "given": 0, "checked": 1}
    assert [f["kind"] for f in report["repair_refused_because"]] == ["seal_not_reproduced"]
    assert [(d["account"], d["currency"]) for d in report["drift"]] == [(CASH, "RUB"), (f"sub:{A}:main", "RUB")]
    code, out, _ = await cli("rebuild", "--repair", "--no-seals-from-broker", "--seal",
                             f"{sealed.payload.length}:{sealed.payload.hash}")  # an auditor's seal, as for verify
    assert code == 1 and "repair refused" in out and await cli.balance(A) == 15_000
    code, out, err = await cli("rebuild", "--repair", "--trust-journal", env={"BILLING_OPERATOR": "auditor.petrova"})
    assert code == 0 and "(repaired)" in out and await cli.balance(A) == 6_000
    assert "auditor.petrova" in err and "seal_not_reproduced" in err
    code, _, err = await cli("rebuild", "--seal", f"{sealed.payload.length}:{sealed.payload.hash}")
    assert code == 2 and "--repair" in err


async def _operator_rows(cli: Any) -> dict[tuple[str, str], int]:
    async with cli.runtime.db.connect() as conn:
        rows = await conn.execute(text("SELECT code, currency, balance FROM operator_balances"))
        return {(code, currency): balance for code, currency, balance in rows}


async def test_money_moved_between_the_currencies_of_suspense_is_drift_one_repair_fixes(cli: Any) -> None:
    await _journal(cli)
    sound = await _operator_rows(cli)
    assert sound[(SUSPENSE, "USD")] == 4_200 and sound[(CASH, "USD")] == -4_200 and sound[(CASH, "RUB")] == -35_000
    await _sql(cli, "UPDATE operator_balances SET balance = balance - 500000000 WHERE code = :s AND currency = 'USD'",
               "INSERT INTO operator_balances (code, currency, balance) VALUES (:s, 'RUB', 500000000)", s=SUSPENSE)
    code, report = await _verify(cli)  # the sum over both currencies is what it was
    assert code == 1 and report["projection_drift"] == [
        {"account": SUSPENSE, "currency": "RUB", "stored": 500_000_000, "replayed": 0},
        {"account": SUSPENSE, "currency": "USD", "stored": -499_995_800, "replayed": 4_200}]
    code, out, _ = await cli("rebuild", "--json")
    assert code == 1 and json.loads(out)["drift"] == report["projection_drift"]
    code, out, _ = await cli("rebuild", "--repair")
    assert code == 0 and "(repaired)" in out
    assert await _operator_rows(cli) == sound  # the rouble row no posting made is gone
    code, report = await _verify(cli)
    assert code == 0 and report["ok"] is True


async def test_edited_settings_are_drift_for_rebuild_as_for_verify(cli: Any) -> None:
    await _journal(cli)
    await _sql(cli, "UPDATE accounts SET payment_type = 'credit', credit_limit = 100000 WHERE number = :a", a=A)
    code, report = await _verify(cli)
    assert code == 1 and _found(report) == [("projection_drift", None, None, (A,))]
    code, out, _ = await cli("rebuild", "--json")
    rebuilt = json.loads(out)
    assert code == 1 and rebuilt["drift"] == [] and rebuilt["settings_drift"] == report["settings_drift"] == [{
        "account": A, "detail": "stored credit, credit limit 1000.00 RUB, open, in RUB, the journal says prepaid,"
                                " open, in RUB",
        "stored": {"currency": "RUB", "payment_type": "credit", "credit_limit": 100_000, "is_open": True},
        "journal": {"currency": "RUB", "payment_type": "prepaid", "credit_limit": 0, "is_open": True}}]
    code, out, _ = await cli("rebuild")
    assert code == 1 and f"drift {A} settings" in out
    code, out, _ = await cli("rebuild", "--repair")
    assert code == 0 and "(repaired)" in out
    code, report = await _verify(cli)
    assert code == 0 and report["ok"] is True
