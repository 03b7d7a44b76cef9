"""The idempotent consumer: one way from broker records to committed state, for every service.

For each batch: decode and validate every record (a bad one becomes a dead letter), drop events
this consumer already took (the inbox), hand the new ones to the service's batch handler, and
commit the handler's state change, the inbox claims, the outgoing events (outbox) and the dead
letters in ONE unit of work (:mod:`billing_events.unit_of_work`, the one a command is taken in
too). Only then does the subscriber acknowledge the offsets.

A record is taken only from the topic the catalog lists its event type for, and, on a topic
its owner alone writes, only from that owner (see :class:`billing_contracts.topics.TopicSpec`):
anything else is dead-lettered ``wrong_topic``. Given a keyring, a record is taken only when
signed by a key of the producer its envelope names (:mod:`billing_events.signing`): anything
else is dead-lettered ``bad_signature``. An event type the catalog lists for the topic
but this consumer does not handle is skipped (other consumers of the topic take it).

If the batch handler fails on something other than a transient database error, the batch is
taken again one event per transaction, so one poisonous event is dead-lettered alone and the
others are still applied.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol
from uuid import UUID

import structlog
from aiokafka import ConsumerRecord

from billing_contracts import topics
from billing_events import deadletter, inbox, metrics, revocations, unit_of_work
from billing_events.clock import Clock
from billing_events.db import Database, is_transient
from billing_contracts.envelope import Envelope, Event, InvalidEvent, decode, is_current
from billing_events.errors import DomainError
from billing_events.logging import get_logger
from billing_contracts.refusal import Refusal, RefusalCode
from billing_events.settings import DEFAULT_MAX_MESSAGE_BYTES
from billing_events.signing import SIGNATURE_HEADERS, Keyring
from billing_contracts.topics import TopicNames
from billing_events.unit_of_work import RETRY_FOR_A_MINUTE, RetryPolicy, UnitOfWork

log = get_logger(__name__)

KEPT_OF_TOO_LARGE = 4096
"""How much of a message over the size limit its dead letter keeps: enough to tell who sent what."""
MAX_PRODUCER_LENGTH = 64
"""The envelope's ``producer`` at the door: a service or a payment channel's name. The published
schema leaves it unbounded (a bound there is a new envelope version), so the door holds it."""


class Rejected(Exception):
    """Raised by a handler for input it refuses (a negative payment, an unknown plan...).

    The event is dead-lettered with this reason; nothing it would have changed is written.
    """

    def __init__(self, reason: str, *, code: str = RefusalCode.REJECTED) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass
class Verdicts:
    """What a batch handler says of the batch's events besides what it wrote and staged in the
    unit of work: those it refused, and those it had taken before."""

    rejected: list[tuple[Envelope[Any], Refusal]] = field(default_factory=list)
    taken_before: set[UUID] = field(default_factory=set)
    """Events whose request the handler had taken before (by their business keys) although the
    inbox does not know them: the very event after the inbox forgot it (pruned after its
    retention), or the same request under another id. Nothing happens, and they are not kept: a
    repeat kept once would be kept again each time it came back after a prune (a refill, a rewind)."""


class BatchHandler(Protocol):
    accepts: frozenset[str]
    """Event types this handler takes; other types the catalog lists for its topics are skipped,
    not refused."""

    async def __call__(self, uow: UnitOfWork, envelopes: Sequence[Envelope[Any]]) -> Verdicts: ...


EventHandler = Callable[[UnitOfWork, Envelope[Any]], Awaitable[Sequence[Envelope[Any]] | None]]

Handler = Callable[[Any, UnitOfWork, Envelope[Any]], Awaitable[Sequence[Envelope[Any]] | None]]
"""One entry of a service's ``handlers.HANDLERS``: (the service's context, the batch's unit of
work, the event) -> the events it publishes. A refusal raises a ``DomainError``."""

BatchDecision = Callable[[Any, UnitOfWork, Sequence[Envelope[Any]]], Awaitable[Verdicts]]
"""A service's decision on a whole batch at once: (its context, the unit of work, the events)."""


