"""The risk desk page in a real browser (headless Debian Chromium via Selenium): it asks for a key and
says how to make one, signs in with it once (a session cookie, the key never in a URL), and after a
scripted session shows engine time, the fund from the first engine time, a liquidation in words with
USDC amounts, and a price move pushed live. `DESK_SCREENSHOT=path` keeps the screenshot
(docs/screenshot.py writes docs/img/dashboard.png that way)."""

import os
import re
import shutil
import time
from importlib import resources
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


def _session(api: httpx.Client) -> None:
    """Deposits, trades, a price move and a liquidation. The fund gets capital before the clock is set:
    the chart must still start at the first engine time, not at 1970."""
    api.post("/v1/insurance", json={"amount": "50000"}).raise_for_status()
    api.post("/v1/time", json={"time": "2026-11-25T08:00:00Z"}).raise_for_status()
    api.post("/v1/markets", json={"underlying": "BTC", "index": "60000", "vol": 0.6}).raise_for_status()
    for name, cash in (("maker", "5000000"), ("keeper", "2000000"), ("alice", "14000"), ("bob", "60000")):
        api.post("/v1/accounts", json={"account": name}).raise_for_status()
        api.post(
            f"/v1/accounts/{name}/deposits", json={"amount": cash, "reference": f"0xdesk:{name}"}
        ).raise_for_status()
    for buyer, seller, instrument, size, price in (
        ("alice", "maker", "BTC-PERP", "10", "60000"),
        ("maker", "bob", "BTC-25DEC26-65000-C", "5", "2200"),
    ):
        fill = {"buyer": buyer, "seller": seller, "instrument": instrument, "size": size, "price": price}
        api.post("/v1/fills", json=fill).raise_for_status()
    api.post("/v1/time", json={"time": "2026-11-25T08:10:00Z"}).raise_for_status()
    api.post("/v1/markets", json={"underlying": "BTC", "index": "59200", "vol": 0.65}).raise_for_status()
    queue = api.get("/v1/liquidations/queue").json()["queue"]
    assert [row["account"] for row in queue] == ["alice"]
    api.post("/v1/liquidations", json={"account": "alice", "liquidator": "keeper"}).raise_for_status()


def test_desk_reads_at_a_glance(tmp_path, browser):
    """A wrong key gets a page that says so; the right one shows the engine time, the fund from the
    first engine time, a price move pushed live, and the liquidation as a sentence in USDC."""
    from selenium.webdriver.common.by import By

    db = str(tmp_path / "desk.db")
    port = free_port()
    # deribit with Binance's margin-call levels: the price move calls alice before she is liquidated
    packaged = resources.files("margin_engine.profiles").joinpath("deribit.toml").read_text()
    profile = tmp_path / "deribit-calls.toml"
    profile.write_text(packaged + "\n[margin_calls]\nwarn_ratio = 1.5\nreduce_only_ratio = 1.2\n")
    proc = start(db, port, "--profile", str(profile))
    try:
        key = create_key(db, "admin")
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}, timeout=5)
        _session(api)
        browser.get(f"http://127.0.0.1:{port}/")
        signin = browser.find_element(By.ID, "signin")
        assert wait_for(lambda: signin.is_displayed())  # no session yet: the page asks for a key, says how
        assert "create-key admin" in signin.text
        assert not browser.find_element(By.ID, "desk").is_displayed()
        browser.find_element(By.ID, "key").send_keys("me_0_wrong")
        browser.find_element(By.ID, "sign-in").click()
        assert wait_for(lambda: "That key was refused" in signin.text)
        assert "401" in signin.text and not browser.find_element(By.ID, "desk").is_displayed()
        browser.find_element(By.ID, "key").send_keys(key)
        browser.find_element(By.ID, "sign-in").click()

        def text(element_id):
            cells = browser.find_elements(By.ID, element_id)
            return cells[0].text if cells else ""

        assert wait_for(lambda: text("oracle-BTC-index") == "59,200.00")
        assert text("engine-time") == "2026-11-25 08:10:00 UTC"
        chart = browser.find_element(By.ID, "insurance-chart")
        assert chart.get_attribute("data-start") == "1795593600"  # 2026-11-25 08:00:00 UTC, the first engine time
        assert text("insurance-start") == "2026-11-25 08:00:00 UTC"
        fills = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#events li.liquidation_fill")]
        assert len(fills) == 1
        assert re.fullmatch(
            r"08:10:00 keeper took \d+\.\d\d% of alice's book \(fixed penalty\): paid [\d,]+\.\d\d USDC; "
            r"penalty [\d,]+\.\d\d USDC, [\d,]+\.\d\d USDC to the insurance fund",
            fills[0],
        ), fills[0]
        # 59,200: alice's equity 14,000 - 8,000 = 6,000 <= MM 10 x 59,200 x 1.05% = 6,216
        calls = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#events li.margin_call")]
        assert "08:10:00 margin call: alice at liquidation (equity 96.5% of maintenance)" in calls, calls
        # what she keeps has a liquidation price below the index, shown on the desk
        assert wait_for(lambda: re.fullmatch(r"BTC [\d,]+\.\d\d below", text("liq-alice"))), text("liq-alice")
        below = float(text("liq-alice").split()[1].replace(",", ""))
        assert 50_000 < below < 59_200
        insurance = text("insurance")
        assert re.fullmatch(r"50,\d{3}\.\d\d USDC", insurance), insurance  # capital plus the penalty's share
        page = browser.find_element(By.TAG_NAME, "body").text
        assert not re.search(r"\d{9,}", page), "smallest units or epoch seconds on the page"
        api.post("/v1/markets", json={"underlying": "BTC", "index": "54321", "vol": 0.8}).raise_for_status()
        assert wait_for(lambda: text("oracle-BTC-index") == "54,321.00")  # pushed by the event stream, no reload
        assert text("status") == "live"
        cookie = browser.get_cookie("me_session")
        assert cookie["httpOnly"] and cookie["value"] != key and key not in browser.current_url
        shot = Path(os.environ.get("DESK_SCREENSHOT", tmp_path / "dashboard.png"))
        shot.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        api.close()
    finally:
        proc.kill()
        proc.wait()
