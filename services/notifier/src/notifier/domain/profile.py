"""Where messages go: the subscriber's profile (language and where to write) and the clear
contact details and secrets, as opened from what identity sealed."""

from __future__ import annotations

from dataclasses import dataclass, field

from billing_contracts.catalog.identity import NoticeKind, SubscriberRegistered
from billing_contracts.catalog.notifier import DeliveryChannel

from notifier.domain.errors import ErrorCode, NotifierError
from notifier.domain.ports import Unsealer


@dataclass(frozen=True)
class Destination:
    """A phone number or e-mail address with its masked form.

    Printing it (in a log line, an exception, a repr) shows only the masked form.
    """

    address: str = field(repr=False)
    masked: str

    def __str__(self) -> str:
        return self.masked


@dataclass(frozen=True)
class Contact:
    """Clear contact details, as unsealed from SubscriberRegistered."""

    phone: str = field(repr=False)
    email: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class IssuedSecret:
    """A password or one-time code and where it must go, as unsealed from PasswordIssued."""

    secret: str = field(repr=False)
    destination: str = field(repr=False)


@dataclass(frozen=True)
class SubscriberProfile:
    """The notifier's own copy of what it needs to write to a subscriber."""

    account_number: str
    language: str
    phone: Destination
    email: Destination | None = None
    notify_by: DeliveryChannel = DeliveryChannel.SMS
    notices_off: frozenset[NoticeKind] = frozenset()
    """The notices the subscriber turned off (NoticePreferencesChanged)."""

    def __post_init__(self) -> None:
        if self.notify_by is DeliveryChannel.EMAIL and self.email is None:
            raise NotifierError(
                ErrorCode.NO_EMAIL, "notices by e-mail need an e-mail address", field="notify_by"
            )

    @property
    def notice_destination(self) -> Destination:
        if self.notify_by is DeliveryChannel.EMAIL:
            assert self.email is not None  # guaranteed by __post_init__
            return self.email
        return self.phone


def profile_from_registration(registered: SubscriberRegistered, opener: Unsealer) -> SubscriberProfile:
    contact = opener.contact(registered.sealed_contact)
    email = None
    if contact.email is not None:
        if registered.masked_email is None:
            raise NotifierError(
                ErrorCode.UNMASKED_EMAIL,
                "sealed contact has an e-mail but the event no masked form",
                field="masked_email",
            )
        email = Destination(contact.email, registered.masked_email)
    return SubscriberProfile(
        account_number=registered.account_number,
        language=registered.language,
        phone=Destination(contact.phone, registered.masked_phone),
        email=email,
    )