class EventRouter:
    """A batch handler made of one function per event type, each event under a savepoint.

    ``rejects`` lists the service's domain errors: such an error dead-letters the event with
    its ``code`` (when it has one) and message, and the savepoint undoes whatever the event had
    written.
    """

    def __init__(
        self, routes: Mapping[type[Event], EventHandler], *, rejects: tuple[type[Exception], ...] = ()
    ) -> None:
        self._routes = {event_cls.event_type: handler for event_cls, handler in routes.items()}
        self._rejects = (Rejected, DomainError, *rejects)
        self.accepts = frozenset(self._routes)
        self.service = "unnamed"  # the consumer that runs the router names it, for the metrics

    async def __call__(self, uow: UnitOfWork, envelopes: Sequence[Envelope[Any]]) -> Verdicts:
        verdicts = Verdicts()
        for envelope in envelopes:
            with structlog.contextvars.bound_contextvars(
                correlation_id=str(envelope.correlation_id),
                event_id=str(envelope.event_id),
                event_type=envelope.event_type,
            ):
                started = time.perf_counter()
                try:
                    async with uow.savepoint():
                        uow.stage(await self._routes[envelope.event_type](uow, envelope) or ())
                except self._rejects as exc:
                    verdicts.rejected.append((envelope, _refusal_of(exc)))
                    continue
                metrics.HANDLER_SECONDS.labels(self.service, envelope.event_type).observe(
                    time.perf_counter() - started)
        return verdicts


def route(ctx: Any, handlers: Mapping[type[Event], Handler], *,
          rejects: tuple[type[Exception], ...] = ()) -> EventRouter:
    """A service's ``HANDLERS`` bound to its context: the batch handler its consumer runs."""
    return EventRouter({event_cls: partial(handler, ctx) for event_cls, handler in handlers.items()},
                       rejects=rejects)


class BatchRouter:
    """Every event type it accepts decided by one function over the whole batch, for a service
    whose batch is one decision (the ledger locks the batch's accounts once and appends its
    journal once); a refused event comes back in the outcome, not as an exception."""

    def __init__(self, ctx: Any, decide: BatchDecision, accepts: Collection[type[Event]]) -> None:
        self._ctx, self._decide = ctx, decide
        self.accepts = frozenset(event_cls.event_type for event_cls in accepts)

    async def __call__(self, uow: UnitOfWork, envelopes: Sequence[Envelope[Any]]) -> Verdicts:
        return await self._decide(self._ctx, uow, envelopes)


def _refusal_of(exc: Exception) -> Refusal:
    if isinstance(exc, DomainError):
        return exc.refusal()
    code = getattr(exc, "code", None)
    return Refusal(str(code) if code else RefusalCode.REJECTED, getattr(exc, "reason", None) or str(exc))


@dataclass
class _Taken:
    record: ConsumerRecord[bytes, bytes]
    envelope: Envelope[Any]
    fingerprint: str


