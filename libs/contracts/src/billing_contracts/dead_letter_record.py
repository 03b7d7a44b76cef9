"""The message on a dead-letter topic (``billing.<consumer>.dlq``): published as a JSON Schema
beside the events (``billing_contracts/schemas/DeadLetter.v1.json``), so an outsider reading one knows
its shape."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Source(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


class DeadLetterRecord(BaseModel):
    """A message a consumer refused: why, where it was, and its original bytes."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: ClassVar[str] = "DeadLetter"
    version: ClassVar[int] = 1

    consumer: str = Field(description="The service that refused the message (also the topic's owner)")
    code: str = Field(description="Machine code of the refusal (docs/events.md, \"Dead letters and their codes\")")
    reason: str = Field(description="The refusal in a sentence for people")
    source: Source = Field(description="Where the refused message was read")
    key: str | None = Field(description="The refused message's key, as text (at most 64 characters)")
    event_id: UUID | None = Field(description="The refused event's id, when it could be read")
    event_type: str | None = Field(description="The refused event's type, when it could be read")
    original_base64: str = Field(description="The original bytes (base64), cut at original_truncated")
    original_size: int = Field(ge=0, description="Length of the original in bytes")
    original_truncated: bool = Field(description="True when only the beginning is carried: the first 256 KiB, or"
                                               " less of a message refused as too_large")
    dead_lettered_at: AwareDatetime
