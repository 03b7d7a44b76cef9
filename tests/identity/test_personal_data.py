"""Personal data and secrets stay in the identity database, protected.

A full flow (registration, failed and successful logins, a password by SMS, a reset code by
e-mail, support recovery, refused commands) runs while every log line is captured as production
renders it (the redaction included); then the raw bytes of every message on the identity topic
and on identity's dead-letter topic, the captured logs and every error message are searched for the passport series and number, the passwords
and codes, the phone and the e-mail. None is found. The database holds none in clear either.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from sqlalchemy import select

from billing_contracts import topics
from billing_contracts.catalog.identity import PasswordPurpose
from billing_events.testing.kafka_probe import TopicReader
from billing_events.testing.plugin import RenderedLogs
from identity import service, store
from identity.domain import IdentityError

SERIES, NUMBER = "8317", "294856"
PHONE_E164, PHONE_NATIONAL, EMAIL = "+79261234875", "9261234875", "olga.smirnova@yandex.ru"


def standalone(token: str) -> re.Pattern[bytes]:
    """A 4-digit series as a token of its own: random base64/hex runs may hold any 4 digits."""
    return re.compile(rb"(?<![0-9A-Za-z+/])" + re.escape(token.encode()) + rb"(?![0-9A-Za-z+/])")


async def test_no_passport_password_or_contact_leaves_identity(
    flow: Any, bootstrap_servers: str, caplog: pytest.LogCaptureFixture, rendered_logs: RenderedLogs
) -> None:
    runtime, ctx = flow.runtime, flow.ctx
    form = flow.form(
        passport_series=f"{SERIES[:2]} {SERIES[2:]}", passport_number=NUMBER, mobile_phone=PHONE_E164,
        email=EMAIL, surname="Смирнова", first_name="Ольга", patronymic="Петровна",
    )
    secrets: list[str] = []
    errors: list[str] = []
    caplog.set_level(logging.DEBUG)
    registered = await service.register(ctx, form)
    account = registered.account_number
    secrets.append(await flow.secret(account, PasswordPurpose.INITIAL))
    for attempt in (
        lambda: service.register(ctx, form),  # duplicate passport
        lambda: service.register(ctx, {**form, "date_of_issue": "1980-01-01"}),
        lambda: service.register(ctx, {**form, "mobile_phone": PHONE_NATIONAL + "999"}),
        lambda: service.login(ctx, {"login": account, "password": secrets[0] + "x"}),
        lambda: service.request_reset_code(ctx, {"login": account, "phone": "+79261234876"}),
        lambda: service.recover_by_support(ctx, {
            "login": account, "operator": "op", "reason": "r", "passport_series": SERIES,
            "passport_number": "294857", "date_of_birth": "1990-05-17"}),
    ):
        with pytest.raises(IdentityError) as refused:
            await attempt()
        errors.append(str(refused.value))
    await service.login(ctx, {"login": PHONE_E164, "password": secrets[0]})
    await service.reissue_password_by_sms(ctx, {"login": PHONE_NATIONAL})
    secrets.append(await flow.secret(account, PasswordPurpose.SMS_REISSUE))
    await service.request_reset_code(ctx, {"login": account, "email": EMAIL})
    code = await flow.secret(account, PasswordPurpose.RESET_CODE)
    secrets.append(code)
    await service.redeem_reset_code(ctx, {"login": account, "code": code})
    secrets.append(await flow.secret(account, PasswordPurpose.SMS_REISSUE, nth=2))
    await service.recover_by_support(ctx, {
        "login": registered.contract_number, "operator": "op", "reason": "r",
        "passport_series": SERIES, "passport_number": NUMBER, "date_of_birth": "1990-05-17"})
    secrets.append(await flow.secret(account, PasswordPurpose.SUPPORT_RECOVERY))
    await service.login(ctx, {"login": account, "password": secrets[-1]})

    assert len(rendered_logs.lines()) >= 8  # the flow did log; the lines just hold nothing personal
    await flow.reader.wait_for(lambda found: len(found) >= 8, what="the flow's eight events")
    # registered, 5 secrets issued, the code redeemed, access restored by support
    assert len(flow.reader.envelopes) == 8
    async with TopicReader(
        bootstrap_servers, runtime.topics(topics.IDENTITY), runtime.topics(topics.dead_letter_topic("identity"))
    ) as everything:
        await everything.wait_for(lambda found: len(found) >= 7, what="every event")
        raw = [
            b"".join([record.key or b"", record.value or b"", *(v for _, v in record.headers or [])])
            for record in everything.records
        ]
    log_text = rendered_logs.text + "\n" + caplog.text
    haystacks = [*raw, log_text.encode(), "\n".join(errors).encode()]
    needles = [NUMBER, PHONE_E164, PHONE_NATIONAL, EMAIL, "Смирнова", *secrets]
    for haystack in haystacks:
        for needle in needles:
            assert needle.encode() not in haystack, f"{needle!r} leaked"
        assert not standalone(SERIES).search(haystack), "the passport series leaked"
        assert f"{SERIES[:2]} {SERIES[2:]}".encode() not in haystack
    # At rest: only hashes and ciphertexts.
    async with runtime.db.connect() as conn:
        row = repr((await conn.execute(select(store.subscribers))).one())
    for needle in (NUMBER, PHONE_E164, PHONE_NATIONAL, EMAIL, "Смирнова", *secrets):
        assert needle not in row
    assert not standalone(SERIES).search(row.encode())
