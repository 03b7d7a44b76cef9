"""What the notifier's handlers, delivery loop and HTTP reads need from their process, built
once in :mod:`notifier.app`."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from billing_contracts.catalog.notifier import DeliveryChannel
from billing_contracts.money import Money
from billing_events.service import ServiceContext

from notifier.domain import Channel, RetryPolicy, Unsealer
from notifier.rendering import LANGUAGES, Renderer

OpenChannels = Callable[[contextlib.AsyncExitStack], Awaitable[Mapping[DeliveryChannel, Channel]]]
"""Opens the gateways, one per kind of message, for as long as the stack lives."""


@dataclass(frozen=True, kw_only=True)
class NotifierContext(ServiceContext):
    """What the notifier's handlers and delivery loop need, built once in ``app.py``."""

    producer: str = "notifier"
    opener: Unsealer
    """Opens the contacts and secrets identity sealed for the notifier."""
    channels: OpenChannels
    renderer: Renderer
    retry_policy: RetryPolicy
    low_balance_thresholds: Mapping[str, int]
    """Per currency, in minor units: below this the subscriber is told once per fall."""

    def low_balance_threshold(self, currency: str) -> Money:
        """The threshold in the account's currency (zero where none is configured: never told)."""
        return Money(minor=self.low_balance_thresholds.get(currency, 0), currency=currency)

    def language(self, language: str) -> str:
        """The subscriber's language if there are templates in it, else the default one."""
        return language if language in LANGUAGES else self.renderer.default_language