class EventConsumer:
    def __init__(
        self,
        *,
        name: str,
        db: Database,
        handler: BatchHandler,
        topics: TopicNames,
        clock: Clock,
        on_commit: Callable[[], None] = lambda: None,
        keeps: Collection[str] = (),
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        keyring: Keyring | None,
        retry: RetryPolicy = RETRY_FOR_A_MINUTE,
    ) -> None:
        self.name = name
        self._keyring = keyring
        """None only where signatures are switched off (the bench's comparison of their cost)."""
        self._max_message_bytes = max_message_bytes
        self._keeps = frozenset(keeps)
        """Real names of the ingress topics whose accepted events this consumer keeps."""
        self._db = db
        self._handler = handler
        self._topics = topics
        self._clock = clock
        self._on_commit = on_commit
        self._retry = retry
        if isinstance(handler, EventRouter):
            handler.service = name

    async def process(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        started = time.perf_counter()
        taken, dead = self._decode(records)
        if taken or dead:
            try:
                await self._apply(taken, dead, what="batch")
            except Exception as exc:
                if is_transient(exc):
                    raise  # the subscriber rewinds; the broker redelivers the batch
                log.warning("batch failed; taking its events one by one", error=repr(exc))
                await self._apply_one_by_one(taken, dead)
            self._on_commit()
        metrics.BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    def _decode(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> tuple[list[_Taken], list[deadletter.DeadLetter]]:
        taken: list[_Taken] = []
        dead: list[deadletter.DeadLetter] = []
        seen: dict[UUID, str] = {}
        consumed: Counter[str] = Counter()
        for record in records:
            if (size := len(record.value or b"")) > self._max_message_bytes:
                # Refused before parsing: a 10 MB field is neither decoded, archived nor kept whole.
                metrics.EVENTS_CONSUMED.labels(self.name, "invalid").inc()
                dead.append(_too_large(record, size, self._max_message_bytes))
                continue
            try:
                envelope = decode(record.value or b"")
                key = (record.key or b"").decode("utf-8", errors="replace")
                if key != envelope.account:
                    raise InvalidEvent(f"message key {key!r} is not the envelope's account", RefusalCode.KEY_MISMATCH)
            except Exception as exc:
                # Decoding is pure: whatever it raises is the message's fault, never a reason to
                # stall the partition (json.loads raises RecursionError on deeply nested input).
                metrics.EVENTS_CONSUMED.labels(self.name, "invalid").inc()
                dead.append(_dead_letter(record, _unreadable(exc)))
                continue
            consumed[envelope.event_type] += 1
            refusal = _overlong(envelope) or self._misplaced(record.topic, envelope)
            if refusal is None:
                if envelope.event_type not in self._handler.accepts and envelope.event_type != revocations.EVENT_TYPE:
                    continue  # the catalog lists it for this topic: other consumers' business
                if not is_current(envelope):
                    continue  # an older version beside the event itself, which this consumer takes
                refusal = self._unproven(record, envelope)
            if refusal is None:
                fingerprint = inbox.fingerprint(envelope)
                first = seen.get(envelope.event_id)
                if first is None:
                    seen[envelope.event_id] = fingerprint
                    taken.append(_Taken(record, envelope, fingerprint))
                    continue
                if first == fingerprint:
                    continue  # the same event twice in one batch
                refusal = _conflict(envelope)
            dead.append(_dead_letter(record, refusal, envelope))
        _count(metrics.EVENTS_CONSUMED, self.name, consumed)
        return taken, dead

    def _misplaced(self, topic: str, envelope: Envelope[Any]) -> Refusal | None:
        """Why ``envelope`` may not be taken from ``topic`` (a real, prefixed name), if it may not."""
        logical = topic.removeprefix(self._topics.prefix)
        if envelope.topic != logical:
            return Refusal(RefusalCode.WRONG_TOPIC,
                           f"{envelope.event_type} travels on {envelope.topic}, not on {logical}")
        spec = topics.spec(logical)
        if not spec.admits(envelope.producer):
            return Refusal(RefusalCode.WRONG_TOPIC,
                           f"{logical} is written by {spec.owner} only, not by {envelope.producer!r}")
        return None

    def _unproven(self, record: ConsumerRecord[bytes, bytes], envelope: Envelope[Any]) -> Refusal | None:
        """Why ``record`` is not proven to come from the producer its envelope names, if it is not.
        Checked over the topic the event travels on (the record's own, as :meth:`_misplaced`
        holds it), so a replayed record keeps the signature it was first published with."""
        if self._keyring is None:
            return None
        reason = self._keyring.refusal(envelope.topic, record.key or b"", record.value or b"",
                                       dict(record.headers or ()), envelope.producer)
        return None if reason is None else Refusal(RefusalCode.BAD_SIGNATURE, reason)

    async def _apply(self, taken: list[_Taken], dead: list[deadletter.DeadLetter], *, what: str) -> None:
        """Take ``taken`` and record ``dead`` in one unit of work, tried again from nothing on a
        transient failure."""
        accepted, letters = await unit_of_work.run(self._db, partial(self._take, taken, dead), service=self.name,
                                                   topics=self._topics, clock=self._clock, retry=self._retry,
                                                   what=f"{self.name} {what}")
        _count(metrics.EVENTS_HANDLED, self.name, accepted)
        self._log_dead(letters)

    async def _take(self, taken: list[_Taken], dead: list[deadletter.DeadLetter],
                    uow: UnitOfWork) -> tuple[Counter[str], list[deadletter.DeadLetter]]:
        prints = {item.envelope.event_id: item.fingerprint for item in taken}
        fresh = await uow.claim(prints)
        new = [item for item in taken if item.envelope.event_id in fresh]
        again = [item for item in taken if item.envelope.event_id not in fresh]
        conflicts = await uow.conflicting({i.envelope.event_id: i.fingerprint for i in again})
        if len(again) > len(conflicts):
            metrics.EVENTS_DUPLICATE.labels(self.name).inc(len(again) - len(conflicts))
        # Identity's revocation list is plumbing: every consumer of its topic keeps it, whatever its handler takes.
        revoked = [item for item in new if item.envelope.event_type == revocations.EVENT_TYPE]
        await revocations.keep(uow.conn, [item.envelope.payload for item in revoked], clock=self._clock,
                               service=self.name)
        handled = [item.envelope for item in new if item.envelope.event_type in self._handler.accepts]
        verdicts = await self._handler(uow, handled) if handled else Verdicts()
        rejected_ids = {envelope.event_id for envelope, _ in verdicts.rejected}
        # An ingress event this service published itself (the ledger's card door) is in its
        # outbox already, as it staged it: kept again, the archive would hold it twice.
        uow.keep([item.record for item in new if item.record.topic in self._keeps
                  and item.envelope.producer != self.name
                  and item.envelope.event_id not in rejected_ids | verdicts.taken_before])
        by_id = {item.envelope.event_id: item.record for item in new}
        uow.dead_letter(dead + [
            _dead_letter(item.record, _conflict(item.envelope), item.envelope)
            for item in again if item.envelope.event_id in conflicts
        ] + [
            _dead_letter(by_id[envelope.event_id], refusal, envelope) for envelope, refusal in verdicts.rejected
        ])
        # A refused event is not remembered as processed: once its cause is fixed (the account
        # registered, the catalog loaded), `billing dlq retry` sends it again and it is taken.
        await uow.release([envelope.event_id for envelope, _ in verdicts.rejected])
        return (Counter(i.envelope.event_type for i in new if i.envelope.event_id not in rejected_ids),
                list(uow.dead_letters))

    async def _apply_one_by_one(self, taken: list[_Taken], dead: list[deadletter.DeadLetter]) -> None:
        if dead:
            await self._apply([], dead, what="dead letters")
        for item in taken:
            try:
                await self._apply([item], [], what="event")
            except Exception as exc:
                if is_transient(exc):
                    raise
                await self._apply([], [_dead_letter(item.record, _handler_failure(exc), item.envelope)],
                                  what="dead letter")

    def _log_dead(self, letters: list[deadletter.DeadLetter]) -> None:
        for letter in letters:
            metrics.EVENTS_DEAD_LETTERED.labels(self.name, letter.event_type or "invalid", letter.code).inc()
            log.warning(
                "dead-lettered",
                code=letter.code,
                reason=letter.reason,
                topic=letter.topic,
                partition=letter.partition,
                offset=letter.offset,
                event_type=letter.event_type,
                event_id=str(letter.event_id) if letter.event_id else None,
            )


def _handler_failure(exc: Exception) -> Refusal:
    """The error's first line: SQLAlchemy appends the statement and its parameters (account
    numbers, amounts, personal data) on the following lines, which must not reach the dead
    letter (a table, a topic and a log line)."""
    first_line = next(iter(str(exc).splitlines()), "")
    return Refusal(RefusalCode.HANDLER_FAILED, f"handler failed: {type(exc).__name__}: {first_line}")


def _unreadable(exc: Exception) -> Refusal:
    if isinstance(exc, InvalidEvent):
        return Refusal(exc.code, str(exc))
    if isinstance(exc, RecursionError):
        return Refusal(RefusalCode.UNREADABLE, "not JSON: nested too deeply to read")
    return Refusal(RefusalCode.UNREADABLE, f"unreadable: {type(exc).__name__}")


def _too_large(record: ConsumerRecord[bytes, bytes], size: int, limit: int) -> deadletter.DeadLetter:
    refusal = Refusal(RefusalCode.TOO_LARGE,
                      f"message of {size:,} bytes is over the limit of {limit:,} (BILLING_MAX_MESSAGE_BYTES);"
                      f" its first {KEPT_OF_TOO_LARGE:,} bytes are kept")
    letter = _dead_letter(record, refusal)
    return replace(letter, value=letter.value[:KEPT_OF_TOO_LARGE], original_size=size)


def _overlong(envelope: Envelope[Any]) -> Refusal | None:
    if len(envelope.producer) > MAX_PRODUCER_LENGTH:
        return Refusal(RefusalCode.TOO_LARGE, f"producer is {len(envelope.producer):,} characters long,"
                                              f" over the {MAX_PRODUCER_LENGTH} a producer's name may have")
    return None


def _conflict(envelope: Envelope[Any]) -> Refusal:
    return Refusal(RefusalCode.CONFLICTING_EVENT_ID,
                   f"event id {envelope.event_id} was taken before with another {envelope.event_type} payload;"
                   " this one is not applied")


def _count(counter: Any, service: str, per_type: Counter[str]) -> None:
    """One increment per event type and batch: a label lookup per event costs more than the event."""
    for event_type, count in per_type.items():
        counter.labels(service, event_type).inc(count)


def _dead_letter(
    record: ConsumerRecord[bytes, bytes], refusal: Refusal, envelope: Envelope[Any] | None = None
) -> deadletter.DeadLetter:
    return deadletter.DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value or b"",
        reason=refusal.message,
        code=refusal.code,
        event_id=envelope.event_id if envelope else None,
        event_type=envelope.event_type if envelope else None,
        signature={name: text.decode(errors="replace") for name, text in record.headers or ()
                   if name in SIGNATURE_HEADERS},
    )
