"""The cabinet's overview page against the service calls it makes, with N subscribers at once.

The four services run in the bench's process, each built by its own ``build(settings, clock)``
on a fresh PostgreSQL database and the bench's broker, serving its HTTP API on a free port, under
one manual clock (as tests/flows runs them); the cabinet (``billing_cabinet.app.build``) is served
by uvicorn on a loopback socket in the same process. N subscribers register on the site (each
from an address of its own, as N people would), take the password their SMS brought (the
notifier's development file channel), pay 1,000.00 RUB at a terminal, choose a plan, and wait
until the ledger has the payment and the tariff the balance; each signs in to the cabinet with
the sign-in form (its CSRF token, a cookie session of its own).

Each subscriber's first overview is opened alone while the cabinet's transport notes the calls
the page makes, so the reference is the page's own calls, whatever the page asks. Then two
phases of ``rounds`` rounds, N subscribers at once, each after one untimed round (the
connections the concurrency needs open first):

- **pages**: each subscriber GETs its ``/a/<account>`` again and again;
- **calls**: each subscriber makes the calls its overview made, all at once, directly to the
  services with a token of its own, through one pooled client as the cabinet's (httpx's default
  pool). Each call's time is kept under its route; the slowest route's p95 is the reference.
  (The region's plan names come from the cabinet's copy of the public catalog, filled before the
  overviews are noted and kept for the run.)

Times are the client's, in the same process: from sending the request to the whole response
read. The clients, the cabinet and the services share one event loop, so a page's time includes
waiting for the loop, as a call's does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

import httpx
import structlog
import uvicorn

from billing_cabinet.app import build as build_cabinet
from billing_cabinet.settings import CabinetSettings
from billing_contracts import topics
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.envelope import Envelope
from billing_events.clock import ManualClock
from billing_events.runtime import ServiceRuntime
from billing_events.sealing import generate_keypair
from billing_events.settings import KafkaSettings
from billing_events.testing import signing
from billing_events.testing.file_channel import sent_messages, sent_secrets
from billing_events.testing.kafka_probe import RawProducer
from billing_events.testing.plugin import TEST_TOKEN_PRIVATE_KEY, TEST_TOKEN_PUBLIC_KEY, eventually
from identity.app import build as build_identity
from identity.security import new_key
from identity.settings import IdentitySettings
from ledger.app import build as build_ledger
from ledger.settings import LedgerSettings
from notifier.app import build as build_notifier
from notifier.settings import NotifierSettings
from tariff.app import build as build_tariff
from tariff.settings import TariffSettings

from bench.infra import Broker, Databases

START = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)  # 09:00 in Moscow, where billing days are counted
FORM = json.loads((Path(__file__).parents[1] / "docs" / "examples" / "registration.json").read_text(encoding="utf-8"))
PLAN = "internet-100"
PAID = 100_000  # 1,000.00 RUB: the plan's first days and more
SETTING_UP = 8
"""Subscribers set up at once: identity hashes two passwords at a time and queues 16 more
(``hash_concurrency``, ``hash_queue``); a registration and two sign-ins hash one each."""
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
ADDRESS_HEADER = "X-Forwarded-For"


@dataclass
class Subscriber:
    account: str
    token: str
    """A sign-in of its own at identity (the plan, and the direct calls), beside the cabinet's."""
    browser: httpx.AsyncClient
    """Its cookie session at the cabinet."""
    calls: list[tuple[str, str]] = field(default_factory=list)
    """The requests (method, URL) the cabinet made to the services for its overview."""

    def route(self, method: str, url: str) -> str:
        """A call's name, the same for every subscriber: ``GET /ledger/accounts/{account}``."""
        return f"{method} {urlsplit(url).path.replace(self.account, '{account}')}"


class NotingTransport(httpx.AsyncBaseTransport):
    """The cabinet's transport to the services (httpx's own, default pool), noting each request
    in ``noted`` while it is a list."""

    def __init__(self) -> None:
        self._transport = httpx.AsyncHTTPTransport()
        self.noted: list[tuple[str, str]] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.noted is not None:
            self.noted.append((request.method, str(request.url)))
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._transport.aclose()


@asynccontextmanager
async def services(broker: Broker, databases: Databases, data_dir: Path,
                   clock: ManualClock) -> AsyncIterator[dict[str, ServiceRuntime]]:
    """The four services in this process, each on a database of its own and a free port."""
    # The embedded broker makes a group's first join wait half the session timeout: keep it short.
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, topic_prefix=f"bench{uuid4().hex[:8]}.",
                          session_timeout_ms=2000, heartbeat_interval_ms=300, closed_network=True)
    notifier_public, notifier_private = generate_keypair()
    own = {
        "identity": (IdentitySettings, build_identity, {
            "token_private_key": TEST_TOKEN_PRIVATE_KEY, "notifier_public_key": notifier_public,
            "pii_lookup_key": new_key(), "pii_encryption_key": new_key(), "hashing_profile": "fast",
            "client_address_header": ADDRESS_HEADER}),
        "ledger": (LedgerSettings, build_ledger, {}),  # the packaged bonus campaigns, as `make run` has them
        "tariff": (TariffSettings, build_tariff, {"billing_clock_enabled": False}),
        "notifier": (NotifierSettings, build_notifier, {"notifier_private_key": notifier_private,
                                                         "default_language": "ru"}),
    }
    urls: list[str] = []
    try:
        async with AsyncExitStack() as stack:
            runtimes = {}
            for name, (settings_class, build, settings) in own.items():
                urls.append(await databases.create(f"cabinet_{name}"))
                runtime, _context = build(settings_class(
                    database_url=urls[-1], kafka=kafka, data_dir=data_dir, http_port=0,
                    token_public_keys=[TEST_TOKEN_PUBLIC_KEY], **signing.settings_values(name), **settings), clock)
                runtimes[name] = await stack.enter_async_context(runtime)
            yield runtimes
    finally:
        for url in urls:
            await databases.drop(url)


