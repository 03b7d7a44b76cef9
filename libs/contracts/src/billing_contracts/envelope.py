"""The one envelope every event travels in, and the registry of event types.

An event type is a pydantic model subclassing :class:`Event` with a name, a schema version and
the topic of the service that owns it. Declaring the class registers it; decoding looks the
(type, version) pair up, so an unknown type or version is refused with a clear reason.

An older version that can still arrive alone (a producer publishing it during a rolling upgrade,
old events in history) has an upcaster per step (:func:`upcaster`, v1 -> v2, v2 -> v3...):
:func:`decode` checks a message against the version it was written in, then reads it as the
newest, so a consumer codes against one model only.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator
from pydantic_core import from_json

from billing_contracts.ids import uuid7
from billing_contracts.refusal import RefusalCode


class Clock(Protocol):
    """Where the time of an event comes from (the services inject theirs: billing_events.clock)."""

    def now(self) -> datetime: ...


class Event(BaseModel):
    """The payload of one event type at one schema version. Subclasses register themselves.

    Readers are tolerant: a field they do not know is ignored, so adding an optional field is
    not a breaking change (see docs/events.md, "Compatibility promise").
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    version: ClassVar[int] = 1
    topic: ClassVar[str]
    """Name (without prefix) of the owning service's topic, see :mod:`billing_contracts.topics`."""

    def previous_versions(self) -> tuple[Event, ...]:
        """The same fact in the older versions still published beside this one (the compatibility
        promise: both for 90 days), as far as the older shapes can say it."""
        return ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "event_type" in cls.__dict__:
            key = (cls.event_type, cls.version)
            if key in REGISTRY and REGISTRY[key].__qualname__ != cls.__qualname__:
                raise TypeError(f"event type {key} is declared twice")
            REGISTRY[key] = cls


REGISTRY: dict[tuple[str, int], type[Event]] = {}

E = TypeVar("E", bound=Event)


