"""The identity process: wires the store, the handlers and the shared runtime together.

Identity consumes no topic (yet): its commands arrive through :mod:`identity.service` (tests,
the CLI) and :mod:`identity.http` (when ``BILLING_HTTP_PORT`` is set); it publishes SubscriberRegistered,
PasswordIssued, ResetCodeRedeemed, PasswordReplaced, LoginLocked and AccessRestoredBySupport.
"""

from __future__ import annotations

from billing_events.clock import Clock
from billing_events.runtime import ServiceRuntime, run

from identity import store
from identity.http import RuntimeHolder, build_router
from identity.settings import IdentitySettings


def build_runtime(
    settings: IdentitySettings | None = None, clock: Clock | None = None
) -> ServiceRuntime:
    holder = RuntimeHolder()
    settings = settings or IdentitySettings()  # type: ignore[call-arg]  (secrets from the environment)
    runtime = ServiceRuntime(
        settings=settings,
        clock=clock or settings.clock(),
        metadata=store.metadata, migrated=True,
        routers=[build_router(holder)],
    )
    holder.runtime = runtime
    return runtime


def main() -> None:
    run(build_runtime)
