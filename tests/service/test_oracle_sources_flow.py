"""The oracle role out of the box: from a fresh database, `oracle keygen` and `oracle source add` on the
command line, keys from `create-key`, then the service moves the mark on updates signed with those key
files (by examples/oracle_feeder.py); sources registered and listed over HTTP too, and kept on restart."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from svc_helpers import free_port, start

from margin_engine.cli.app import main
from margin_engine.service.app import create_app
from margin_engine.service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FEEDER = ROOT / "examples" / "oracle_feeder.py"
T0 = 1795593600  # 2026-11-25T08:00:00Z


def _feeder():
    spec = importlib.util.spec_from_file_location("oracle_feeder", FEEDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


feeder = _feeder()


def cli(*args: object) -> str:
    """The console script in-process; its stdout (a non-zero exit fails the test with its stderr)."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    argv, sys.argv = sys.argv, ["margin-engine", *map(str, args)]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        assert exc.code in (0, None), f"{args}: exit {exc.code}: {err.getvalue()}"
    finally:
        sys.argv = argv
    return out.getvalue()


@pytest.fixture
def venue(tmp_path):
    """A fresh journal with two sources registered from `oracle keygen` key files, an admin and an oracle key."""
    db = tmp_path / "venue.db"
    cli("journal", "init", db, "--profile", "deribit")
    keys = {}
    for name in ("feed-a", "feed-b"):
        path = tmp_path / f"{name}.key"
        public = json.loads(cli("oracle", "keygen", "--out", path, "--format", "json"))["public_key"]
        cli("oracle", "source", "add", name, "--public-key", public, "--db", db)
        keys[name] = path.read_text().strip()
    return {
        "db": db,
        "keys": keys,
        "admin": cli("create-key", "admin", "--db", db).strip(),
        "oracle": cli("create-key", "oracle", "--db", db).strip(),
        "tmp": tmp_path,
    }


def push(client, venue, source: str, price: float, t: int):
    body = feeder.signed_update(venue["keys"][source], "BTC", source, price, t, confidence=3.0)
    return client.post("/v1/oracle/updates", json=body, headers={"X-API-Key": venue["oracle"]})


def btc(client, key: str) -> dict:
    (row,) = [r for r in client.get("/v1/oracle/status", headers={"X-API-Key": key}).json()["underlyings"]]
    return row


def test_cli_registered_sources_move_the_mark_through_the_api(venue):
    admin, oracle = {"X-API-Key": venue["admin"]}, {"X-API-Key": venue["oracle"]}
    with TestClient(create_app(Settings(db_url=str(venue["db"])))) as c:
        listed = c.get("/v1/oracle/sources", headers=oracle).json()["sources"]
        assert [(s["source"], s["registered_by"]) for s in listed] == [("feed-a", "command"), ("feed-b", "command")]
        assert c.post("/v1/time", json={"time": T0}, headers=admin).status_code == 200
        r = c.post("/v1/markets", json={"underlying": "BTC", "index": "60000", "vol": 0.6}, headers=admin)
        assert r.status_code == 200
        r = push(c, venue, "feed-a", 60600.0, T0)
        assert r.status_code == 200, r.text
        (event,) = r.json()["events"]
        assert event["type"] == "oracle_updated" and event["status"] == "degraded"  # 1 source; sources_min is 2
        assert btc(c, venue["oracle"])["index"] == 60600.0
        assert c.post("/v1/time", json={"time": T0 + 1}, headers=admin).status_code == 200
        r = push(c, venue, "feed-b", 60800.0, T0 + 1)
        assert r.status_code == 200, r.text
        row = btc(c, venue["oracle"])
        assert row["index"] == 60700.0 and row["status"] == "ok"  # the median of both sources
        # a key file signs for its own source only
        forged = feeder.signed_update(venue["keys"]["feed-a"], "BTC", "feed-b", 1.0, T0 + 1)
        r = c.post("/v1/oracle/updates", json=forged, headers=oracle)
        assert r.status_code == 409 and r.json()["code"] == "bad_signature"
        # more sources over HTTP (admin only); the same rules as on the command line
        third = json.loads(cli("oracle", "keygen", "--out", venue["tmp"] / "c.key", "--format", "json"))
        body = {"source": "feed-c", "public_key": third["public_key"], "underlyings": ["BTC"]}
        assert c.post("/v1/oracle/sources", json=body, headers=oracle).status_code == 403
        r = c.post("/v1/oracle/sources", json=body, headers=admin)
        assert r.status_code == 200 and r.json()["events"][0]["type"] == "source_registered"
        r = c.post("/v1/oracle/sources", json=body, headers=admin)
        assert r.status_code == 409 and r.json()["code"] == "source_exists"
        r = c.post("/v1/oracle/sources", json={**body, "source": "feed-d"}, headers=admin)
        assert r.status_code == 409 and r.json()["code"] == "duplicate_key"
        r = c.post("/v1/oracle/sources", json={**body, "public_key": "zz" * 32}, headers=admin)
        assert r.status_code == 422 and r.json()["field"] == "public_key"
        r = c.post("/v1/oracle/sources", json={**body, "extra": 1}, headers=admin)
        assert r.status_code == 422
        r = c.delete("/v1/oracle/sources/feed-c", headers=admin)
        assert r.status_code == 200 and r.json()["events"][0]["type"] == "source_revoked"
        r = c.delete("/v1/oracle/sources/feed-c", headers=admin)
        assert r.status_code == 409 and r.json()["code"] == "unknown_source"
    with TestClient(create_app(Settings(db_url=str(venue["db"])))) as c:  # a restart keeps them
        listed = c.get("/v1/oracle/sources", headers=admin).json()["sources"]
        assert [s["source"] for s in listed] == ["feed-a", "feed-b"]
        assert btc(c, venue["admin"])["index"] == 60700.0
        assert c.post("/v1/time", json={"time": T0 + 11}, headers=admin).status_code == 200
        assert push(c, venue, "feed-a", 61000.0, T0 + 11).status_code == 200


def test_the_feeder_script_against_the_real_server(venue):
    port = free_port()
    proc = start(str(venue["db"]), port)
    try:
        base = f"http://127.0.0.1:{port}"
        admin = {"X-API-Key": venue["admin"]}
        httpx.post(f"{base}/v1/time", json={"time": T0}, headers=admin).raise_for_status()
        httpx.post(
            f"{base}/v1/markets", json={"underlying": "BTC", "index": "60000", "vol": 0.6}, headers=admin
        ).raise_for_status()
        key_file = venue["tmp"] / "feed-a.key"
        args = ["--key", key_file, "--source", "feed-a", "--price", "60300", "--timestamp", T0, "--url", base]
        done = subprocess.run(
            [sys.executable, FEEDER, *map(str, args), "--api-key", venue["oracle"]],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        (line,) = done.stdout.splitlines()
        assert json.loads(line)["answer"]["events"][0]["mark"] == 60300.0
        status = httpx.get(f"{base}/v1/oracle/status", headers=admin).json()["underlyings"][0]
        assert status["index"] == 60300.0
        again = subprocess.run(  # the same timestamp again: refused as a replay, exit 1
            [sys.executable, FEEDER, *map(str, args), "--api-key", venue["oracle"]],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert again.returncode == 1 and json.loads(again.stdout)["answer"]["code"] == "oracle_replayed"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
