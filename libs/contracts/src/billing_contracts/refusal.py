"""Why a message or a request was not taken: a code for machines and a sentence for people.

The plumbing's own codes are below; services add theirs (the ledger's ``unknown_account``, the
tariff's ``unknown_region``...). A dead letter keeps both, and so do the dead-letter topic's
message and headers, so operations can count and filter refusals without parsing sentences.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RefusalCode(StrEnum):
    """Refusals of the consumer plumbing itself, before or around a service's own rules."""

    UNREADABLE = "unreadable"
    INVALID_ENVELOPE = "invalid_envelope"
    INVALID_PAYLOAD = "invalid_payload"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    KEY_MISMATCH = "key_mismatch"
    WRONG_TOPIC = "wrong_topic"
    BAD_SIGNATURE = "bad_signature"
    INVALID_COPY = "invalid_copy"
    TOO_LARGE = "too_large"
    CONFLICTING_EVENT_ID = "conflicting_event_id"
    HANDLER_FAILED = "handler_failed"
    REJECTED = "rejected"


MEANING: dict[RefusalCode, str] = {
    RefusalCode.UNREADABLE: "not a JSON object: bytes, truncated or too deeply nested JSON, an array, a number",
    RefusalCode.INVALID_ENVELOPE: "a JSON object, but an envelope field is missing or malformed",
    RefusalCode.INVALID_PAYLOAD: "a known event type whose payload does not match its schema",
    RefusalCode.UNKNOWN_EVENT_TYPE: "an event type the catalog does not know",
    RefusalCode.UNSUPPORTED_VERSION: "a known event type at a schema version the catalog does not know",
    RefusalCode.KEY_MISMATCH: "the message key is not the envelope's account (per-account order would not hold)",
    RefusalCode.WRONG_TOPIC: "an event type the catalog does not list for the topic, or a producer other than"
                             " the owner of a topic its owner alone writes",
    RefusalCode.BAD_SIGNATURE: "no signature, a signature that does not match the record, a key the consumer does"
                               " not list, or a key of another producer than the envelope names",
    RefusalCode.INVALID_COPY: "`copy_of` on the newest version of its event type: only an older version is"
                              " published as a copy, so this one would be skipped unseen",
    RefusalCode.TOO_LARGE: "a message over the consumers' size limit (`BILLING_MAX_MESSAGE_BYTES`), or an envelope"
                           " field over its length: kept cut short, its original size in the reason",
    RefusalCode.CONFLICTING_EVENT_ID: "an event id already taken with another payload: the first one stands",
    RefusalCode.HANDLER_FAILED: "the service failed on the event without naming a rule (a bug, a database limit)",
    RefusalCode.REJECTED: "a service refused the event without a code of its own",
}


@dataclass(frozen=True)
class Refusal:
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
