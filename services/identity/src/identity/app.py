"""The identity process: wires the store, the handlers and the shared runtime together.

Identity consumes the ledger's topic for AccountClosed (:mod:`identity.handlers`); its commands
arrive through :mod:`identity.service` (tests, the CLI) and :mod:`identity.http` (when
``BILLING_HTTP_PORT`` is set); it publishes SubscriberRegistered,
PasswordIssued, ResetCodeRedeemed, PasswordReplaced, LoginLocked and AccessRestoredBySupport, and from
the subscriber's cabinet PasswordChanged, ContactCodeIssued, ContactChanged, LanguageChanged and
NoticePreferencesChanged.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from billing_contracts import topics
from billing_events.clock import Clock
from billing_events.runtime import ServiceRuntime, run

from identity import handlers, store
from identity.context import HashGate, IdentityContext, personal_data_vault, secret_hasher
from identity.settings import IdentitySettings

if TYPE_CHECKING:
    from fastapi import APIRouter

CONSUMES = (topics.LEDGER,)


def _api(ctx: IdentityContext, runtime: ServiceRuntime) -> APIRouter:
    from identity.http import build_router  # the framework and the token library: where the API is served

    return build_router(ctx, runtime.tokens)


def build(
    settings: IdentitySettings | None = None, clock: Clock | None = None
) -> tuple[ServiceRuntime, IdentityContext]:
    """The identity process, and the one context its commands run with (HTTP door or in-process)."""
    settings = settings or IdentitySettings()  # type: ignore[call-arg]  (secrets from the environment)
    clock = clock or settings.clock()
    runtime = ServiceRuntime(settings=settings, clock=clock, metadata=store.metadata, migrated=True,
                             consumes=CONSUMES)
    ctx = IdentityContext(
        db=runtime.db, clock=clock, topics=runtime.topics, wake_relay=runtime.relay.wake,
        settings=settings, vault=personal_data_vault(settings), hasher=secret_hasher(settings.hashing),
        gate=HashGate(concurrency=settings.hash_concurrency, queue=settings.hash_queue),
    )
    runtime.attach_handler(handlers.router(ctx))
    runtime.include_api(partial(_api, ctx, runtime))
    return runtime, ctx


def build_runtime(settings: IdentitySettings | None = None, clock: Clock | None = None) -> ServiceRuntime:
    return build(settings, clock)[0]


def main() -> None:
    run(build_runtime)
