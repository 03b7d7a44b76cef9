"""What a consumer does with an event older than the view it keeps of another service's account
(:mod:`billing_contracts.versions`): nothing but count it and say so."""

from __future__ import annotations

from typing import Any

from billing_contracts.envelope import Envelope
from billing_events import metrics
from billing_events.logging import get_logger

log = get_logger(__name__)


def ignore_not_newer(service: str, envelope: Envelope[Any], *, held: int | None) -> None:
    """Count and log an event whose ``account_version`` is not newer than the view's ``held``."""
    metrics.VIEW_EVENTS_NOT_NEWER.labels(service, envelope.event_type).inc()
    log.info("event not newer than the view: ignored", account=envelope.account,
             account_version=getattr(envelope.payload, "account_version", None), view_version=held)
