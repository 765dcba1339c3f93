"""Debian's Chromium, headless, driven by selenium through Debian's chromedriver (the one
of the same package: no driver nor browser is downloaded, selenium-manager never runs).
Where either is missing the browser tests skip, loudly; with
``FAKEDRIVER_REQUIRE_BROWSER=1`` (CI) they fail instead. Screenshots go to
``artifacts/screenshots/`` (``FAKEDRIVER_SCREENSHOTS`` names another folder)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REQUIRED = os.environ.get("FAKEDRIVER_REQUIRE_BROWSER") == "1"
SCREENSHOTS = Path(os.environ.get("FAKEDRIVER_SCREENSHOTS", ROOT / "artifacts" / "screenshots"))
#: Chromium's flags: headless, and nothing that reaches the network on its own.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
WIDTH, HEIGHT = 1280, 900


def missing() -> str | None:
    """What is missing for the browser tests, or ``None``."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"no {CHROMIUM} (apt-get install chromium chromium-driver)"
    if not os.access(CHROMEDRIVER, os.X_OK):
        return f"no {CHROMEDRIVER} (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "no selenium (pip install -e '.[test]')"
    return None


def need_browser() -> None:
    """Skip loudly without a browser; fail instead under FAKEDRIVER_REQUIRE_BROWSER=1."""
    why = missing()
    if why is None:
        return
    if REQUIRED:
        pytest.fail(f"FAKEDRIVER_REQUIRE_BROWSER=1 and {why}")
    pytest.skip(f"SKIPPED LOUDLY: the browser tests need Debian's chromium: {why}")


@contextlib.contextmanager
def chromium(width: int = WIDTH, height: int = HEIGHT) -> Iterator[Any]:
    """A headless Chromium of a fresh profile, as a selenium WebDriver."""
    need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="fakedriver-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.set_script_timeout(60)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something true (returned), up to ``timeout`` s;
    an exception it raises counts as not yet."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            found = check()
        except Exception as exc:  # a row re-rendered under the finger, and the like
            found, last = None, exc
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or check}; last error: {last}")
        time.sleep(0.05)


def screenshot(driver: Any, name: str) -> Path:
    """Save what the browser shows as ``SCREENSHOTS/NAME.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
