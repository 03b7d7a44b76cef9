"""The cabinet's security as a bank's cabinet has it, seen without a browser: sign-in refusals in
words (the cabinet's own forms, posted with the session's CSRF token as a browser would), the
session cookie's flags, the Content-Security-Policy and pages with nothing inline for it to
forbid."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from billing_cabinet.app import build
from billing_cabinet.settings import CabinetSettings

from tests.flows.conftest import Suite

from .test_cabinet_in_browser import _subscriber

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def test_a_wrong_password_and_then_a_locked_login_are_said_in_words(suite: Suite, cabinet: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        mine, _password = await _subscriber(suite, http, language="en")
    async with httpx.AsyncClient(base_url=cabinet, timeout=30) as browser:
        csrf = CSRF.search((await browser.get("/sign-in")).text).group(1)  # type: ignore[union-attr]
        answers = [await browser.post("/sign-in", data={"csrf": csrf, "login": mine, "password": "not-the-password"})
                   for _attempt in range(6)]
    assert answers[0].status_code == 401 and "Wrong login or password." in answers[0].text
    assert "not-the-password" not in answers[0].text  # what was typed as a password is never echoed
    locked = answers[-1]
    assert locked.status_code == 429 and "Try again after" in locked.text


TEMPLATES = Path(__file__).parents[2] / "cabinet" / "src" / "billing_cabinet" / "templates"


async def test_the_cookie_is_httponly_lax_and_secure_outside_development_and_the_policy_allows_no_inline_script() -> None:
    with pytest.raises(ValidationError, match="SESSION_SECRET"):
        CabinetSettings(environment="production")
    for environment, secure in (("development", False), ("production", True)):
        settings = CabinetSettings(environment=environment, session_secret="s" * 32)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build(settings)),
                                     base_url="http://cabinet") as browser:
            page = await browser.get("/sign-in")
            health = [await browser.get(path) for path in ("/health/live", "/health/ready")]
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and ("secure" in cookie) is secure, environment
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
        assert page.headers["cache-control"] == "no-store"
        assert [answer.json() for answer in health] == [{"status": "ok"}] * 2  # what the probes ask


def test_a_production_session_secret_is_long_and_no_placeholder() -> None:
    for placeholder in ("s" * 31, "REPLACE-ME (BILLING_CABINET_SESSION_SECRET, e.g. openssl rand -hex 32)"):
        with pytest.raises(ValidationError, match="at least 32 characters"):
            CabinetSettings(environment="production", session_secret=placeholder)
    assert CabinetSettings(environment="production", session_secret="s" * 32).session_secret is not None
    assert CabinetSettings(environment="development", session_secret="short").session_secret is not None


async def test_the_payment_pages_a_top_up_sends_the_browser_to_are_allowed_to_receive_it() -> None:
    """A form answered with a redirect is held to form-action at the redirect's target too: the
    ledger's development page at the address a browser reaches, and the acquirer's page."""
    settings = CabinetSettings(ledger_url="http://ledger:8080", ledger_public_url="http://localhost:8101",
                               payment_page_origins=["https://pay.acquirer.example"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build(settings)),
                                 base_url="http://cabinet") as browser:
        policy = (await browser.get("/sign-in")).headers["content-security-policy"]
    form_action = policy.partition("form-action")[2].split(";")[0].split()
    assert form_action == ["'self'", "http://localhost:8101", "https://pay.acquirer.example"]


def test_no_page_has_an_inline_script_or_style() -> None:
    pages = sorted(TEMPLATES.glob("*.html"))
    assert len(pages) >= 10
    inline = [page.name for page in pages for text in [page.read_text(encoding="utf-8")]
              if "<script" in text or " style=" in text or re.search(r"\son[a-z]+=", text)]  # onclick= ...
    assert inline == []
