"""Keys, a sample subscriber and event builders shared by the notifier's tests.

Offered as fixtures rather than importable helpers, so the tests work in any pytest import mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest
from aiosmtpd.controller import Controller
from billing_contracts.catalog.ledger import BalanceChanged, PaymentType
from billing_contracts.money import Money
from nacl.encoding import Base64Encoder
from nacl.public import PrivateKey, SealedBox
from notifier.crypto import SealOpener
from notifier.domain import Destination, SubscriberProfile


@dataclass(frozen=True)
class Subscriber:
    account: str = "100000000008"
    phone: str = "+79161234567"
    masked_phone: str = "+7 *** *** 45 67"
    email: str = "ivan.petrov@mail.ru"
    masked_email: str = "i***@mail.ru"

    def profile(self, language: str = "sk") -> SubscriberProfile:
        return SubscriberProfile(
            account_number=self.account,
            language=language,
            phone=Destination(self.phone, self.masked_phone),
            email=Destination(self.email, self.masked_email),
        )


@pytest.fixture(scope="session")
def subscriber() -> Subscriber:
    return Subscriber()


@pytest.fixture(scope="session")
def now() -> datetime:
    return datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def private_key() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture(scope="session")
def opener(private_key: PrivateKey) -> SealOpener:
    return SealOpener.from_base64(private_key.encode(Base64Encoder).decode())


@pytest.fixture(scope="session")
def seal(private_key: PrivateKey) -> Callable[[dict[str, Any]], str]:
    """What identity does: a libsodium sealed box of JSON for the notifier's key, in base64."""
    box = SealedBox(private_key.public_key)
    return lambda data: box.encrypt(json.dumps(data).encode(), encoder=Base64Encoder).decode()


BalanceChangedFactory = Callable[..., BalanceChanged]


@pytest.fixture(scope="session")
def balance_changed(subscriber: Subscriber) -> BalanceChangedFactory:
    def build(
        main: int,
        delta: int,
        *,
        cause: str = "ChargeApplied",
        payment_type: PaymentType = PaymentType.PREPAID,
        credit_limit: int = 0,
        currency: str = "RUB",
        credited_payment: bool | None = None,
    ) -> BalanceChanged:
        """``credited_payment=None``: as the ledger published it before the field existed."""
        stated = {} if credited_payment is None else {"credited_payment": credited_payment}
        return BalanceChanged(
            **stated,
            account_number=subscriber.account,
            transaction_id=uuid4(),
            main=Money(minor=main, currency=currency),
            bonus=Money.zero(currency),
            delta_main=Money(minor=delta, currency=currency),
            delta_bonus=Money.zero(currency),
            cause_event_id=uuid4(),
            cause_type=cause,
            payment_type=payment_type,
            credit_limit=Money(minor=credit_limit, currency=currency),
        )

    return build


# --- real local servers for the channels: SMTP (aiosmtpd) and an HTTP SMS gateway -------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- e-mail over a real SMTP server -----------------------------------------------------------


class Mailbox:
    """An aiosmtpd handler that keeps what it receives, or refuses recipients with a reply."""

    def __init__(self, refuse_recipients_with: str | None = None) -> None:
        self.refuse_recipients_with = refuse_recipients_with
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse_recipients_with:
            return self.refuse_recipients_with
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        )
        return "250 Message accepted for delivery"


@contextlib.contextmanager
def smtp_server(mailbox: Mailbox) -> Iterator[int]:
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


# --- SMS over a real HTTP gateway ---


@dataclass(frozen=True)
class GatewayRequest:
    request_line: str
    headers: dict[str, str]
    body: dict


class SmsGateway:
    """A tiny HTTP/1.1 server answering with the given statuses in turn (then 200).

    ``None`` as a status means: never answer (until the gateway is shut down).
    """

    def __init__(self, statuses: list[int | None]) -> None:
        self._statuses = list(statuses)
        self.requests: list[GatewayRequest] = []
        self._shutting_down = asyncio.Event()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode().split("\r\n")
        headers = {
            name.lower(): value
            for name, value in (line.split(": ", 1) for line in header_lines if line)
        }
        body = json.loads(await reader.readexactly(int(headers["content-length"])))
        self.requests.append(GatewayRequest(request_line, headers, body))
        status = self._statuses.pop(0) if self._statuses else 200
        if status is None:
            await self._shutting_down.wait()
        else:
            reply = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Length: 2\r\n"
            writer.write(f"{reply}Connection: close\r\n\r\n{{}}".encode())
            await writer.drain()
        writer.close()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}/v1/sms"
        finally:
            self._shutting_down.set()
            server.close()
            await server.wait_closed()


@pytest.fixture(scope="session")
def fakes() -> SimpleNamespace:
    """The local servers, as a namespace: ``fakes.SmsGateway([503])``, ``fakes.smtp_server(...)``."""
    return SimpleNamespace(
        SmsGateway=SmsGateway, Mailbox=Mailbox, smtp_server=smtp_server, free_port=free_port
    )
