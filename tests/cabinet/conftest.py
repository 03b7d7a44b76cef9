"""The cabinet served on a free port beside the whole suite (the services in-process over the real
broker and PostgreSQL, as tests/flows runs them), and a headless Chromium from the system's
packages driven by Selenium."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.support.ui import WebDriverWait
from selenium_axe_python import Axe

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


BLOCKING_IMPACTS = frozenset({"serious", "critical"})
IMPACTS = ("critical", "serious", "moderate", "minor")
AXE_OPTIONS = {"resultTypes": ["violations", "incomplete"], "rules": {"target-size": {"enabled": True}}}
"""axe-core's default rules (WCAG 2.0 and 2.1 A and AA, its best practices) and WCAG 2.2's target
size; the passes are not needed, only what failed and what axe could not decide."""
ACCESSIBILITY = SCREENSHOTS / "accessibility.json"
"""The run's accessibility result per photographed page: axe-core's violations by impact, each
rule with the number of elements it found, what it left for a person to review, and the page's
keyboard stops."""
MAX_TAB_STOPS = 200
FOCUSED = """
const element = document.activeElement;
if (!element || element === document.body) return null;
window.tabStops = window.tabStops || new WeakSet();
if (window.tabStops.has(element)) return "round";
window.tabStops.add(element);
const channels = colour => colour.match(/[\\d.]+/g).map(Number);
const luminance = colour => {
  const [r, g, b] = channels(colour).slice(0, 3).map(value => value / 255)
    .map(value => value <= 0.03928 ? value / 12.92 : ((value + 0.055) / 1.055) ** 2.4);
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
let behind = "rgb(255, 255, 255)";
for (let around = element.parentElement; around; around = around.parentElement) {
  const colour = getComputedStyle(around).backgroundColor;
  if (channels(colour)[3] !== 0) { behind = colour; break; }
}
const style = getComputedStyle(element), box = element.getBoundingClientRect();
const [lighter, darker] = [luminance(style.outlineColor), luminance(behind)].sort((a, b) => b - a);
return {element: element.outerHTML.slice(0, 120),
        ring: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2,
        contrast: Math.round((lighter + 0.05) / (darker + 0.05) * 100) / 100,
        seen: box.width > 0 && box.height > 0 && box.right > 0 && box.bottom > 0 && box.left < innerWidth};
"""
"""The element the keyboard's focus is on: whether it shows a focus ring (an outline at least 2px
wide) and the ring's contrast with the background around the element (where the ring is drawn,
outside it), and whether it is on the screen; null between the page's last stop and its first,
"round" once the Tab key has come back."""
RING_CONTRAST = 3.0
"""WCAG 2.1's 1.4.11: a focus indicator needs 3:1 against what is next to it."""


def _by_impact(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"by_impact": {impact: sum(1 for result in results if result["impact"] == impact) for impact in IMPACTS},
            "rules": [{"rule": result["id"], "impact": result["impact"], "elements": len(result["nodes"])}
                      for result in results]}


@dataclass
class AccessibilityFindings:
    """What axe-core found on each page the run photographed, and its keyboard stops, written to
    its path (the run's ACCESSIBILITY) after each page, so a failed run leaves what it saw so far."""

    path: Path = ACCESSIBILITY
    pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    axe_core: str = ""

    def record(self, name: str, path: str, results: dict[str, Any], keyboard_stops: int) -> None:
        self.axe_core = results["testEngine"]["version"]
        self.pages[name] = {"path": path.split("?")[0], "violations": _by_impact(results["violations"]),
                            "needs_review": _by_impact(results["incomplete"]), "keyboard_stops": keyboard_stops}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        summary = {"axe_core": self.axe_core, "pages": self.pages}
        self.path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@dataclass
class Browser:
    """A person at the cabinet. Its calls block (Selenium), so a test runs them in a thread
    (``asyncio.to_thread``) while the services and the cabinet answer on the event loop."""

    driver: WebDriver
    base: str
    findings: AccessibilityFindings

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def fill(self, field_id: str, value: str) -> None:
        control = self.driver.find_element(By.ID, field_id)
        control.clear()
        control.send_keys(value)

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

    def check_accessible(self, name: str) -> None:
        """axe-core on the page as it stands (labels, contrast, headings, landmarks, the page's
        language: AXE_OPTIONS), then the keyboard: each stop of the Tab key is on the screen and
        shows a focus ring that stands out from what is around it. The findings go to the
        findings' file under the shot's name; a serious or critical one fails the test. axe does
        not count the h1s: exactly one."""
        Axe(self.driver).inject()
        results = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, arguments[0]).then(done, error => done({error: String(error)}));", AXE_OPTIONS)
        assert "error" not in results, results
        stops = self._keyboard_stops()
        self.findings.record(name, self.path, results, len(stops))
        blocking = [violation for violation in results["violations"] if violation["impact"] in BLOCKING_IMPACTS]
        assert not blocking, f"{name} ({self.path}): " + Axe.report(blocking)
        assert len(self.driver.find_elements(By.TAG_NAME, "h1")) == 1, self.path
        assert stops, f"{name}: the Tab key reaches nothing"
        unseen = [stop for stop in stops if not (stop["ring"] and stop["seen"] and stop["contrast"] >= RING_CONTRAST)]
        assert not unseen, f"{name}: focus not shown (a ring of {RING_CONTRAST}:1, on the screen) on {unseen}"

    def _keyboard_stops(self) -> list[dict[str, Any]]:
        """Each element the Tab key stops on, once round the page (Chromium starts from the last
        element clicked, not from the top, and passes the page itself between the last and the
        first)."""
        self.driver.execute_script("window.tabStops = new WeakSet();")
        stops = []
        for _ in range(MAX_TAB_STOPS):
            ActionChains(self.driver).send_keys(Keys.TAB).perform()
            stop = self.driver.execute_script(FOCUSED)
            if stop == "round":
                break
            if stop is not None:
                stops.append(stop)
        self.driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
        return stops

    def shoot(self, name: str) -> None:
        """The page at a phone's width and a desktop's, whole, under SCREENSHOTS (once it passed
        check_accessible at the desktop's width)."""
        self.check_accessible(name)
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


@pytest.fixture(scope="session")
def accessibility_findings() -> AccessibilityFindings:
    return AccessibilityFindings()


@pytest.fixture
def browser(browser_driver: WebDriver, cabinet: str, accessibility_findings: AccessibilityFindings) -> Browser:
    return Browser(browser_driver, cabinet, accessibility_findings)
