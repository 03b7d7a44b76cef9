"""Throttles without holes: every anonymous door counts its caller's address and the account it
names, parallel bursts pass exactly the limit, and the slow hash work has a bounded queue, over
the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import psutil
import pytest
from prometheus_client import REGISTRY

from billing_contracts import topics
from billing_contracts.catalog.identity import PasswordPurpose
from billing_events.testing.plugin import RenderedLogs
from billing_events.testing.kafka_probe import TopicReader
from identity import service
from identity.domain import (
    ContactMismatch,
    ResetCodeRefused,
    TooManyFromAddress,
    TooManyRequests,
    UnknownAccount,
    account_number_from_sequence,
)
from identity.security import SecretHasher


async def _outcome(call: Any) -> str:
    try:
        await call
    except Exception as refusal:  # the refusal's name is the outcome
        return type(refusal).__name__
    return "done"


async def test_a_parallel_burst_from_one_address_passes_exactly_the_limit(start_identity: Any) -> None:
    runtime, ctx = await start_identity(address_request_limit=5)
    async with runtime:
        nobody = account_number_from_sequence(999)
        outcomes = await asyncio.gather(*(
            _outcome(service.reissue_password_by_sms(ctx, {"login": nobody}, source="203.0.113.50"))
            for _ in range(20)
        ))
    assert sorted(outcomes) == sorted([UnknownAccount.__name__] * 5 + [TooManyFromAddress.__name__] * 15)


async def test_redeeming_codes_is_throttled_per_address_and_per_account(start_identity: Any, make_flow: Any,
                                                                        bootstrap_servers: str) -> None:
    runtime, ctx = await start_identity(address_request_limit=30)
    async with runtime:
        async with TopicReader(bootstrap_servers, runtime.topics(topics.IDENTITY)) as reader:
            flow = make_flow(runtime, ctx, reader)
            account = (await flow.register()).account_number
            nobody = account_number_from_sequence(999)
            account_limit = ctx.settings.redeem_account_limit

            async def redeem(login: str, code: str, source: str) -> str:
                return await _outcome(service.redeem_reset_code(ctx, {"login": login, "code": code}, source=source))

            # One account guessed at from many addresses: the account's own count stops it,
            # for an account that exists and for one that does not alike.
            for login in (account, nobody):
                answers = [await redeem(login, "123456", f"198.51.100.{i}") for i in range(account_limit + 2)]
                assert answers == [ResetCodeRefused.__name__] * account_limit + [TooManyRequests.__name__] * 2
            # One address guessing at many accounts: the address's count stops it.
            answers = [await redeem(account_number_from_sequence(2000 + i), "123456", "203.0.113.60")
                       for i in range(31)]
            assert answers == [ResetCodeRefused.__name__] * 30 + [TooManyFromAddress.__name__]

            # The owner who asked for a code still redeems it from home once the guessers are
            # held back... after the account's window (a code's life is shorter: a new one).
            await service.request_reset_code(ctx, {"login": account, "phone": "+79123456789"})
            code = await flow.secret(account, PasswordPurpose.RESET_CODE)
            assert await redeem(account, code, "192.0.2.1") == TooManyRequests.__name__
            runtime.clock.advance(ctx.settings.redeem_account_throttle.window)
            await service.request_reset_code(ctx, {"login": account, "phone": "+79123456789"})
            code = await flow.secret(account, PasswordPurpose.RESET_CODE, nth=2)
            assert await redeem(account, code, "192.0.2.1") == "done"


@pytest.mark.parametrize("database", ["postgresql", "sqlite"])
async def test_parallel_wrong_logins_from_one_address_lock_it_at_exactly_the_limit(
    start_identity: Any, database: str
) -> None:
    runtime, ctx = await start_identity(database=database, login_address_failure_limit=5,
                                        login_lock_threshold=100)
    async with runtime:
        outcomes = await asyncio.gather(*(
            _outcome(service.login(ctx, {"login": account_number_from_sequence(3000 + i), "password": "Guess1xyz"},
                                   source="203.0.113.70"))
            for i in range(20)
        ))
    # The fifth failure starts the lock (and is answered locked); the rest wait it out unchecked.
    assert sorted(outcomes) == sorted(["LoginRefused"] * 4 + ["LoginIsLocked"] * 16)


class PeakMemory:
    """The largest resident set size of this process seen while it runs, sampled by a thread
    (argon2 frees its memory when a hash ends, so only a sample during the flood sees it)."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._done = threading.Event()
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.wait(0.002):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join()


MIB = 1024 * 1024


