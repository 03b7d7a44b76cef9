"""No log line holds personal data, whatever a handler hands the logger.

A subscriber's flow runs through the whole suite (registration, login, a password requested by
SMS, a payment, the notifications sent) while every line is rendered as production renders it.
Then every event of every topic, every request and every message sent are logged too, nested as
a careless handler would log them, and failures with their stack traces: the database's own
error (which quotes its statement), a refused form (pydantic quotes the value) and an
unreachable database (its URL). The output is searched for each personal string: the name, the
phone, the e-mail, the passport number, the passwords, the client's address, the database's
password.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiokafka import AIOKafkaConsumer
from sqlalchemy import text

from billing_contracts import topics
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.envelope import Envelope
from billing_events.logging import get_logger
from billing_contracts.money import Money
from billing_events.testing.plugin import RenderedLogs, eventually
from identity import service as identity
from identity.domain.registration import RegistrationCommand

PASSWORD = re.compile(r"\b[A-Za-z2-9]{12}\b")
CLIENT_ADDRESS = "203.0.113.58"
DATABASE_PASSWORD = "Db-pass-7731"


async def _every_record(suite: Any) -> list[Any]:
    names = [suite.ledger.topics(spec.name) for spec in topics.EVENT_TOPICS]
    consumer = AIOKafkaConsumer(*names, bootstrap_servers=suite.bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=3000)
        return [record for batch in batches.values() for record in batch]
    finally:
        await consumer.stop()


async def test_a_logged_flow_and_its_failures_hold_no_personal_data(
    suite: Any, form: dict[str, Any], rendered_logs: RenderedLogs
) -> None:
    log = get_logger("careless_handler")
    ctx = suite.identity_context
    registered = await identity.register(ctx, form)
    number = registered.account_number
    log.info("registration received", request=form, client_address=CLIENT_ADDRESS)

    initial = await eventually(lambda: [m for m in suite.messages() if "password" in m["template"]],
                               what="initial password delivered")
    password = PASSWORD.findall(initial[0]["body"])[0]
    logged_in = await identity.login(ctx, {"login": form["mobile_phone"], "password": password})
    token, _ = suite.identity.tokens.issue("subscriber", logged_in.account_number)  # as the door answers
    log.info("login answered", request={"login": form["mobile_phone"], "password": password},
             headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": CLIENT_ADDRESS},
             answer={**logged_in.model_dump(mode="json"), "access_token": token})
    await identity.reissue_password_by_sms(ctx, {"login": form["mobile_phone"]})
    log.info("password requested", request={"login": form["mobile_phone"]}, client=[CLIENT_ADDRESS])

    await eventually(lambda: suite.ledger_account_open(number), what="the ledger opened the account")
    payment = PaymentReceived(account_number=number, channel="terminal", reference="T-1",
                              amount=Money(minor=30_000), received_at=suite.clock.now())
    await suite.producer.send(suite.ledger.topics(topics.PAYMENTS),
                              Envelope.new(payment, account=number, producer="terminal", clock=suite.clock))
    sent = await eventually(lambda: len(suite.messages()) >= 3 and suite.messages(),
                            what="the password again and the payment's notice")
    passwords = {found for message in sent for found in PASSWORD.findall(message["body"])}
    for message in sent:  # to, body (with the password), the subscriber's name
        log.info("message sent", message=message, recipients=[message["to"]])
    for record in await _every_record(suite):
        log.info("event seen", topic=record.topic, envelope=json.loads(record.value))

    async with suite.identity.db.connect() as conn:  # the database's error quotes its statement
        try:
            await conn.execute(text("SELECT CAST(:phone AS integer), :name"),
                               {"phone": form["mobile_phone"], "name": form["surname"]})
        except Exception as failure:
            log.error("query failed", error=repr(failure), exc_info=failure)
    try:  # pydantic quotes the value it refuses
        RegistrationCommand.model_validate({**form, "email": f"{form['email']} {form['passport_number']}"})
    except ValueError as failure:
        log.exception("registration refused", failure=failure)
    try:
        raise ConnectionError(f"cannot reach postgresql+asyncpg://billing:{DATABASE_PASSWORD}@db:5432/billing")
    except ConnectionError:
        log.exception("database unreachable")

    lines = rendered_logs.lines()
    assert len(lines) >= 10 and any("Traceback" in line.get("exception", "") for line in lines)
    output = rendered_logs.text + "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
    digits = re.sub(r"\D", "", form["mobile_phone"])
    personal = {
        "surname": form["surname"], "first name": form["first_name"], "patronymic": form["patronymic"],
        "phone": form["mobile_phone"], "phone digits": digits, "national phone": digits[1:],
        "e-mail": form["email"], "passport number": form["passport_number"], "token": token,
        "client address": CLIENT_ADDRESS, "database password": DATABASE_PASSWORD,
        **{f"password {i}": found for i, found in enumerate(sorted({password, *passwords}))},
    }
    for what, value in personal.items():
        assert value not in output, f"the {what} is in the log"
    assert "postgresql+asyncpg://billing:***@db:5432/billing" in output  # the URL stays, its password goes