class Envelope(BaseModel, Generic[E]):
    """Metadata common to every event, and its payload.

    ``account`` is the Kafka message key: every event of one account lands in one partition
    and keeps its order. ``correlation_id`` follows a whole conversation across services;
    ``causation_id`` names the event that directly caused this one.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: UUID = Field(description="UUIDv7: unique and sortable by creation time")
    event_type: str
    schema_version: int = Field(ge=1)
    occurred_at: AwareDatetime
    account: str = Field(min_length=1, max_length=64, description="Kafka key: the account number")
    correlation_id: UUID
    causation_id: UUID | None = None
    producer: str = Field(description="The service that published the event")
    copy_of: UUID | None = Field(
        default=None,
        description="Set on an older version published beside the newest one: the event id of that"
        " newest one, which tells the same fact. A reader of the newest version skips such copies.",
    )
    payload: E
    _as_sent: Event | None = PrivateAttr(default=None)

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, moment: datetime) -> datetime:
        return moment.astimezone(UTC)

    @classmethod
    def new(
        cls,
        payload: E,
        *,
        account: str,
        producer: str,
        clock: Clock,
        cause: Envelope[Any] | None = None,
        correlation_id: UUID | None = None,
    ) -> Envelope[E]:
        """Wrap a payload; an event caused by another inherits its correlation id."""
        event_id = uuid7()
        if correlation_id is None:
            correlation_id = cause.correlation_id if cause is not None else event_id
        return envelope_model(type(payload))(  # the cached class: Envelope[...] looks it up anew
            event_id=event_id,
            event_type=payload.event_type,
            schema_version=payload.version,
            occurred_at=clock.now(),
            account=account,
            correlation_id=correlation_id,
            causation_id=cause.event_id if cause is not None else None,
            producer=producer,
            payload=payload,
        )

    @property
    def topic(self) -> str:
        return self.payload.topic

    @property
    def as_sent(self) -> Event:
        """The payload in the version the producer wrote (``payload`` is read as the newest)."""
        return self._as_sent if self._as_sent is not None else self.payload

    def previous_versions(self) -> list[Envelope[Any]]:
        """The older versions of this event still published beside it: each its own event id
        and ``copy_of`` this one (a consumer takes the version it reads and leaves the other)."""
        return [
            self._with(old, event_id=uuid7(), causation_id=self.event_id, copy_of=self.event_id)
            for old in self.payload.previous_versions()
        ]

    def in_version(self, version: int) -> Envelope[Any]:
        """This event (same id) written in an older ``version``, published alone: what a producer
        sends while some consumers still read only that version (see docs/events.md)."""
        if version == self.schema_version:
            return self
        old = next((p for p in self.payload.previous_versions() if p.version == version), None)
        if old is None or (old.event_type, version) not in UPCASTERS:
            raise ValueError(f"{self.event_type} cannot be published alone in version {version}")
        return self._with(old)

    def _with(self, payload: Event, **changes: Any) -> Envelope[Any]:
        """This envelope around another version of its payload. Built without validating again:
        every part comes from validated models (this envelope, the payload) or is made of the
        right type (a new event id), and a day close makes one per charge."""
        fields = {name: getattr(self, name) for name in type(self).model_fields if name != "payload"}
        return envelope_model(type(payload)).model_construct(
            **{**fields, **changes, "event_type": payload.event_type, "schema_version": payload.version},
            payload=payload,
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    def kafka_headers(self) -> dict[str, str]:
        """Headers that let a consumer route or filter without parsing the body."""
        headers = {
            "event_type": self.event_type,
            "schema_version": str(self.schema_version),
            "correlation_id": str(self.correlation_id),
        }
        if self.copy_of is not None:
            headers["copy_of"] = str(self.copy_of)
        return headers


class InvalidEvent(ValueError):
    """A message that cannot be read as a known event: the reason goes to the dead letter."""

    def __init__(self, message: str, code: str = RefusalCode.INVALID_ENVELOPE) -> None:
        super().__init__(message)
        self.code = code


@cache
def envelope_model(event_cls: type[Event]) -> type[Envelope[Any]]:
    return Envelope[event_cls]  # type: ignore[valid-type]


def decode(raw: bytes | str) -> Envelope[Any]:
    """Validate bytes from the broker into a typed envelope, or raise :class:`InvalidEvent`."""
    try:
        data = from_json(raw)  # pydantic's parser: a third of json.loads's time on an envelope
    except ValueError as exc:
        if "recursion limit" in str(exc):
            raise InvalidEvent("not JSON: nested too deeply to read", RefusalCode.UNREADABLE) from None
        raise InvalidEvent(f"not JSON: {exc}", RefusalCode.UNREADABLE) from None
    return decode_object(data)


def decode_object(data: Any) -> Envelope[Any]:
    """Validate parsed JSON (an API's answer) into a typed envelope, or raise :class:`InvalidEvent`."""
    if not isinstance(data, dict):
        raise InvalidEvent("not a JSON object", RefusalCode.UNREADABLE)
    event_type, version = data.get("event_type"), data.get("schema_version")
    if not isinstance(event_type, str) or not isinstance(version, int):
        raise InvalidEvent("missing or malformed event_type / schema_version")
    event_cls = REGISTRY.get((event_type, version))
    if event_cls is None:
        known = sorted(v for (t, v) in REGISTRY if t == event_type)
        if known:
            raise InvalidEvent(f"unknown version {version} of {event_type}; known: {known}",
                               RefusalCode.UNSUPPORTED_VERSION)
        raise InvalidEvent(f"unknown event type {event_type!r}", RefusalCode.UNKNOWN_EVENT_TYPE)
    try:
        envelope = envelope_model(event_cls).model_validate(data)
    except ValidationError as exc:
        in_payload = all(err["loc"][:1] == ("payload",) for err in exc.errors())
        code = RefusalCode.INVALID_PAYLOAD if in_payload else RefusalCode.INVALID_ENVELOPE
        raise InvalidEvent(describe_validation_error(exc), code) from None
    if envelope.copy_of is not None and (event_type, version + 1) not in REGISTRY:
        # A copy is an older version published beside the newest one: a copy in the newest version
        # (or of a type that has no other) copies nothing, and skipping it would lose a fact unseen.
        raise InvalidEvent(f"copy_of {envelope.copy_of} on {event_type} v{version}, its newest version:"
                           " only an older version is published as a copy", RefusalCode.INVALID_COPY)
    return upcast(envelope)


Upcaster = Callable[[Any], Event]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""(event type, version) -> the function reading that version as the next one."""


def upcaster(function: Upcaster) -> Upcaster:
    """Register ``function(old: <Type v N>) -> <Type v N+1>``: one step, named by its annotations."""
    hints = typing.get_type_hints(function)
    old, new = hints["old"], hints["return"]
    if (old.event_type, old.version + 1) != (new.event_type, new.version):
        raise TypeError(f"an upcaster takes one step: {old.__name__} -> {new.__name__}")
    UPCASTERS[(old.event_type, old.version)] = function
    return function


def upcast(envelope: Envelope[Any]) -> Envelope[Any]:
    """The envelope read as the newest version of its event (itself when it is the newest)."""
    payload = envelope.payload
    try:
        while (step := UPCASTERS.get((payload.event_type, payload.version))) is not None:
            payload = step(payload)
    except ValueError as exc:
        raise InvalidEvent(f"payload: cannot be read as {payload.event_type} v{payload.version + 1}: {exc}",
                           RefusalCode.INVALID_PAYLOAD) from None
    if payload is envelope.payload:
        return envelope
    newest = envelope._with(payload)
    newest._as_sent = envelope.payload
    return newest


def describe_validation_error(exc: ValidationError) -> str:
    """One line per field, without the input values (they may hold personal data)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}" for err in exc.errors()
    )


def event_class(event_type: str, version: int | None = None) -> type[Event]:
    if version is None:
        version = max(v for (t, v) in REGISTRY if t == event_type)
    return REGISTRY[(event_type, version)]


def is_current(envelope: Envelope[Any]) -> bool:
    """Is this the event itself, not an older version published beside it (``copy_of``) that
    says the same fact again?"""
    return envelope.copy_of is None


__all__ = [
    "REGISTRY",
    "Envelope",
    "Event",
    "InvalidEvent",
    "decode",
    "decode_object",
    "describe_validation_error",
    "envelope_model",
    "event_class",
    "is_current",
    "upcast",
    "upcaster",
]

# Every event type (and upcaster) registers on import: a reader of the envelope knows them all.
from billing_contracts import catalog as _catalog  # noqa: E402, F401
