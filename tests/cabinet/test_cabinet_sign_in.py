"""Sign-in refusals in words, over the whole suite (no browser needed: the cabinet's own forms,
posted with the session's CSRF token as a browser would)."""

from __future__ import annotations

import re

import httpx

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
