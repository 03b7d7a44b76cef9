"""The notifier process: wires the store, the handlers, the delivery loop and the runtime."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

import httpx
from billing_contracts import topics
from billing_contracts.catalog.notifier import DeliveryChannel
from billing_events.clock import Clock
from billing_events.runtime import ServiceRuntime, run

from notifier import handlers, store
from notifier.channels import FileChannel, HttpSmsChannel, SmtpChannel
from notifier.crypto import SealOpener
from notifier.delivery import Deliverer
from notifier.domain import Channel, RandomSource
from notifier.rendering import Renderer
from notifier.context import NotifierContext, OpenChannels
from notifier.settings import NotifierSettings

if TYPE_CHECKING:
    from fastapi import APIRouter

CONSUMES = (topics.IDENTITY, topics.LEDGER, topics.TARIFF)


def _api(ctx: NotifierContext) -> APIRouter:
    from notifier.http import build_router  # the framework and the token checks: where the API is served

    return build_router(ctx)


def channel_factory(settings: NotifierSettings) -> OpenChannels:
    """Opens the configured gateways when the delivery loop starts; the stack closes them."""

    async def open_channels(stack: contextlib.AsyncExitStack) -> Mapping[DeliveryChannel, Channel]:
        file_channel = FileChannel(settings.resolved_file_channel_path(), production=settings.production)
        sms: Channel = file_channel
        email: Channel = file_channel
        if settings.sms_channel == "http_sms":
            gateway = settings.sms_gateway
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=gateway.timeout_seconds))
            sms = HttpSmsChannel(url=gateway.url, api_token=gateway.api_token.get_secret_value(), client=client,
                                 sender=gateway.sender)
        if settings.email_channel == "smtp":
            smtp = settings.smtp
            password = smtp.password.get_secret_value() if smtp.password is not None else None
            email = SmtpChannel(host=smtp.host, port=smtp.port, sender=smtp.sender, username=smtp.username,
                                password=password, tls=smtp.tls, timeout=smtp.timeout_seconds)
        return {DeliveryChannel.SMS: sms, DeliveryChannel.EMAIL: email}

    return open_channels


def build(
    settings: NotifierSettings | None = None, clock: Clock | None = None, *, rng: RandomSource | None = None
) -> tuple[ServiceRuntime, NotifierContext]:
    """The notifier process, and the one context its consumer, HTTP door and delivery loop share."""
    settings = settings or NotifierSettings()  # type: ignore[call-arg]  (the key comes from the environment)
    clock = clock or settings.clock()
    runtime = ServiceRuntime(settings=settings, clock=clock, metadata=store.metadata, migrated=True,
                             consumes=CONSUMES)
    ctx = NotifierContext(
        db=runtime.db, clock=clock, topics=runtime.topics, wake_relay=runtime.relay.wake,
        opener=SealOpener.from_base64(settings.notifier_private_key.get_secret_value()),
        channels=channel_factory(settings),
        renderer=Renderer(settings.default_language), retry_policy=settings.retry_policy(),
        low_balance_thresholds=settings.low_balance_thresholds,
    )
    runtime.attach_handler(handlers.router(ctx))
    runtime.include_api(partial(_api, ctx))
    deliverer = Deliverer(
        ctx, rng=rng, batch_size=settings.delivery_batch_size,
        concurrency=settings.delivery_concurrency, poll_interval=settings.delivery_poll_seconds,
        lease=timedelta(seconds=settings.delivery_lease_seconds),
    )
    runtime.background.append(deliverer.run)
    runtime.after_commit(deliverer.wake)  # deliver right after a consumed batch commits
    return runtime, ctx


def build_runtime(settings: NotifierSettings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return build(settings, clock)[0]


def main() -> None:
    run(build_runtime)
