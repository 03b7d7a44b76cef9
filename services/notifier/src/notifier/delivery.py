"""The delivery loop: due deliveries are rendered, sent once, and their outcome published.

One round: claim due rows (``pending``, or ``sending`` whose lease ran out) in one
transaction, marking them ``sending`` with the attempt counted; commit; render and send each
(outside any transaction); then, per row, one transaction records the outcome and stages
NotificationSent / NotificationFailed in the outbox. A failed try that may pass is put back to
``pending`` with ``next_attempt_at`` = now + backoff with jitter, so retries survive restarts.

Exactly one send per try: a row is only sent by whoever marked it ``sending``. The one
at-least-once edge: if the process dies after the gateway accepted a message and before the
row is marked ``sent``, the row stays ``sending`` until its lease (``delivery_lease_seconds``)
runs out and is then sent again: the subscriber may get that message twice, never zero times.
A graceful stop lets the sends in flight finish and be recorded first.

Errors here are logged without tracebacks on purpose: a frame's locals can hold a rendered
body (a password), and the console renderer prints locals.

The message body is built here, at send time, from the stored variables plus the secret opened
from identity's sealed text, and lives only in memory: never in the database or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from billing_contracts.catalog.notifier import DeliveryChannel, NotificationFailed, NotificationSent
from billing_events.db import retry_transient
from billing_events.unit_of_work import RETRY_FOR_A_MINUTE, UnitOfWork
from billing_contracts.envelope import Envelope
from billing_events.logging import get_logger
from billing_events.wakeup import woken
from prometheus_client import Counter

from notifier import store
from notifier.channels import DeliveryError
from notifier.domain import (
    Channel,
    Destination,
    ErrorCode,
    Message,
    NotifierError,
    RandomSource,
    TemplateKey,
)
from notifier.context import NotifierContext
from notifier.store import ClaimedDelivery, DeliveryStatus

log = get_logger(__name__)

DELIVERIES = Counter(
    "notifier_deliveries_total", "Delivery tries by channel and outcome (sent, retry, failed)",
    ["channel", "outcome"],
)

class Deliverer:
    def __init__(
        self,
        context: NotifierContext,
        *,
        rng: RandomSource | None = None,
        batch_size: int = 50,
        concurrency: int = 8,
        poll_interval: float = 1.0,
        lease: timedelta = timedelta(minutes=5),
        stop_grace: float = 15.0,
    ) -> None:
        self._context = context
        self._channels: Mapping[DeliveryChannel, Channel] = {}
        self._rng = rng or random.SystemRandom()
        self._batch_size = batch_size
        self._semaphore = asyncio.Semaphore(concurrency)
        self._poll_interval = poll_interval
        self._lease = lease
        self._stop_grace = stop_grace
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """Called after a commit that may have added deliveries: deliver now, not at the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        """The background loop (one of the runtime's ``background`` tasks)."""
        async with contextlib.AsyncExitStack() as stack:
            self._channels = await self._context.channels(stack)
            while True:
                self._wakeup.clear()
                claimed = 0
                try:
                    claimed = await self._round()
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    log.error("notifier.delivery_round_failed", error=type(error).__name__)
                if claimed >= self._batch_size:
                    continue  # more may be due right now
                # The wait is measured before the wake-up coroutine exists: a stop during the
                # measurement would otherwise leave that coroutine never awaited.
                idle = await self._idle_wait()
                await woken(self._wakeup, idle)

    async def _idle_wait(self) -> float:
        try:
            async with self._context.db.connect() as conn:
                due = await store.next_due_at(conn)
        except Exception:
            return self._poll_interval
        if due is None:
            return self._poll_interval
        return min(self._poll_interval, max(0.0, (due - self._context.clock.now()).total_seconds()))

    async def _round(self) -> int:
        """Claim what is due and send it; the sends finish even if the loop is being stopped."""
        claimed = await retry_transient(self._claim, what="notifier claim deliveries")
        if not claimed:
            return 0
        batch = asyncio.ensure_future(asyncio.gather(*(self._guarded(row) for row in claimed)))
        try:
            await asyncio.shield(batch)
        except asyncio.CancelledError:
            # Stopping: let the sends in flight end and be recorded (bounded), then stop.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(batch, timeout=self._stop_grace)
            raise
        return len(claimed)

    async def _claim(self) -> list[ClaimedDelivery]:
        async with self._context.db.transaction() as conn:
            rows = await store.claim_due(
                conn, now=self._context.clock.now(), limit=self._batch_size, lease=self._lease
            )
        for row in rows:
            if row.status_before is DeliveryStatus.SENDING:
                log.warning("notifier.delivery_lease_expired", delivery_id=row.id, attempt=row.attempts,
                            note="sent again: the gateway may have accepted the earlier try")
        return rows

    async def _guarded(self, row: ClaimedDelivery) -> None:
        async with self._semaphore:
            try:
                await self.deliver(row)
            except Exception as error:
                # Recording the outcome failed (the database is away): the row stays 'sending'
                # and is tried again when its lease runs out.
                log.error("notifier.delivery_not_recorded", delivery_id=row.id, error=type(error).__name__)

    async def deliver(self, row: ClaimedDelivery) -> None:
        """Send one claimed delivery and record the outcome."""
        attempt = row.attempts
        bound = log.bind(delivery_id=row.id, template=row.template,
                         masked_destination=row.masked_destination, attempt=attempt)
        try:
            destination, message = await self._prepare(row)
            await self._channels[row.channel].send(destination, message)
        except DeliveryError as error:
            reason, retryable = error.reason, error.retryable
        except NotifierError as error:  # cannot be rendered or opened: trying again cannot help
            reason, retryable = f"{error.code}: {error}", False
        except Exception as error:  # a bug or a library surprise: counted as a try, retried
            # No traceback: the frames' locals (rendered by the console logger) hold the body.
            log.error("notifier.delivery_crashed", delivery_id=row.id, error=type(error).__name__)
            reason, retryable = f"unexpected {type(error).__name__}", True
        else:
            await self._close(row, attempt, outcome="sent", reason=None, status=DeliveryStatus.SENT,
                              language=message.language)
            bound.info("notifier.delivered", channel=row.channel.value)
            return
        delay = self._context.retry_policy.next_delay(attempt, self._rng) if retryable else None
        if delay is not None:
            bound.warning("notifier.delivery_retry", reason=reason,
                          retry_in_s=round(delay.total_seconds(), 3))
            await self._close(row, attempt, outcome="retry", reason=reason,
                              status=DeliveryStatus.PENDING, next_attempt_at=self._context.clock.now() + delay)
            return
        bound.warning("notifier.delivery_failed", reason=reason)
        await self._close(row, attempt, outcome="failed", reason=reason, status=DeliveryStatus.FAILED)

    async def _prepare(self, row: ClaimedDelivery) -> tuple[Destination, Message]:
        variables = store.decode_variables(row.variables)
        if row.sealed_secret is not None:
            issued = self._context.opener.secret(row.sealed_secret)
            variables["secret"] = issued.secret
            destination = Destination(issued.destination, row.masked_destination)
        elif row.sealed_contact is not None:
            contact = self._context.opener.contact(row.sealed_contact)
            address = contact.email if row.channel is DeliveryChannel.EMAIL else contact.phone
            if address is None:
                raise NotifierError(ErrorCode.NO_EMAIL, "the contact replaced has no e-mail address")
            destination = Destination(address, row.masked_destination)
        else:
            destination = await self._notice_destination(row.account_number, row.channel, row.masked_destination)
        message = self._context.renderer.render(TemplateKey(row.template), row.language, variables, row.channel)
        return destination, message

    async def _notice_destination(self, account: str, channel: DeliveryChannel, masked: str) -> Destination:
        async with self._context.db.connect() as conn:
            profile = await store.load_profile(conn, account, self._context.opener)
        if profile is None:
            raise NotifierError(ErrorCode.NO_PROFILE, "the subscriber's profile is gone")
        if channel is DeliveryChannel.EMAIL:
            if profile.email is None:
                raise NotifierError(ErrorCode.NO_EMAIL, "the subscriber has no e-mail address")
            return Destination(profile.email.address, masked)
        return Destination(profile.phone.address, masked)

    async def _close(
        self,
        row: ClaimedDelivery,
        attempt: int,
        *,
        outcome: str,
        reason: str | None,
        status: DeliveryStatus,
        next_attempt_at: datetime | None = None,
        language: str | None = None,
    ) -> None:
        DELIVERIES.labels(row.channel.value, outcome).inc()

        async def write(uow: UnitOfWork) -> bool:
            ours = await store.record_attempt(
                uow.conn, row.id, attempt, outcome=outcome, reason=reason, now=self._context.clock.now(),
                status=status, next_attempt_at=next_attempt_at, language=language,
            )
            if ours and outcome in ("sent", "failed"):
                uow.stage([self._outcome_event(row, attempt, reason, language, outcome == "sent")])
            return ours

        if not await self._context.unit_of_work(write, retry=RETRY_FOR_A_MINUTE, what="record delivery"):
            log.warning("notifier.delivery_lease_lost", delivery_id=row.id, attempt=attempt)

    def _outcome_event(
        self, row: ClaimedDelivery, attempt: int, reason: str | None, language: str | None, sent: bool
    ) -> Envelope[Any]:
        fields: dict[str, Any] = {
            "account_number": row.account_number,
            "about_event_id": row.about_event_id,
            "about_event_type": row.about_event_type,
            "channel": row.channel,
            "masked_destination": row.masked_destination,
            "template": row.template,
            "language": language or row.language,
            "attempts": attempt,
        }
        payload = (
            NotificationSent(**fields) if sent
            else NotificationFailed(**fields, reason=(reason or "unknown")[:500])
        )
        envelope = self._context.envelope(payload, account=row.account_number, correlation_id=row.correlation_id)
        return envelope.model_copy(update={"causation_id": row.about_event_id})