@contextmanager
def services_say_only_warnings() -> Iterator[None]:
    """The services' info lines (a dozen for each subscriber set up) kept out of the bench's
    output; the structlog configuration before comes back after."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        yield
    finally:
        structlog.configure(**saved)


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """``app`` served by uvicorn on a loopback socket; its address."""
    listening = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, access_log=False, log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        await eventually(lambda: server.started or task.done(), what="the cabinet listening")
        if task.done():
            await task  # its failure, said
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        listening.close()


def registration(index: int) -> dict[str, Any]:
    """The form of the ``index``-th person: their own passport, phone and e-mail."""
    return {**FORM, "passport_number": f"{100_000 + index:06d}", "email": f"subscriber{index}@example.ru",
            "mobile_phone": f"+7 916 5{index // 10_000:02d}-{index // 100 % 100:02d}-{index % 100:02d}"}


async def sign_up(index: int, browser: httpx.AsyncClient, urls: dict[str, str], runtimes: dict[str, ServiceRuntime],
                  producer: RawProducer, clock: ManualClock) -> Subscriber:
    """A subscriber with a payment and a plan, signed in to the cabinet with ``browser``."""
    address = {ADDRESS_HEADER: f"10.0.{index // 256}.{index % 256}"}
    channel = Path(runtimes["notifier"].settings.resolved_file_channel_path())
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(f"{urls['identity']}/identity/registrations", json=registration(index),
                                 headers=address)
        expect(answer, 201)
        account = answer.json()["account_number"]
        password = (await eventually(lambda: sent_secrets(sent_messages(channel), "sms", account),
                                     what=f"the password of {account} by SMS"))[-1]
        answer = await http.post(f"{urls['identity']}/identity/login", json={"login": account, "password": password},
                                 headers=address)
        expect(answer, 200)
        token = answer.json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}

        async def answers(url: str, holds: Callable[[Any], bool] = lambda _: True) -> bool:
            got = await http.get(url, headers=bearer)
            return got.status_code == 200 and holds(got.json())

        ledger, tariff = f"{urls['ledger']}/ledger/accounts/{account}", f"{urls['tariff']}/tariff/accounts/{account}"
        await eventually(lambda: answers(ledger), what=f"the ledger opening {account}")
        await eventually(lambda: answers(tariff), what=f"the tariff knowing {account}")
        payment = PaymentReceived.model_validate({
            "account_number": account, "channel": "terminal", "reference": f"T-{account}",
            "amount": {"minor": PAID, "currency": "RUB"}, "received_at": clock.now()})
        await producer.send(runtimes["ledger"].topics(topics.PAYMENTS),
                            Envelope.new(payment, account=account, producer=payment.channel, clock=clock))
        await eventually(lambda: answers(ledger, lambda balance: balance["main"]["minor"] == PAID),
                         what=f"the payment on {account}")
        expect(await http.post(f"{tariff}/plan", json={"plan": PLAN}, headers=bearer), 200)
        await eventually(lambda: answers(f"{tariff}/forecast", lambda forecast: forecast["available"]["minor"] == PAID),
                         what=f"the tariff knowing the balance of {account}")
    form = CSRF.search((await browser.get("/sign-in")).text)
    if form is None:
        raise RuntimeError("the cabinet's sign-in page has no CSRF token")
    answer = await browser.post("/sign-in", data={"csrf": form.group(1), "login": account, "password": password})
    if answer.status_code != 303 or answer.headers["location"] != f"/a/{account}":
        raise RuntimeError(f"the cabinet's sign-in of {account} answered {answer.status_code}: {answer.text[:300]}")
    return Subscriber(account, token, browser)


def expect(answer: httpx.Response, status: int) -> None:
    if answer.status_code != status:
        raise RuntimeError(f"{answer.request.method} {answer.request.url} answered {answer.status_code}, not {status}:"
                           f" {answer.text[:300]}")


async def time_pages(subscriber: Subscriber, rounds: int) -> list[float]:
    """Seconds of each overview the subscriber opened, one round after an untimed one."""
    seconds = []
    for _ in range(rounds + 1):
        started = time.perf_counter()
        answer = await subscriber.browser.get(f"/a/{subscriber.account}")
        seconds.append(time.perf_counter() - started)
        expect(answer, 200)
    return seconds[1:]


async def time_calls(subscriber: Subscriber, rounds: int,
                     http: httpx.AsyncClient) -> tuple[dict[str, list[float]], list[float]]:
    """Seconds of each call of the subscriber's overview, made directly and all at once, per
    route; and of each round's calls together. One round after an untimed one."""
    headers = {"Accept": "application/json", "Authorization": f"Bearer {subscriber.token}"}  # as the cabinet sends

    async def timed(method: str, url: str) -> float:
        started = time.perf_counter()
        answer = await http.request(method, url, headers=headers)
        seconds = time.perf_counter() - started
        expect(answer, 200)
        return seconds

    by_route: dict[str, list[float]] = defaultdict(list)
    together = []
    for round_ in range(rounds + 1):
        started = time.perf_counter()
        seconds = await asyncio.gather(*(timed(method, url) for method, url in subscriber.calls))
        if round_:
            together.append(time.perf_counter() - started)
            for (method, url), one in zip(subscriber.calls, seconds):
                by_route[subscriber.route(method, url)].append(one)
    return by_route, together


