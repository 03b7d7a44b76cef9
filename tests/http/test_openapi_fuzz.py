"""A property-based run of each service's OpenAPI document (schemathesis) against its app: no
request, valid or not, gets a server error.

The four services run in-process over the real broker and PostgreSQL, with two subscribers
registered through identity (so the ledger, tariff and notifier know them) and money on the
first. Every operation is called with data generated from its schema, with data that breaks
it, and (so the calls also get past validation into the services) with generated variations
of realistic bodies and the real account in the path, all with a service token. Hypothesis
runs in a worker thread; each request is sent on the test's event loop, where the services'
connections live. Every server error is collected and reported, not only the first.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from billing_contracts import topics
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.envelope import Envelope
from billing_contracts.money import Money
from billing_events.testing.kafka_probe import RawProducer
from billing_events.testing.plugin import eventually
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok
from tariff.catalog import load_catalog

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")

EXAMPLES = {GenerationMode.POSITIVE: 15, GenerationMode.NEGATIVE: 6}
REALISTIC_EXAMPLES = 12
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance,
          response_headers_conformance]
"""Schemathesis' own checks: no 5xx, and every answer (its status, body, content type and headers)
one the service's OpenAPI document describes."""
ACCOUNT_PARAMETERS = ("number", "account", "account_number")
PHONE = "+79152043371"


def realistic_paths(account: str, payment: str, catalog: Any) -> dict[str, st.SearchStrategy[str]]:
    """Path parameters a real caller sends, by name."""
    return {
        **{name: st.just(account) for name in ACCOUNT_PARAMETERS},
        "region": st.sampled_from(sorted({region for plan in catalog.plans for region in plan.prices}) + ["atlantis"]),
        "option": st.sampled_from([option.code for option in catalog.options] + ["no-such-option"]),
        "transaction_id": st.sampled_from([payment, "01900000-0000-7000-8000-000000000000"]),
    }


def realistic_bodies(account: str, other: str, form: Callable[..., dict[str, Any]], catalog: Any) -> dict[str, Any]:
    """Strategies of bodies a real caller sends, per operation: they reach the services' rules."""
    text = st.text(max_size=20)
    plans = st.sampled_from([plan.code for plan in catalog.plans] + ["no-such-plan"])
    options = st.sampled_from([option.code for option in catalog.options] + ["no-such-option"])
    passport = st.integers(100_000, 999_999).map(str)
    logins = st.sampled_from([account, other, PHONE, "100000000990"])
    return {
        "POST /identity/subscribers": st.builds(
            lambda number, email: form(passport_number=number, mobile_phone=f"+7 916 {number}0", email=email),
            passport, st.sampled_from([None, "x@example.ru", ""])),
        "POST /identity/login": st.fixed_dictionaries({"login": logins, "password": text}),
        "POST /identity/passwords/sms": st.fixed_dictionaries({"login": logins}),
        "POST /identity/reset-codes": st.one_of(
            st.fixed_dictionaries({"login": logins, "phone": st.sampled_from([PHONE, "+79160000000"])}),
            st.fixed_dictionaries({"login": logins, "email": st.sampled_from(["anna.petrova@example.ru", "a@b.c"])})),
        "POST /identity/reset-codes/redeem": st.fixed_dictionaries(
            {"login": logins, "code": st.integers(0, 999_999).map(lambda n: f"{n:06d}")}),
        "POST /identity/support/recoveries": st.fixed_dictionaries({
            "login": logins, "passport_series": st.sampled_from(["4510", "0000"]),
            "passport_number": st.sampled_from(["482913", "000000"]), "date_of_birth": st.dates().map(str),
            "operator": st.just("op-1"), "reason": st.just("fuzz")}),
        "POST /ledger/accounts/{number}/transfers": st.fixed_dictionaries({
            "to_account": st.sampled_from([other, account, "100000000990"]),
            "amount": st.fixed_dictionaries({"minor": st.integers(1, 10**7),
                                             "currency": st.sampled_from(["RUB", "EUR"])})}),
        "PUT /ledger/accounts/{number}/payment-type": st.fixed_dictionaries({
            "payment_type": st.sampled_from(["prepaid", "credit"]),
            "credit_limit": st.fixed_dictionaries({"minor": st.integers(-10**19, 10**19)})}),
        "POST /ledger/replays": st.fixed_dictionaries({"account": st.sampled_from([account, other, None])}),
        "POST /tariff/accounts/{account}/plan": st.fixed_dictionaries({"plan": plans}),
        "PUT /tariff/accounts/{account}/plan": st.fixed_dictionaries({"plan": plans}),
        "POST /tariff/accounts/{account}/options": st.fixed_dictionaries({"option": options}),
        "POST /tariff/accounts/{account}/voluntary-block": st.fixed_dictionaries(
            {"days": st.integers(-3, 40), "requested_via": st.sampled_from(["support", "cabinet", "bad"])}),
    }


