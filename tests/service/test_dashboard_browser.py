"""The risk desk page in a real browser (headless Debian Chromium via Selenium): it asks for a key,
signs in with it once (a session cookie, the key never in a URL), a price move sent through the API
shows up on the page live, and a screenshot is saved under the test's output."""

import shutil
import time
from pathlib import Path

import httpx
import pytest
from svc_helpers import create_key, free_port, start

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (see .ci/run)"
)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(predicate, timeout_s=15.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("the page did not update in time")


def test_price_move_shows_up_live(tmp_path, browser):
    from selenium.webdriver.common.by import By

    db = str(tmp_path / "desk.db")
    port = free_port()
    proc = start(db, port)
    try:
        key = create_key(db, "admin")
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=5)
        api.post("/v1/time", json={"time": "2026-11-25T08:00:00Z"}).raise_for_status()
        api.post("/v1/markets", json={"underlying": "BTC", "index": "60000", "vol": 0.6}).raise_for_status()
        browser.get(f"http://127.0.0.1:{port}/")
        form = browser.find_element(By.ID, "login")
        assert wait_for(lambda: form.is_displayed())  # no session yet: the page asks for a key
        browser.find_element(By.ID, "key").send_keys("me_0_wrong")
        browser.find_element(By.ID, "sign-in").click()
        assert wait_for(lambda: "refused (401)" in browser.find_element(By.ID, "status").text)
        browser.find_element(By.ID, "key").send_keys(key)
        browser.find_element(By.ID, "sign-in").click()

        def index_text():
            cells = browser.find_elements(By.ID, "oracle-BTC-index")
            return cells[0].text if cells else ""

        assert wait_for(lambda: index_text() == "60,000")
        api.post("/v1/markets", json={"underlying": "BTC", "index": "54321", "vol": 0.8}).raise_for_status()
        assert wait_for(lambda: index_text() == "54,321")  # pushed by the event stream, no reload
        assert browser.find_element(By.ID, "status").text == "live"
        assert key not in browser.current_url and not form.is_displayed()
        cookie = browser.get_cookie("me_session")
        assert cookie["httpOnly"] and cookie["value"] != key
        out = Path(__file__).resolve().parents[2] / "out"
        out.mkdir(exist_ok=True)
        browser.save_screenshot(str(out / "dashboard.png"))
        browser.save_screenshot(str(tmp_path / "dashboard.png"))
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000
        api.close()
    finally:
        proc.kill()
        proc.wait()
