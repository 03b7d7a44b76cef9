"""The `billing` command line against a running ledger, over the real broker and PostgreSQL.

The CLI runs as a separate process, as an operator runs it; the ledger runs in the test with
its HTTP door on a free port.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from billing_contracts import topics
from billing_events.keys import public_key_of
from billing_contracts.envelope import Envelope
from billing_events.testing.intruder import as_intruder
from billing_events.testing.kafka_probe import RawProducer
from billing_events.testing.plugin import eventually
from ledger import ops, store

A, B = "100000000008", "100000000016"  # the accounts the `cli` fixture opens


async def test_pay_replay_statement_receipt_history(cli: Any) -> None:
    await cli.opened()
    code, out, _ = await cli("do", "pay", A, "1500.50", "--reference", "TERM-1")
    assert code == 0 and "sent" in out
    await eventually(lambda: _equals(cli, A, 150_050), what="payment posted")
    replay = await cli.json("replay", A)
    assert replay["main"] == 150_050 and replay["matches"] is True and len(replay["steps"]) == 1
    today = cli.clock.now().date()
    code, out, _ = await cli("statement", A, "--from", str(today - timedelta(days=1)),
                             "--to", str(today + timedelta(days=1)), "--format", "csv")
    assert code == 0 and out.splitlines()[0].startswith("occurred_at") and "150050" in out
    # The history merges every service's archive (tests/flows/test_cli_actions.py reads it with all
    # four up): with only the ledger running here, it says which service it could not reach.
    away = {f"BILLING_{name}_URL": "http://127.0.0.1:1" for name in ("IDENTITY", "TARIFF", "NOTIFIER")}
    code, _, err = await cli("history", A, env=away)
    assert code == 5 and "service is not reachable at http://127.0.0.1:1" in err
    receipt = await cli.json("receipt", replay["steps"][0]["transaction_id"])
    assert (receipt["amount"], receipt["reference"], receipt["balance_after"]) == (150_050, "TERM-1", 150_050)


async def _equals(cli: Any, number: str, minor: int) -> bool:
    return await cli.balance(number) == minor


async def test_verify_and_rebuild_find_tampering(cli: Any) -> None:
    await cli.opened()
    await cli("do", "pay", A, "100")
    await cli("do", "pay", B, "200")
    for number, minor in ((A, 10_000), (B, 20_000)):  # different partitions: neither waits for the other
        await eventually(lambda: _equals(cli, number, minor), what=f"the payment to {number} posted")
    assert (await cli.json("verify"))["ok"] is True
    async with cli.runtime.db.transaction() as conn:
        await conn.execute(text("UPDATE accounts SET main = main - 1 WHERE number = :n"), {"n": A})
    code, out, _ = await cli("rebuild")  # a check by default: reports, changes nothing
    assert code == 1 and f"sub:{A}:main" in out and await cli.balance(A) == 9_999
    code, out, _ = await cli("rebuild", "--repair")
    assert code == 0 and "repaired" in out and await cli.balance(A) == 10_000
    async with as_intruder(cli.runtime.db) as conn:
        await conn.execute(text("UPDATE postings SET amount = -amount WHERE account LIKE :a"), {"a": f"sub:{B}:main"})
        await conn.execute(text("UPDATE postings SET amount = -amount WHERE account LIKE 'op:cash:%' AND txn_id ="
                                " (SELECT txn_id FROM postings WHERE account = :a)"), {"a": f"sub:{B}:main"})
    code, out, _ = await cli("verify", "--json")
    report = json.loads(out)
    assert code == 1 and report["first_broken_link"] is not None and report["totals"] == {"RUB": 0}


async def test_operator_moves_a_suspense_payment_through_the_ledger_api(cli: Any) -> None:
    await cli.opened()
    await cli("do", "pay", "999999999999", "75", "--reference", "WRONG-NUMBER")

    async def parked() -> Any:
        async with cli.runtime.db.connect() as conn:
            items = await store.open_suspense(conn)
        return items[0] if items else None

    item = await eventually(parked, what="payment parked in suspense")
    code, out, err = await cli("do", "move-suspense", str(item.transaction_id), B, "--reason", "typo in the number")
    assert code == 0, err
    assert await cli.balance(B) == 7_500
    code, _, err = await cli("do", "move-suspense", str(item.transaction_id), B, "--reason", "again")
    assert code == 4 and "already resolved" in err and len(err.strip().splitlines()) == 1

    # The placed payment has its receipt, like one credited at once.
    async with cli.runtime.db.connect() as conn:
        placement = (await store.suspense_item(conn, item.transaction_id)).settled_by
    receipt = await cli.json("receipt", str(placement))
    assert (receipt["account"], receipt["amount"], receipt["reference"], receipt["channel"], receipt["placed_from"],
            receipt["balance_after"]) == (B, 7_500, "WRONG-NUMBER", "terminal", "999999999999", 7_500)
    code, out, err = await cli("receipt", str(placement))
    assert code == 0 and "75.00 RUB via terminal (ref WRONG-NUMBER)" in out
    assert "placed from suspense: the payer typed 999999999999" in out, err


async def test_dead_letter_list_show_and_retry(cli: Any) -> None:
    await cli.opened()
    envelope = Envelope.new(
        __import__("billing_contracts.catalog.payments", fromlist=["PaymentReceived"]).PaymentReceived(
            account_number=A, channel="bank", reference="DLQ-1", amount={"minor": 4_200},
            received_at=cli.clock.now()), account=A, producer="test", clock=cli.clock)
    broken = envelope.to_bytes().replace(b'"currency":"RUB"', b'"currency":"RUR"')
    async with RawProducer(cli.env["BILLING_KAFKA__BOOTSTRAP_SERVERS"]) as producer:
        await producer.send_raw(cli.runtime.topics(topics.PAYMENTS), broken, key=A.encode())

    async def listed() -> Any:
        letters = await cli.json("dlq", "list", "--service", "ledger")
        return letters or None

    [letter] = await eventually(listed, what="the dead letter on the topic")
    assert "unknown currency 'RUR'" in letter["reason"] and letter["code"] == "invalid_payload"
    shown = await cli.json("dlq", "show", letter["ref"])
    assert "RUR" in shown["original"] and shown["code"] == "invalid_payload"
    fixed = cli.env["BILLING_DATA_DIR"] + "-fixed.json"
    with open(fixed, "wb") as handle:  # the operator's message, signed by the CLI's key: it names `cli`
        handle.write(envelope.model_copy(update={"producer": "cli"}).to_bytes())
    code, out, err = await cli("dlq", "retry", letter["ref"], "--with", fixed)
    assert code == 0, err
    await eventually(lambda: _equals(cli, A, 4_200), what="the fixed payment posted")


async def test_errors_are_one_line_with_meaningful_exit_codes(cli: Any) -> None:
    code, _, err = await cli("replay", "12345")
    assert code == 2 and "not a 12-digit account number" in err
    code, _, err = await cli("do", "pay", A, "1.234")
    assert code == 2 and "malformed amount" in err
    code, _, err = await cli("replay", "100000000099")
    assert code == 3 and "no account" in err
    code, _, err = await cli("do", "pay", A, "10", env={"BILLING_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert code == 5 and "not reachable" in err
    code, _, err = await cli("do", "transfer", A, B, "5", env={"BILLING_LEDGER_URL": "http://127.0.0.1:1"})
    assert code == 5 and "not reachable" in err
    for minutes in ("-1", "0", "1441"):  # a token lives a positive time, one day at most
        code, out, err = await cli("token", "--account", A, "--minutes", minutes)
        assert code == 2 and "--minutes" in err and out == "" and len(err.strip().splitlines()) == 1
    code, _, err = await cli("verify", env={"BILLING_LEDGER_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/x"})
    assert code == 5 and "cannot reach the ledger database" in err
    for output in (err,):
        assert len(output.strip().splitlines()) == 1


async def test_every_error_exits_with_its_documented_class(cli: Any) -> None:
    """README: 0 ok, 1 check failed, 2 wrong argument, 3 not found, 4 refused, 5 not reachable."""
    no_broker = {"BILLING_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    for command in (("dlq", "list"), ("dlq", "show", "ledger/0"), ("events", "tail", "--from-beginning", "--limit", "1")):
        code, _, err = await cli(*command, env=no_broker)
        assert code == 5 and err.strip() == (
            "error: the broker is not reachable: KafkaConnectionError: Unable to bootstrap from"
            " [('127.0.0.1', 1, <AddressFamily.AF_INET: 2>)]"), (command, err)
    missing = cli.env["BILLING_DATA_DIR"] + "/no-such-form.json"
    code, _, err = await cli("do", "register", missing)
    assert code == 2 and err.strip() == f"error: no such file: {missing}"
    code, _, err = await cli("dlq", "retry", "ledger/0", "--with", missing)
    assert code == 2 and err.strip() == f"error: no such file: {missing}"


async def test_the_command_line_draws_the_ledgers_operations_library(cli: Any) -> None:
    """`billing verify` is :func:`ledger.ops.verify` drawn: the same report; the ledger's
    refusals and findings become the command line's exit codes."""
    await cli.opened()
    watched: list[tuple[int, int]] = []
    report = await ops.verify(cli.ledger, progress=lambda done, total: watched.append((done, total)))
    assert report.ok and report.seals == ops.SealsChecked(given=0, from_broker=None, checked=0)
    assert watched[-1] == (0, 0)
    drawn = await cli.json("verify", "--no-seals-from-broker")
    assert drawn == json.loads(json.dumps(report.as_json(), default=str))
    head = report.audit.head
    assert head is not None
    written_down = ops.parse_seal(f"{head.length}:{head.hash.hex()}")
    published = ops.Seal(head.length, head.hash, "a seal read from the topic")
    sealed = await ops.verify(cli.ledger, [written_down], [published])
    assert sealed.ok and sealed.seals == ops.SealsChecked(given=1, from_broker=1, checked=2)
    code, out, err = await cli("replay", "100000000099")
    assert (code, out, err.strip()) == (3, "", "error: no account 100000000099")
    code, out, err = await cli("verify", "--seal", "4:nothex", "--no-seals-from-broker")
    assert code == 2 and out == "" and err.startswith("error: '4:nothex' is not a seal")
    code, out, err = await cli("rebuild", "--trust-journal")
    assert (code, out, err.strip()) == (2, "", "error: --trust-journal only applies to --repair")
    code, out, _ = await cli("rebuild", "--repair", f"--seal={head.length}:{'00' * 32}", "--no-seals-from-broker",
                             "--json")
    refused = json.loads(out)
    assert code == 1 and refused["seals"] == {"from_broker": None, "given": 1, "checked": 1}
    assert refused["repaired"] is False
    assert [f["kind"] for f in refused["repair_refused_because"]] == ["seal_not_reproduced"]
    async with cli.runtime.db.transaction() as conn:
        await conn.execute(text("UPDATE accounts SET main = main - 1 WHERE number = :n"), {"n": A})
    code, out, _ = await cli("rebuild", "--json")
    assert code == 1 and json.loads(out)["drift"] == [{"account": f"sub:{A}:main", "currency": "RUB", "stored": -1,
                                                        "replayed": 0}]
    code, out, _ = await cli("replay", A)
    assert code == 1 and "differs from the stored projection: main -0.01 RUB, bonus 0.00 RUB" in out