def percentile_ms(seconds: list[float], fraction: float) -> float:
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000


async def run(broker: Broker, databases: Databases, *, subscribers: int, rounds: int,
              say: Callable[[str], None]) -> dict[str, Any]:
    clock = ManualClock(START)
    with services_say_only_warnings(), tempfile.TemporaryDirectory(prefix="bench-cabinet-") as data_dir:
        async with (services(broker, databases, Path(data_dir), clock) as runtimes,
                    RawProducer(broker.bootstrap) as producer, AsyncExitStack() as browsers):
            urls = {name: f"http://127.0.0.1:{runtime.http_port}" for name, runtime in runtimes.items()}
            transport = NotingTransport()
            # The region's plans are kept for the whole run: the page in its steady state, whose
            # own calls are the subscriber's (the catalog's answer is everyone's, kept a minute).
            settings = CabinetSettings(port=0, identity_url=urls["identity"], ledger_url=urls["ledger"],
                                       tariff_url=urls["tariff"], notifier_url=urls["notifier"],
                                       catalog_cache_seconds=24 * 3600)
            async with serving(build_cabinet(settings, clock.now, transport)) as cabinet:
                say(f"cabinet: {subscribers} subscribers registering, paying, choosing a plan and signing in")
                started = time.perf_counter()
                gate = asyncio.Semaphore(SETTING_UP)

                async def set_up(index: int) -> Subscriber:
                    browser = await browsers.enter_async_context(httpx.AsyncClient(base_url=cabinet, timeout=60))
                    async with gate:
                        return await sign_up(index, browser, urls, runtimes, producer, clock)

                ready = await asyncio.gather(*(set_up(index) for index in range(subscribers)))
                expect(await ready[0].browser.get(f"/a/{ready[0].account}"), 200)  # the catalog kept
                for subscriber in ready:
                    transport.noted = subscriber.calls
                    expect(await subscriber.browser.get(f"/a/{subscriber.account}"), 200)
                transport.noted = None
                routes = {tuple(sorted(subscriber.route(*call) for call in subscriber.calls)) for subscriber in ready}
                if len(routes) != 1 or not ready[0].calls:
                    raise RuntimeError(f"the overviews made different calls: {routes}")
                say(f"cabinet: ready in {time.perf_counter() - started:.0f} s; the overview calls "
                    + ", ".join(next(iter(routes))))
                pages = [page for seconds in await asyncio.gather(*(time_pages(subscriber, rounds)
                                                                  for subscriber in ready)) for page in seconds]
                async with httpx.AsyncClient(timeout=settings.service_timeout_seconds) as http:
                    timed = await asyncio.gather(*(time_calls(subscriber, rounds, http) for subscriber in ready))
    by_route: dict[str, list[float]] = defaultdict(list)
    for routes_seconds, _together in timed:
        for route, seconds in routes_seconds.items():
            by_route[route] += seconds
    calls = {route: {"p50_ms": percentile_ms(seconds, 0.5), "p95_ms": percentile_ms(seconds, 0.95)}
             for route, seconds in sorted(by_route.items())}
    slowest = max(calls, key=lambda route: calls[route]["p95_ms"])
    figures = {
        "subscribers": subscribers,
        "rounds": rounds,
        "pages": len(pages),
        "cabinet_overview_p50_ms": percentile_ms(pages, 0.5),
        "cabinet_overview_p95_ms": percentile_ms(pages, 0.95),
        "calls": calls,
        "slowest_call": slowest,
        "slowest_call_p95_ms": calls[slowest]["p95_ms"],
        "calls_at_once_p95_ms": percentile_ms([one for _routes, together in timed for one in together], 0.95),
    }
    say(f"cabinet: overview p95 {figures['cabinet_overview_p95_ms']:.1f} ms; slowest call ({slowest}) p95 "
        f"{figures['slowest_call_p95_ms']:.1f} ms; all the calls at once p95 {figures['calls_at_once_p95_ms']:.1f} ms")
    return figures
