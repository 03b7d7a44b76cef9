"""docs/cabinet-api.md runs as printed: every request it shows, in order, against the four
services running over the broker, each answer held to the one the document shows.

The document's form (its "How to read" section): a ```http block starting with a method is a
request, sent to the service its path starts with; the ```http block after it, starting with
``HTTP/1.1``, is the answer (its status, and the JSON fields shown: ``"..."`` any value,
``"{name}"`` a value kept for later ``{name}``). ``{sms:name}`` is the password the latest SMS
brought to the account kept as ``name``, ``{code:name}`` the one-time code it was sent and has
not used yet, both read from the notifier's development file channel. An answer showing a
``Content-Type`` that is not JSON (a CSV, a PDF) shows how its body starts. A ```event block is
not a request: it is a payment a channel publishes (its type and topic, then its payload), which
the test publishes on the broker at that point of the walk. A GET is asked again until it shows
what is printed (the services hear of an account through the broker); every other request runs
once.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing_contracts import topics
from billing_events.clock import ManualClock
from billing_contracts.catalog.payments import PaymentReceived
from billing_contracts.envelope import Envelope
from billing_events.testing.file_channel import sent_secrets
from billing_events.testing.plugin import eventually
from ledger.settings import DEFAULT_CAMPAIGNS

from .conftest import Suite, _started

DOCUMENT = Path(__file__).parents[2] / "docs" / "cabinet-api.md"
BLOCK = re.compile(r"^```(http|event)\n(.*?)^```", re.S | re.M)
PLACEHOLDER = re.compile(r"\{(?:(sms|code):)?([a-z_]+)\}")
KEPT = re.compile(r"\{([a-z_]+)\}")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ROUTE_ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/[^`?]+)` \| ([a-z, ]+)", re.M)
PATH_PARAMETER = re.compile(r"\{[a-z_]+\}")
JSON = "application/json"
PUBLISHED = {"PaymentReceived on payments": (PaymentReceived, topics.PAYMENTS)}  # what a channel publishes


@dataclass
class Exchange:
    method: str
    path: str
    headers: dict[str, str]
    body: str
    status: int
    shown: Any  # the answer's JSON as the document shows it (or how a non-JSON body starts); None when it shows none
    content_type: str = JSON


@dataclass
class Publication:
    what: str  # "<event type> on <topic>"
    payload: str


@pytest.fixture
def start() -> datetime:
    """Inside the month the document's statement shows (December 2026), while the card campaign
    the bonus pages show runs."""
    return datetime(2026, 12, 10, 6, 0, tzinfo=UTC)


@pytest.fixture
async def suite(make_settings: Callable[..., Any], bootstrap_servers: str, start: datetime) -> AsyncIterator[Suite]:
    """The suite with the packaged bonus campaigns, as `make run` has them."""
    async for started in _started(make_settings, bootstrap_servers, ManualClock(start), DEFAULT_CAMPAIGNS):
        yield started


def _head_and_body(block: str) -> tuple[list[str], str]:
    head, _, body = block.partition("\n\n")
    return [line for line in head.splitlines() if line.strip()], body.strip()


def exchanges(text: str) -> list[Exchange | Publication]:
    found: list[Exchange | Publication] = []
    blocks = [(block.group(1), block.group(2)) for block in BLOCK.finditer(text)]
    for (kind, block), (_, answer) in zip(blocks, [*blocks[1:], ("", "")]):
        if kind == "event":
            what, _, payload = block.partition("\n")
            assert what in PUBLISHED, f"the test cannot publish {what!r}"
            found.append(Publication(what, payload))
            continue
        if not block.startswith(METHODS):
            continue
        assert answer.startswith("HTTP/1.1 "), f"a request without its answer: {block.splitlines()[0]}"
        (request_line, *header_lines), body = _head_and_body(block)
        method, path = request_line.split()
        (status_line, *answer_headers), shown = _head_and_body(answer)
        headers = dict(line.split(": ", 1) for line in header_lines)
        content_type = dict(line.split(": ", 1) for line in answer_headers).get("Content-Type", JSON)
        found.append(Exchange(method, path, headers, body, int(status_line.split()[1]),
                              (json.loads(shown) if content_type == JSON else shown) if shown else None,
                              content_type))
    return found


def shows(shown: Any, got: Any, kept: dict[str, Any]) -> bool:
    """Whether ``got`` has what the document shows; the values it names go into ``kept``."""
    if shown == "...":
        return True
    if isinstance(shown, str) and (name := KEPT.fullmatch(shown)):
        kept[name.group(1)] = got
        return True
    if isinstance(shown, dict):
        return isinstance(got, dict) and all(key in got and shows(value, got[key], kept)
                                               for key, value in shown.items())
    if isinstance(shown, list):
        return (isinstance(got, list) and len(got) == len(shown)
                and all(shows(one, other, kept) for one, other in zip(shown, got)))
    return bool(shown == got)


def routes_shown(text: str) -> dict[tuple[str, str], set[str]]:
    """The route table's rows: (method, path with its parameters unnamed) -> who may call it."""
    return {(method, PATH_PARAMETER.sub("{}", path)): {one.strip() for one in who.split(",")}
            for method, path, who in ROUTE_ROW.findall(text)}


