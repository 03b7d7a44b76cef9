"""The accessibility check the browser tests run on every page they photograph (conftest's
Browser.check_accessible) fails a page that a person with a screen reader, with low vision or on
a keyboard could not use: the sign-in page, spoiled one way at a time in the browser."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from .conftest import AccessibilityFindings, Browser

LAST_RULE = "const sheet = document.styleSheets[0]; sheet.insertRule(arguments[0], sheet.cssRules.length);"
"""A rule added at the end of the cabinet's stylesheet (the Content-Security-Policy lets no inline
style in, the CSS object model it does)."""
SPOILED = {
    "a field without its label": ("label[for=login] { display: none }", r"(?s)label - .*Impact Level: critical"),
    "faint text": ("h1 { color: #c8ccd2 }", r"(?s)color-contrast - .*Impact Level: serious"),
    "a focus ring that does not stand out": (":focus-visible { outline: 3px solid #e9edf2 }",
                                             r"focus not shown .*'contrast': 1\.\d+"),
    "no focus ring": (":focus-visible { outline: none }", r"focus not shown .*'ring': False"),
}


async def test_the_check_fails_a_page_a_person_could_not_use(browser_driver: WebDriver, cabinet: str,
                                                             tmp_path: Path) -> None:
    findings = AccessibilityFindings(tmp_path / "accessibility.json")
    browser = Browser(browser_driver, cabinet, findings)

    def checks() -> None:
        browser.open("/sign-in")
        browser.check_accessible("sign-in")  # as the cabinet serves it: nothing serious
        for spoiled, (rule, finding) in SPOILED.items():
            browser.open("/sign-in")
            browser.driver.execute_script(LAST_RULE, rule)
            with pytest.raises(AssertionError, match=finding):
                browser.check_accessible(spoiled)

    await asyncio.to_thread(checks)
    assert set(findings.pages) == {"sign-in", *SPOILED}
    assert findings.path.exists()
