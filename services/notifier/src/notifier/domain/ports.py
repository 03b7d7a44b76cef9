"""What the rules need from outside, as small interfaces: the shell provides them
(:mod:`notifier.crypto` opens sealed texts, :mod:`notifier.channels` reaches the gateways)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from notifier.domain.templates import Message

if TYPE_CHECKING:  # the profile's values name these ports in turn
    from notifier.domain.profile import Contact, Destination, IssuedSecret


class Unsealer(Protocol):
    """Opens what identity sealed for the notifier, or raises a ``NotifierError``
    (``unseal_failed``) naming the field, never the clear text."""

    def contact(self, sealed: str) -> Contact: ...

    def secret(self, sealed: str) -> IssuedSecret: ...


class Channel(Protocol):
    """A gateway that delivers one message, or raises ``notifier.channels.DeliveryError``."""

    async def send(self, destination: Destination, message: Message) -> None: ...