async def test_the_route_table_says_who_may_call_as_each_service_does(suite: Any) -> None:
    shown = routes_shown(DOCUMENT.read_text(encoding="utf-8"))
    declared: dict[tuple[str, str], set[str]] = {}
    async with httpx.AsyncClient(timeout=30) as http:
        for url in suite.urls().values():
            for path, operations in (await http.get(f"{url}/openapi.json")).json()["paths"].items():
                for method, operation in operations.items():
                    declared[(method.upper(), PATH_PARAMETER.sub("{}", path))] = set(operation.get("x-callers", ()))
    assert len(shown) >= 40
    assert {route: declared.get(route) for route in shown} == shown
    # every request the document sends is a route of the table
    templates = [(method, re.compile(re.escape(path).replace(re.escape("{}"), "[^/]+"))) for method, path in shown]
    walked = {(step.method, step.path.split("?")[0])
              for step in exchanges(DOCUMENT.read_text(encoding="utf-8")) if isinstance(step, Exchange)}
    assert {(method, path) for method, path in walked
            if not any(method == shown_method and template.fullmatch(path) for shown_method, template in templates)} == set()


async def test_every_request_of_the_cabinet_document_runs_as_printed(suite: Any) -> None:
    walk = exchanges(DOCUMENT.read_text(encoding="utf-8"))
    assert len(walk) >= 30
    urls = suite.urls()
    kept: dict[str, Any] = {}
    used_codes: set[str] = set()

    async def filled(text: str) -> str:
        async def value(match: re.Match[str]) -> str:
            kind, name = match.groups()
            assert name in kept, f"{{{name}}} is used before the document keeps it"
            if kind is None:
                return str(kept[name])
            if kind == "sms":  # the latest password: it works until another replaces it
                passwords = await eventually(lambda: sent_secrets(suite.messages(), "sms", kept[name]), what=f"a password for {name}")
                return str(passwords[-1])
            # a code works once: the first one not used yet
            fresh = await eventually(lambda: [code for code in sent_secrets(suite.messages(), "code", kept[name])
                                              if code not in used_codes], what=f"a code for {name}")
            used_codes.add(fresh[0])
            return str(fresh[0])

        parts, last = [], 0
        for match in PLACEHOLDER.finditer(text):
            parts += [text[last:match.start()], await value(match)]
            last = match.end()
        return "".join(parts) + text[last:]

    async def publish(step: Publication) -> None:
        event_class, topic = PUBLISHED[step.what]
        event = event_class.model_validate({**json.loads(await filled(step.payload)), "received_at": suite.clock.now()})
        await suite.producer.send(suite.ledger.topics(topic), Envelope.new(
            event, account=event.account_number, producer=event.channel, clock=suite.clock))

    def answered_as_shown(step: Exchange, answer: httpx.Response, found: dict[str, Any]) -> bool:
        if answer.status_code != step.status or step.shown is None:
            return answer.status_code == step.status
        if step.content_type != JSON:
            return (answer.headers.get("content-type", "").startswith(step.content_type)
                    and answer.content.startswith(step.shown.encode()))
        return shows(step.shown, answer.json(), found)

    async with httpx.AsyncClient(timeout=30) as http:
        for step in walk:
            if isinstance(step, Publication):
                await publish(step)
                continue
            service = step.path.strip("/").split("/")[0]
            assert service in urls, f"{step.path}: no service {service!r} runs"
            path, body = await filled(step.path), await filled(step.body)
            headers = {name: await filled(value) for name, value in step.headers.items()}
            last: list[httpx.Response] = []
            found: dict[str, Any] = {}

            async def asked() -> bool:
                answer = await http.request(step.method, urls[service] + path, headers=headers,
                                            content=body.encode() if body else None)
                last[:] = [answer]
                found.clear()
                return answered_as_shown(step, answer, found)

            what = f"{step.method} {step.path}"
            if step.method == "GET":
                try:
                    await eventually(asked, interval=0.5, what=f"{what} to answer as the document shows")
                except AssertionError as timed_out:
                    raise AssertionError(f"{timed_out}: {last[0].status_code} {last[0].text[:2000]}") from None
            else:
                assert await asked(), f"{what} answered {last[0].status_code} {last[0].text}"
            kept.update(found)


def test_the_document_form_is_checked() -> None:
    """The checker refuses an answer that lacks a field shown or has another value."""
    kept: dict[str, Any] = {}
    assert shows({"a": "...", "b": [1, "{c}"]}, {"a": 5, "b": [1, 2], "x": 0}, kept) and kept == {"c": 2}
    assert not shows({"a": "..."}, {"b": 1}, {})
    assert not shows({"a": [1]}, {"a": [1, 2]}, {})
    assert not shows({"code": "login_refused"}, {"code": "token_revoked"}, {})
    walk = exchanges(DOCUMENT.read_text(encoding="utf-8"))
    assert all(step.status for step in walk if isinstance(step, Exchange))
    assert any(isinstance(step, Publication) for step in walk)
    assert any(isinstance(step, Exchange) and step.content_type != JSON for step in walk)
