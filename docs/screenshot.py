"""Write docs/img/dashboard.png: a sample book on a running server, seen by headless Chromium.

python docs/screenshot.py   (needs Debian's chromium and chromium-driver)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

HERE = Path(__file__).resolve().parent
PORT = 8765


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = f"{tmp}/desk.db"
        server = subprocess.Popen(
            [sys.executable, "-m", "margin_engine.cli.app", "serve", "--db", db, "--port", str(PORT), "--init"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait(f"http://127.0.0.1:{PORT}/openapi.json")
            key = subprocess.run(
                [sys.executable, "-m", "margin_engine.cli.app", "create-key", "admin", "--db", db],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            _book(httpx.Client(base_url=f"http://127.0.0.1:{PORT}", headers={"X-API-Key": key}))
            _shoot(f"http://127.0.0.1:{PORT}/", key, HERE / "img" / "dashboard.png")
        finally:
            server.kill()


def _wait(url: str) -> None:
    for _ in range(100):
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def _book(api: httpx.Client) -> None:
    api.post("/v1/time", json={"time": "2026-11-25T08:00:00Z"})
    api.post("/v1/markets", json={"underlying": "BTC", "index": "60000", "vol": 0.6})
    api.post("/v1/markets", json={"underlying": "ETH", "index": "3000", "vol": 0.7})
    api.post("/v1/insurance", json={"amount": "50000"})
    for name, cash in (
        ("maker", "5000000"),
        ("keeper", "2000000"),
        ("alice", "14000"),
        ("bob", "40000"),
        ("carol", "25000"),
        ("dave", "9000"),
    ):
        api.post("/v1/accounts", json={"account": name})
        api.post(f"/v1/accounts/{name}/deposits", json={"amount": cash, "reference": f"0xdesk:{name}"})
    fills = [
        ("alice", "maker", "BTC-PERP", "10"),
        ("maker", "bob", "BTC-25DEC26-65000-C", "5"),
        ("carol", "maker", "ETH-PERP", "60"),
        ("dave", "maker", "BTC-PERP", "3"),
        ("maker", "carol", "ETH-25DEC26-2800-P", "20"),
    ]
    for buyer, seller, instrument, size in fills:
        price = {"BTC-PERP": "60000", "ETH-PERP": "3000", "BTC-25DEC26-65000-C": "2200", "ETH-25DEC26-2800-P": "120"}[
            instrument
        ]
        api.post(
            "/v1/fills", json={"buyer": buyer, "seller": seller, "instrument": instrument, "size": size, "price": price}
        )
    for step, (btc, eth) in enumerate(((59300, 2950), (58800, 2900), (59100, 2880))):
        api.post("/v1/time", json={"time": f"2026-11-25T08:{10 * (step + 1):02d}:00Z"})
        api.post("/v1/markets", json={"underlying": "BTC", "index": str(btc), "vol": 0.65})
        api.post("/v1/markets", json={"underlying": "ETH", "index": str(eth), "vol": 0.75})
        for row in api.get("/v1/liquidations/queue").json()["queue"]:
            api.post("/v1/liquidations", json={"account": row["account"], "liquidator": "keeper"})


def _shoot(url: str, key: str, path: Path) -> None:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1400,900",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(url)  # the page asks for the key once, then reads with a session cookie
        time.sleep(1)
        driver.find_element("id", "key").send_keys(key)
        driver.find_element("id", "sign-in").click()
        time.sleep(2)
        path.parent.mkdir(exist_ok=True)
        driver.save_screenshot(str(path))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