class Fuzzer:
    """Runs the schema of one app; records every server error instead of stopping at the first."""

    def __init__(self, name: str, app: Any, token: str, paths: dict[str, Any], bodies: dict[str, Any],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.name, self.paths, self.bodies, self.loop = name, paths, bodies, loop
        self.headers = {"Authorization": f"Bearer {token}"}
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
        self.schema = schemathesis.openapi.from_dict(app.openapi())
        self.failures: list[str] = []
        self.statuses: dict[str, set[int]] = {}

    async def _send(self, kwargs: dict[str, Any]) -> httpx.Response | str:
        body: dict[str, Any] = {}
        if "json" in kwargs:
            body["json"] = kwargs["json"]
        elif isinstance(kwargs.get("data"), bytes | str):
            body["content"] = kwargs["data"]
        elif kwargs.get("data") is not None:
            body["data"] = kwargs["data"]
        try:
            return await self.client.request(kwargs["method"], kwargs["url"], params=kwargs.get("params"),
                                             headers=kwargs.get("headers"), **body)
        except Exception:  # the app raised: the ASGI server would answer 500
            return traceback.format_exc(limit=-4)


    def run(self) -> None:
        for result in self.schema.get_all_operations():
            assert isinstance(result, Ok), f"{self.name}: an operation the schema does not describe well: {result}"
            operation = result.ok()
            for mode, examples in EXAMPLES.items():
                self._run(operation, f"{mode.value}",
                          operation.as_strategy(generation_mode=mode, headers=self.headers), examples)
            paths = {p.name: self.paths[p.name] for p in operation.path_parameters if p.name in self.paths}
            realistic = self.bodies.get(operation.label)
            if paths or realistic is not None:
                bodies = realistic if realistic is not None else st.just(None)
                cases = st.tuples(st.fixed_dictionaries(paths), bodies).flatmap(
                    lambda chosen, operation=operation: operation.as_strategy(
                        headers=self.headers, path_parameters=chosen[0] or None,
                        **({"body": chosen[1]} if chosen[1] is not None else {})))
                self._run(operation, "realistic", cases, REALISTIC_EXAMPLES)

    def _run(self, operation: Any, kind: str, cases: st.SearchStrategy[Any], examples: int) -> None:
        @given(case=cases)
        @settings(max_examples=examples, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def call(case: Any) -> None:
            kwargs = case.as_transport_kwargs(base_url=f"http://{self.name}")
            kwargs.setdefault("headers", {}).update(self.headers)  # never a generated Authorization
            response = asyncio.run_coroutine_threadsafe(self._send(kwargs), self.loop).result(timeout=30)
            where = f"{operation.label} ({kind}): {kwargs['method']} {kwargs['url']} params={kwargs.get('params')}"
            if isinstance(response, str):
                self.failures.append(f"{where}\n  raised: {response}")
                return
            self.statuses.setdefault(operation.label, set()).add(response.status_code)
            try:
                case.validate_response(response, checks=CHECKS)
            except (Exception, BaseExceptionGroup) as failure:  # schemathesis' failures: a 5xx, an answer undescribed
                self.failures.append(f"{where}\n  answered {response.status_code}: {response.text[:300]} ({failure})")

        try:
            call()
        except Unsatisfiable:
            # Nothing in the schema to break (no inputs, or only free strings): no negative cases.
            assert kind == GenerationMode.NEGATIVE.value, operation.label


async def _register_two(services: Any, registration: Callable[..., dict[str, Any]],
                        bootstrap: str) -> tuple[str, str, str]:
    """Two subscribers known to every service, the first with money: (account, other, payment's
    transaction id)."""
    operations = services.token()
    async with services.client("identity", operations) as identity:
        created = [await identity.post("/identity/subscribers", json=form) for form in (
            registration(), registration(passport_number="482914", mobile_phone="+7 915 204-33-72", email=None))]
    assert [c.status_code for c in created] == [201, 201], [c.text for c in created]
    account, other = (c.json()["account_number"] for c in created)

    async def balance() -> int | None:
        async with services.client("ledger", operations) as http:
            answer = await http.get(f"/ledger/accounts/{account}")
        return answer.json()["main"]["minor"] if answer.status_code == 200 else None

    async def known_everywhere() -> bool:
        for number in (account, other):
            for name, path in (("ledger", f"/ledger/accounts/{number}"), ("tariff", f"/tariff/accounts/{number}"),
                               ("notifier", f"/notifier/accounts/{number}/deliveries")):
                async with services.client(name, operations) as http:
                    if (await http.get(path)).status_code != 200:
                        return False
        return True

    await eventually(known_everywhere, what="both accounts known to every service")
    ledger = services.running["ledger"]
    payment = PaymentReceived(account_number=account, channel="terminal", reference="FUZZ-1",
                              amount=Money(minor=500_000), received_at=services.clock.now())
    async with RawProducer(bootstrap) as producer:
        await producer.send(ledger.topics(topics.PAYMENTS),
                            Envelope.new(payment, account=account, producer="terminal", clock=services.clock))
    await eventually(lambda: _equals(balance(), 500_000), what="the payment posted")
    async with services.client("ledger", operations) as http:
        statement = await http.get(f"/ledger/accounts/{account}/statement",
                                   params={"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"})
    [line] = statement.json()["lines"]
    return account, other, line["transaction_id"]


async def _equals(value: Any, expected: Any) -> bool:
    return await value == expected


async def test_no_operation_of_any_service_answers_a_server_error(services: Any, registration: Any,
                                                                 bootstrap_servers: str) -> None:
    await services.start("identity", "ledger", "tariff", "notifier")
    account, other, payment = await _register_two(services, registration, bootstrap_servers)
    catalog = load_catalog(services.running["tariff"].settings.catalog_path)  # the catalog the tariff loaded
    paths, bodies = realistic_paths(account, payment, catalog), realistic_bodies(account, other, registration, catalog)
    loop = asyncio.get_running_loop()
    token = services.token("service", "fuzzer")
    report: list[str] = []
    statuses: dict[str, dict[str, set[int]]] = {}
    for name, runtime in services.running.items():
        fuzzer = Fuzzer(name, runtime.http_app, token, paths, bodies, loop)
        try:
            await asyncio.to_thread(fuzzer.run)
        finally:
            await fuzzer.client.aclose()
        statuses[name] = fuzzer.statuses
        report += [f"[{name}] {failure}" for failure in dict.fromkeys(fuzzer.failures)]
    assert not report, f"{len(report)} failures:\n" + "\n".join(report[:40])
    # The run got past validation into each service's rules, not only into 422s.
    for name, label, reached in (
        ("identity", "POST /identity/login", {401, 404, 429}),
        ("identity", "POST /identity/subscribers", {201, 409}),
        ("ledger", "POST /ledger/accounts/{number}/transfers", {200, 404, 409}),
        ("ledger", "GET /ledger/accounts/{number}/statement", {200}),
        ("ledger", "POST /ledger/transactions/{transaction_id}/reverse", {200, 409}),
        ("tariff", "POST /tariff/accounts/{account}/plan", {200, 409}),
        ("tariff", "GET /tariff/regions/{region}/plans", {200}),
        ("notifier", "GET /notifier/accounts/{account_number}/deliveries", {200}),
    ):
        assert statuses[name][label] & reached, (label, statuses[name][label])