@pytest.mark.parametrize("service", ["identity", "ledger", "tariff", "notifier"])
async def test_every_service_prints_its_help_and_starts_nothing(service: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", service, "--help", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", ""), "BILLING_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()
    assert out.decode().startswith(f"usage: python -m {service} [-h]") and "BILLING_" in out.decode()
    assert b"service started" not in out + err


async def test_an_operator_makes_a_key_and_the_cli_signs_with_it(cli: Any, tmp_path: Any) -> None:
    """`billing operator keygen` prints the key ring's entry; a CLI command of that operator is
    refused by a service whose ring lacks it, and the ring is what lets it in."""
    await cli.opened()
    key_file = tmp_path / "petrova.key"
    code, out, err = await cli("operator", "keygen", "--name", "auditor.petrova", "--key-file", str(key_file))
    assert code == 0, err
    name, _, public = out.strip().partition("=")
    assert name == "auditor.petrova" and key_file.stat().st_mode & 0o077 == 0
    assert public_key_of(key_file.read_text().strip()) == public
    code, _, err = await cli("operator", "keygen", "--name", "auditor.petrova", "--key-file", str(key_file))
    assert code != 0 and "never overwritten" in err
    as_petrova = {"BILLING_OPERATOR": "auditor.petrova", "BILLING_OPERATOR_KEY_FILE": str(key_file)}
    code, _, err = await cli("do", "transfer", A, B, "1", env=as_petrova)  # not in the ledger's ring
    assert code == 4 and "refused (401)" in err
    code, _, err = await cli("do", "transfer", A, B, "1")  # the test operator is in it: past the token, to the rules
    assert code == 4 and "refused (409)" in err and "may transfer 0.00 RUB" in err, err
