"""The delivery channels (the domain's :class:`notifier.domain.Channel` port); the deliverer
(:mod:`notifier.delivery`) tries a failing one again by the retry policy.

A channel either delivers or raises :class:`DeliveryError` saying whether trying again may
help. Reasons name status codes and error classes, never the message or the address, because
they end up in the delivery log and in NotificationFailed.
"""

from __future__ import annotations

import asyncio
import json
import os
from email.message import EmailMessage
from pathlib import Path
from typing import Literal

import aiosmtplib
import httpx
import structlog

from notifier.domain import Destination, Message

REDACTED = "[redacted]"

log = structlog.get_logger(__name__)


class DeliveryError(Exception):
    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


# --- the local channel ------------------------------------------------------------------------


class FileChannel:
    """Appends each message as a JSON line to a file and logs it: the embedded default.

    Outside production the line carries the clear address and body, so a developer (or an
    end-to-end test) can read a password that was sent. In production a secret body is
    replaced by ``[redacted]`` and the address is masked. Log lines never carry a secret body.
    """

    def __init__(self, path: Path, *, production: bool) -> None:
        self._path = path
        self._production = production
        self._lock = asyncio.Lock()

    async def send(self, destination: Destination, message: Message) -> None:
        hide_body = self._production and message.contains_secret
        line = json.dumps(
            {
                "template": message.template,
                "language": message.language,
                "to": destination.masked if self._production else destination.address,
                "subject": message.subject,
                "body": REDACTED if hide_body else message.body,
                "contains_secret": message.contains_secret,
            },
            ensure_ascii=False,
        )
        try:
            async with self._lock:
                await asyncio.to_thread(self._append, line)
        except OSError as exc:
            raise DeliveryError(
                f"cannot write {self._path}: {exc.strerror}", retryable=True
            ) from None
        log.info(
            "notifier.file_channel.written",
            template=message.template,
            masked_destination=destination.masked,
            subject=message.subject,
            text=REDACTED if message.contains_secret else message.body,
        )

    def _append(self, line: str) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # Owner only (0600): outside production the lines hold passwords and codes in clear.
        descriptor = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(descriptor, 0o600)  # a file left by an older version may be wider
        with open(descriptor, "a", encoding="utf-8") as file:
            file.write(line + "\n")


# --- e-mail -----------------------------------------------------------------------------------

TlsMode = Literal["none", "starttls", "tls"]


class SmtpChannel:
    """Sends text/plain e-mail through an SMTP relay with aiosmtplib."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        tls: TlsMode = "starttls",
        timeout: float = 30.0,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._username = username
        self._password = password
        self._tls = tls
        self._timeout = timeout

    async def send(self, destination: Destination, message: Message) -> None:
        email = EmailMessage()
        email["From"] = self._sender
        email["To"] = destination.address
        email["Subject"] = message.subject
        email.set_content(message.body)
        try:
            await aiosmtplib.send(
                email,
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._tls == "tls",
                start_tls=self._tls == "starttls",
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            raise DeliveryError(
                f"SMTP recipient refused ({', '.join(map(str, codes))})",
                retryable=all(_transient_smtp(code) for code in codes),
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            # The server's text can quote the address; the code says enough.
            raise DeliveryError(
                f"SMTP {type(exc).__name__} {exc.code}", retryable=_transient_smtp(exc.code)
            ) from None
        except OSError as exc:  # connection refused or lost, timeouts
            raise DeliveryError(
                f"SMTP server unreachable: {type(exc).__name__}", retryable=True
            ) from None
        except aiosmtplib.SMTPException as exc:  # e.g. STARTTLS not supported: configuration
            raise DeliveryError(f"SMTP {type(exc).__name__}", retryable=False) from None


def _transient_smtp(code: int) -> bool:
    return 400 <= code < 500


# --- SMS --------------------------------------------------------------------------------------


class HttpSmsChannel:
    """POSTs ``{"to": ..., "text": ...}`` as JSON to an SMS gateway with a bearer token.

    5xx, 429 and transport failures may pass: retryable. Other 4xx mean the request itself is
    wrong (bad number, bad token): trying again cannot help.
    """

    def __init__(
        self, *, url: str, api_token: str, client: httpx.AsyncClient, sender: str | None = None
    ) -> None:
        self._url = url
        self._headers = {"Authorization": f"Bearer {api_token}"}
        self._client = client
        self._sender = sender

    async def send(self, destination: Destination, message: Message) -> None:
        body = {"to": destination.address, "text": message.body}
        if self._sender is not None:
            body["from"] = self._sender
        try:
            response = await self._client.post(self._url, json=body, headers=self._headers)
        except httpx.TimeoutException:
            raise DeliveryError("SMS gateway timed out", retryable=True) from None
        except httpx.TransportError as exc:
            raise DeliveryError(
                f"SMS gateway unreachable: {type(exc).__name__}", retryable=True
            ) from None
        status = response.status_code
        if response.is_success:
            return
        # The response body is not quoted: a gateway may echo the text, which may be a password.
        raise DeliveryError(
            f"SMS gateway answered {status}", retryable=status >= 500 or status == 429
        )
