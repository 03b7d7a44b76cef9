"""The card acquirer, as the ledger's card door meets it: where the subscriber pays, and the proof
its callbacks carry.

A callback is a JSON body the acquirer signs with the secret it shares with the ledger:
HMAC-SHA256 over the raw body, hex, in the ``X-Acquirer-Signature`` header as ``sha256=<hex>``.
The body says which intent, approved or declined, the amount, the acquirer's own reference and
when it was sent; being signed, the time cannot be moved, so a captured callback replayed later
is refused (``stale_callback``) however good its signature.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlencode
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from billing_contracts.money import PositiveMoney

from ledger.domain import CommandRefused, ErrorCode
from ledger.domain.card import Callback, CardIntent, Verdict

SIGNATURE_HEADER = "X-Acquirer-Signature"
SIGNATURE_SCHEME = "sha256="
DEVELOPMENT_CALLBACK_SECRET = "development-card-callback-secret-published-in-the-repository"
"""What signs callbacks under `make run` when no secret is set: it is published here, so
production refuses to start with it (anyone could approve a payment)."""
DEVELOPMENT_PAGE = "/ledger/dev-acquirer/{intent_id}"


class CallbackBody(BaseModel):
    """The acquirer's callback as it is signed (the bytes are verified before this is read)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intent_id: UUID
    verdict: Literal["approved", "declined"]
    amount: PositiveMoney
    reference: str = Field(min_length=1, max_length=64, description="The acquirer's reference of the payment")
    sent_at: AwareDatetime

    def callback(self) -> Callback:
        return Callback(intent_id=self.intent_id, verdict=Verdict(self.verdict), amount=self.amount,
                        reference=self.reference, sent_at=self.sent_at)


@dataclass(frozen=True)
class Acquirer:
    """The acquirer the ledger works with: its payment page and the secret shared with it."""

    secret: bytes
    page_url: str | None
    """The acquirer's payment page; None: the ledger's development page stands in."""
    return_url: str | None = None
    """Where the development page sends the subscriber back ({intent_id} replaced); None: nowhere."""

    def signature(self, body: bytes) -> str:
        return SIGNATURE_SCHEME + hmac.new(self.secret, body, hashlib.sha256).hexdigest()

    def verified(self, body: bytes, signature: str | None) -> Callback:
        """The callback ``body`` says, once ``signature`` proves the acquirer sent these very bytes."""
        if signature is None or not hmac.compare_digest(self.signature(body).encode(), signature.strip().encode()):
            raise CommandRefused(ErrorCode.BAD_CALLBACK_SIGNATURE,
                                 "the callback's signature does not prove it comes from the acquirer")
        try:
            return CallbackBody.model_validate_json(body).callback()
        except ValidationError:
            # Signed by the acquirer yet not readable: a broken integration, not an input to correct here.
            raise CommandRefused(ErrorCode.MALFORMED_CALLBACK, "the callback's body is not one the ledger reads") from None

    def pay_url(self, intent: CardIntent) -> str:
        """Where the cabinet sends the subscriber to pay ``intent``."""
        if self.page_url is None:
            return DEVELOPMENT_PAGE.format(intent_id=intent.intent_id)
        query = urlencode({"intent": str(intent.intent_id), "amount": intent.amount.minor,
                           "currency": intent.amount.currency})
        return f"{self.page_url}{'&' if '?' in self.page_url else '?'}{query}"

    def back_to_shop(self, intent: CardIntent) -> str | None:
        """Where the development page sends the subscriber once paid or declined: the configured
        address with the intent's id, never one a request names (no open redirect)."""
        return None if self.return_url is None else self.return_url.replace("{intent_id}", str(intent.intent_id))


def callback_body(intent: CardIntent, verdict: Verdict, reference: str, sent_at: datetime) -> bytes:
    """A callback's body as the acquirer sends it (the development page's, and the tests')."""
    return CallbackBody(intent_id=intent.intent_id, verdict=verdict.value, amount=intent.amount,
                        reference=reference, sent_at=sent_at).model_dump_json().encode()
