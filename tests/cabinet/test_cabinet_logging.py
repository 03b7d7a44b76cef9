"""The cabinet's log: one structured line per request (structlog), JSON in production, naming the
route's template and never the URL, whose path carries an account number."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from billing_cabinet.__main__ import configure_logging
from billing_cabinet.app import build
from billing_cabinet.settings import CabinetSettings


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure_logging replaces the root logger's handlers, the test run's own among them."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_a_request_is_one_json_line_with_its_fields(root_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    settings = CabinetSettings(environment="production", session_secret="s" * 32)
    assert settings.json_logs and not CabinetSettings().json_logs  # a terminal's in development
    configure_logging(settings.json_logs)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build(settings)), base_url="http://cabinet") as http:
        assert (await http.get("/a/100000000016")).status_code == 303  # not signed in: to the sign-in page
    [line] = [json.loads(line) for line in capsys.readouterr().err.splitlines() if '"billing_cabinet"' in line]
    assert {key: line[key] for key in ("logger", "level", "method", "route", "status")} == {
        "logger": "billing_cabinet", "level": "info", "method": "GET", "route": "/a/{account}", "status": 303}
    assert "100000000016" not in json.dumps(line) and line["timestamp"].endswith("Z")