async def test_a_flood_of_redeems_from_one_address_is_throttled_and_memory_stays_bounded(
    start_identity: Any,
) -> None:
    runtime, ctx = await start_identity(hashing_profile="production")
    async with runtime:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.http_app),
                                     base_url="http://identity") as http:
            redeem = {"login": account_number_from_sequence(999), "code": "123456"}
            warm = await http.post("/identity/reset-codes/redeem", json=redeem)  # the decoy hash is made once
            assert warm.status_code == 400
            with PeakMemory() as memory:
                baseline = memory.peak
                answers = await asyncio.gather(*(http.post("/identity/reset-codes/redeem", json=redeem)
                                                 for _ in range(200)))
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(429) >= 150 and set(statuses) == {400, 429}
    for answer in answers:
        if answer.status_code == 429:
            assert answer.headers["Retry-After"] and answer.json()["code"] == "too_many_requests_from_address"
    # Each argon2id check holds 64 MiB while it runs, and at most hash_concurrency run at once
    # (2: 128 MiB); the 200 requests themselves need a few MiB. Without the gate, as many run as
    # the default thread pool has workers (min(32, cores + 4): 6 here, 384 MiB), and without the
    # address throttle all 200 do.
    bound = ctx.settings.hash_concurrency * ctx.settings.hashing.memory_cost_kib * 1024 + 64 * MIB
    assert memory.peak - baseline < bound, f"grew {(memory.peak - baseline) / MIB:.0f} MiB"


async def test_slow_hashes_beyond_the_queue_are_refused_at_once_with_retry_after(
    start_identity: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, ctx = await start_identity(hashing_profile="production", hash_concurrency=2, hash_queue=4,
                                        address_request_limit=1000, redeem_account_limit=1000)
    running, most = 0, 0
    counting = threading.Lock()
    verify = SecretHasher.verify

    def counted_verify(self: SecretHasher, stored: str, candidate: str) -> bool:
        nonlocal running, most
        with counting:
            running += 1
            most = max(most, running)
        try:
            return verify(self, stored, candidate)
        finally:
            with counting:
                running -= 1

    monkeypatch.setattr(SecretHasher, "verify", counted_verify)
    async with runtime:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.http_app),
                                     base_url="http://identity") as http:
            answers = await asyncio.gather(*(
                http.post("/identity/reset-codes/redeem", json={"login": account_number_from_sequence(4000 + i),
                                                                "code": "123456"})
                for i in range(60)
            ))
    busy = [answer for answer in answers if answer.status_code == 429]
    assert busy and all(answer.json()["code"] == "hashing_busy" and answer.headers["Retry-After"] == "1"
                        for answer in busy)
    assert {answer.status_code for answer in answers} == {400, 429}
    assert most <= 2  # never more than hash_concurrency at once


async def test_the_metrics_do_not_tell_whether_a_contact_matches_or_an_account_exists(flow: Any) -> None:
    account = (await flow.register()).account_number
    nobody = account_number_from_sequence(999)

    def exposed() -> dict[tuple[str, str], float]:
        return {(sample.labels["act"], sample.labels["outcome"]): sample.value
                for metric in REGISTRY.collect() if metric.name == "identity_sensitive_acts"
                for sample in metric.samples if sample.name.endswith("_total")}

    before = exposed()
    for login, phone in ((account, "+7 912 000-00-01"), (nobody, "+7 912 345-67-89")):
        with pytest.raises((ContactMismatch, UnknownAccount)):
            await service.request_reset_code(flow.ctx, {"login": login, "phone": phone}, source="203.0.113.80")
    for login in (account, nobody):
        with pytest.raises(ResetCodeRefused):
            await service.redeem_reset_code(flow.ctx, {"login": login, "code": "123456"}, source="203.0.113.80")
    grown = {labels: value - before.get(labels, 0) for labels, value in exposed().items()
             if value != before.get(labels, 0)}
    assert grown == {("reset_code_requested", "refused"): 2, ("reset_code_redeemed", "refused"): 2}


PROXY_WARNING = "every client so far has a private address"


@pytest.mark.parametrize(("peer", "header", "warned"), [
    ("10.0.0.5", None, True),  # behind a proxy nobody named: every client is the proxy
    ("10.0.0.5", "X-Forwarded-For", False),  # the proxy was named
    ("93.184.216.34", None, False),  # clients reach the door themselves
])
async def test_a_door_that_sees_only_private_clients_without_an_address_header_warns_once(
    start_identity: Any, rendered_logs: RenderedLogs, peer: str, header: str | None, warned: bool
) -> None:
    runtime, _ = await start_identity(client_address_header=header, login_address_failure_limit=1000)
    async with runtime:
        transport = httpx.ASGITransport(app=runtime.http_app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://identity") as http:
            for i in range(25):
                await http.post("/identity/login", json={"login": account_number_from_sequence(5000 + i),
                                                         "password": "Guess1xyz"})
    warnings = [line for line in rendered_logs.lines() if PROXY_WARNING in line["event"]]
    assert len(warnings) == (1 if warned else 0)
    assert all(line["level"] == "warning" and "10.0.0.5" not in str(line) for line in warnings)
