"""The cabinet served on a free port beside the whole suite (the services in-process over the real
broker and PostgreSQL, as tests/flows runs them), and a headless Chromium from the system's
packages driven by Selenium."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.support.ui import WebDriverWait

from billing_cabinet.app import build
from billing_cabinet.settings import CabinetSettings
from billing_events.clock import ManualClock
from billing_events.testing.plugin import eventually
from ledger.settings import DEFAULT_CAMPAIGNS
from tests.flows.conftest import Suite, _started, start  # noqa: F401  (the suite's clock start, here too)

REPOSITORY = Path(__file__).parents[2]
SCREENSHOTS = Path(os.environ.get("BILLING_TEST_OUTPUT", REPOSITORY / "var" / "test-output")) / "cabinet"
"""Where the run leaves each page's picture, at a phone's width and a desktop's."""
WIDTHS = {"phone": (390, 844), "desktop": (1280, 900)}
README_SCREENSHOT = REPOSITORY / "docs" / "images" / "cabinet-overview.png"
README_SHOT = "overview-after-card"
"""The README's picture of the overview: this shot's desktop width, copied there when the run is
asked to (BILLING_CABINET_README_SCREENSHOT=1), so the README shows what the test saw."""
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def cabinet_socket() -> Iterator[socket.socket]:
    """The cabinet's listening socket, bound before the services start: the ledger is told the
    cabinet's address (where the acquirer's page sends the payer back) as `make run` tells it."""
    listening = socket.create_server(("127.0.0.1", 0))
    try:
        yield listening
    finally:
        listening.close()


@pytest.fixture
async def suite(make_settings: Any, bootstrap_servers: str, start: datetime,  # noqa: F811  (start, imported above)
                cabinet_socket: socket.socket) -> AsyncIterator[Suite]:
    """The suite as `make run` starts it for the cabinet: the packaged bonus campaigns, and the
    development acquirer's page sending the payer back to this cabinet."""
    port = cabinet_socket.getsockname()[1]
    async for started in _started(make_settings, bootstrap_servers, ManualClock(start), DEFAULT_CAMPAIGNS,
                                  card_return_url=f"http://127.0.0.1:{port}/card-payments/{{intent_id}}"):
        yield started


@pytest.fixture
async def cabinet(suite: Suite, cabinet_socket: socket.socket) -> AsyncIterator[str]:
    """The cabinet's address, over the suite's services, on the suite's clock (a token's age, the
    billing day)."""
    urls = suite.urls()
    settings = CabinetSettings(port=0, identity_url=urls["identity"], ledger_url=urls["ledger"],
                               tariff_url=urls["tariff"], notifier_url=urls["notifier"])
    app = build(settings, clock=suite.clock.now)
    server = uvicorn.Server(uvicorn.Config(app, access_log=False, log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[cabinet_socket]))
    await eventually(lambda: server.started or serving.done(), what="the cabinet listening")
    assert server.started, serving
    try:
        yield f"http://127.0.0.1:{cabinet_socket.getsockname()[1]}"
    finally:
        server.should_exit = True
        await serving


@dataclass
class Browser:
    """A person at the cabinet. Its calls block (Selenium), so a test runs them in a thread
    (``asyncio.to_thread``) while the services and the cabinet answer on the event loop."""

    driver: WebDriver
    base: str

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def fill(self, field_id: str, value: str) -> None:
        field = self.driver.find_element(By.ID, field_id)
        field.clear()
        field.send_keys(value)

    def press(self, css: str) -> None:
        """Click and wait for the next page."""
        page = self.driver.find_element(By.TAG_NAME, "html")
        self.driver.find_element(By.CSS_SELECTOR, css).click()
        WebDriverWait(self.driver, 30).until(lambda _: _gone(page))

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    @property
    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    @property
    def path(self) -> str:
        return self.driver.current_url.removeprefix(self.base)

    def check_accessible(self) -> None:
        """The structural part of an accessibility check: the page's language, one h1, a name for
        every control (its label, or aria-label) and for every button. (Contrast: the stylesheet's
        colours, not checked here.)"""
        page = self.path
        assert self.find("html").get_attribute("lang"), page
        assert len(self.driver.find_elements(By.TAG_NAME, "h1")) == 1, page
        for control in self.driver.find_elements(By.CSS_SELECTOR, "input:not([type=hidden]), select, textarea"):
            control_id = control.get_attribute("id")
            labelled = bool(control_id and self.driver.find_elements(By.CSS_SELECTOR, f"label[for='{control_id}']"))
            wrapped = bool(control.find_elements(By.XPATH, "ancestor::label"))
            assert labelled or wrapped or control.get_attribute("aria-label"), (page, control.get_attribute("name"))
        for button in self.driver.find_elements(By.TAG_NAME, "button"):
            assert button.text.strip() or button.get_attribute("aria-label"), page

    def shoot(self, name: str) -> None:
        """The page at a phone's width and a desktop's, whole, under SCREENSHOTS (once it passed
        check_accessible)."""
        self.check_accessible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for label, (width, height) in WIDTHS.items():
            self.driver.set_window_size(width, height)
            full = self.driver.execute_script("return document.documentElement.scrollHeight")
            self.driver.set_window_size(width, max(height, int(full)))
            assert self.driver.save_screenshot(str(SCREENSHOTS / f"{name}-{label}.png"))
        self.driver.set_window_size(*WIDTHS["desktop"])
        if name == README_SHOT and os.environ.get("BILLING_CABINET_README_SCREENSHOT") == "1":
            shutil.copyfile(SCREENSHOTS / f"{name}-desktop.png", README_SCREENSHOT)


def _gone(element: WebElement) -> bool:
    """Whether the page the element was on has been replaced (this Chromium answers a stale
    element with an inspector error rather than the standard stale-element one)."""
    try:
        element.is_enabled()
    except WebDriverException:
        return True
    return False


@pytest.fixture
def browser_driver() -> Iterator[WebDriver]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("the browser tests drive the system's Chromium: apt-get install chromium chromium-driver"
                    " (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,900", "--lang=en-GB"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(browser_driver: WebDriver, cabinet: str) -> Browser:
    return Browser(browser_driver, cabinet)
