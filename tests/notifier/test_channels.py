"""The channels against real servers: aiosmtpd for e-mail, a small HTTP server for SMS."""

from __future__ import annotations

import contextlib
import json
import stat
from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pytest
from billing_contracts.catalog.notifier import DeliveryChannel
from billing_contracts.money import Money
from notifier.channels import (
    REDACTED,
    DeliveryError,
    FileChannel,
    HttpSmsChannel,
    SmtpChannel,
)
from notifier.domain import Destination, Message, TemplateKey
from notifier.rendering import Renderer
from structlog.testing import capture_logs

SECRET = "Xk7-pq9Z"


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


@pytest.fixture
def payment_message(renderer, subscriber) -> Message:
    variables = {
        "account": subscriber.account,
        "amount": Money(minor=1_234_50),
        "balance": Money(minor=5_000_00),
    }
    return renderer.render(TemplateKey.PAYMENT_CREDITED, "ru", variables, DeliveryChannel.EMAIL)


@pytest.fixture
def password_message(renderer, subscriber) -> Message:
    variables = {"account": subscriber.account, "secret": SECRET}
    return renderer.render(TemplateKey.PASSWORD_SMS_REISSUE, "sk", variables, DeliveryChannel.SMS)


@pytest.fixture
def phone(subscriber) -> Destination:
    return Destination(subscriber.phone, subscriber.masked_phone)


# --- e-mail over a real SMTP server (aiosmtpd, see conftest) ----------------------------------


def smtp_channel(port: int) -> SmtpChannel:
    return SmtpChannel(
        host="127.0.0.1", port=port, sender="billing@operator.example", tls="none", timeout=5
    )


async def test_smtp_delivers_the_message_to_a_real_server(fakes, subscriber, payment_message):
    mailbox = fakes.Mailbox()
    with fakes.smtp_server(mailbox) as port:
        await smtp_channel(port).send(
            Destination(subscriber.email, subscriber.masked_email), payment_message
        )
    [(sender, recipients, raw)] = mailbox.received
    assert sender == "billing@operator.example"
    assert recipients == [subscriber.email]
    received = message_from_bytes(raw, policy=policy.default)
    assert received["To"] == subscriber.email
    assert received["Subject"] == payment_message.subject == "Платёж зачислен"
    assert received.get_content().strip() == payment_message.body
    assert "1 234,50 ₽" in received.get_content()


@pytest.mark.parametrize(
    ("reply", "retryable"), [("550 5.1.1 No such user", False), ("451 4.3.0 Try later", True)]
)
async def test_smtp_refusals_say_whether_to_try_again(
    fakes, subscriber, payment_message, reply, retryable
):
    with (
        fakes.smtp_server(fakes.Mailbox(refuse_recipients_with=reply)) as port,
        pytest.raises(DeliveryError) as refused,
    ):
        await smtp_channel(port).send(
            Destination(subscriber.email, subscriber.masked_email), payment_message
        )
    assert refused.value.retryable is retryable
    assert reply[:3] in refused.value.reason
    assert subscriber.email not in refused.value.reason


async def test_smtp_server_down_is_worth_another_try(fakes, subscriber, payment_message):
    with pytest.raises(DeliveryError) as refused:
        await smtp_channel(fakes.free_port()).send(
            Destination(subscriber.email, subscriber.masked_email), payment_message
        )
    assert refused.value.retryable
    assert "unreachable" in refused.value.reason


# --- SMS over a real HTTP gateway -------------------------------------------------------------


@contextlib.asynccontextmanager
async def sms_channel(gateway: Any, timeout: float = 5.0) -> AsyncIterator[HttpSmsChannel]:
    async with gateway.serving() as url, httpx.AsyncClient(timeout=timeout) as client:
        yield HttpSmsChannel(url=url, api_token="t0k3n", client=client, sender="Operator")


