"""Keys, a sample subscriber and event builders shared by the notifier's tests.

Offered as fixtures rather than importable helpers, so the tests work in any pytest import mode.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from billing_events.catalog.ledger import BalanceChanged, PaymentType
from billing_events.money import Money
from nacl.encoding import Base64Encoder
from nacl.public import PrivateKey, SealedBox
from notifier.domain import Destination, SealOpener, SubscriberProfile


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
    ) -> BalanceChanged:
        return BalanceChanged(
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