async def test_a_message_is_posted_to_the_gateway_with_its_token_and_sender(fakes, phone, password_message):
    gateway = fakes.SmsGateway([])
    async with sms_channel(gateway) as channel:
        with capture_logs() as logs:
            await channel.send(phone, password_message)
    assert len(gateway.requests) == 1
    request = gateway.requests[0]
    assert request.request_line == "POST /v1/sms HTTP/1.1"
    assert request.headers["authorization"] == "Bearer t0k3n"
    assert request.headers["content-type"] == "application/json"
    assert request.body == {"to": phone.address, "text": password_message.body, "from": "Operator"}
    assert SECRET not in str(logs) and phone.address not in str(logs)


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_a_request_the_gateway_refuses_is_not_worth_another_try(fakes, phone, password_message, status):
    gateway = fakes.SmsGateway([status])
    async with sms_channel(gateway) as channel:
        with pytest.raises(DeliveryError) as refused:
            await channel.send(phone, password_message)
    assert (refused.value.retryable, refused.value.reason) == (False, f"SMS gateway answered {status}")
    assert len(gateway.requests) == 1


@pytest.mark.parametrize("status", [429, 500, 502, 504])
async def test_overload_and_server_errors_are_worth_another_try(fakes, phone, password_message, status):
    async with sms_channel(fakes.SmsGateway([status])) as channel:
        with pytest.raises(DeliveryError) as refused:
            await channel.send(phone, password_message)
    assert refused.value.retryable


async def test_a_gateway_that_does_not_answer_times_out_and_is_worth_another_try(
    fakes, phone, password_message
):
    async with sms_channel(fakes.SmsGateway([None]), timeout=0.2) as channel:
        with pytest.raises(DeliveryError) as refused:
            await channel.send(phone, password_message)
    assert (refused.value.reason, refused.value.retryable) == ("SMS gateway timed out", True)


async def test_an_unreachable_gateway_is_worth_another_try(fakes, phone, password_message):
    async with httpx.AsyncClient(timeout=2) as client:
        channel = HttpSmsChannel(
            url=f"http://127.0.0.1:{fakes.free_port()}/v1/sms", api_token="t", client=client
        )
        with pytest.raises(DeliveryError) as refused:
            await channel.send(phone, password_message)
    assert refused.value.retryable
    assert refused.value.reason.startswith("SMS gateway unreachable")


# --- the local file channel -------------------------------------------------------------------


def written(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_file_channel_in_production_redacts_secrets_and_masks_the_address(
    tmp_path, phone, password_message, payment_message
):
    path = tmp_path / "outbox" / "messages.jsonl"
    channel = FileChannel(path, production=True)
    with capture_logs() as logs:
        await channel.send(phone, password_message)
        await channel.send(phone, payment_message)
    secret_line, payment_line = written(path)
    assert secret_line["body"] == REDACTED
    assert secret_line["contains_secret"] is True
    assert secret_line["to"] == phone.masked
    assert secret_line["template"] == TemplateKey.PASSWORD_SMS_REISSUE.value
    assert payment_line["body"] == payment_message.body  # nothing secret: kept for operations
    assert SECRET not in path.read_text(encoding="utf-8")
    assert phone.address not in path.read_text(encoding="utf-8")
    assert len(logs) == 2
    assert SECRET not in str(logs) and phone.address not in str(logs)


async def test_file_channel_in_development_writes_the_clear_text_but_never_logs_a_secret(
    tmp_path, phone, password_message
):
    path = tmp_path / "messages.jsonl"
    with capture_logs() as logs:
        await FileChannel(path, production=False).send(phone, password_message)
    [line] = written(path)
    assert SECRET in line["body"]
    assert line["to"] == phone.address
    assert [entry["masked_destination"] for entry in logs] == [phone.masked]
    assert SECRET not in str(logs) and phone.address not in str(logs)


async def test_file_channel_file_is_readable_by_its_owner_only(tmp_path, phone, password_message):
    created, widened = tmp_path / "new.jsonl", tmp_path / "old.jsonl"
    widened.touch(mode=0o644)
    for path in (created, widened):
        await FileChannel(path, production=False).send(phone, password_message)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_file_channel_that_cannot_write_is_worth_another_try(
    tmp_path, phone, payment_message
):
    with pytest.raises(DeliveryError) as refused:
        await FileChannel(tmp_path, production=True).send(phone, payment_message)  # a directory
    assert refused.value.retryable
