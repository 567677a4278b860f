"""The HTTP service end to end: commands journaled and answered, roles and accounts enforced,
domain outcomes as 4xx with their reason codes, never a 5xx for bad input."""

import json

import pytest
from svc_helpers import ORACLE_KEY, References, auth, deposit

from margin_engine.margin.liquidation_price import perp_liquidation_price
from margin_engine.oracle.aggregator import PriceUpdate
from margin_engine.oracle.signing import sign_update

T0 = "2026-11-25T08:00:00Z"


def seed(c):
    """A market, alice and bob with collateral credited by custody, a keeper, a fill between them."""
    admin = auth(c, "admin")
    c.refs = References()
    assert c.post("/v1/time", json={"time": T0}, headers=admin).status_code == 200
    assert (
        c.post("/v1/markets", json={"underlying": "BTC", "index": "60000", "vol": 0.6}, headers=admin).status_code
        == 200
    )
    for who in ("alice", "bob"):
        assert c.post("/v1/accounts", json={"account": who}, headers=auth(c, who)).status_code == 200
        assert deposit(c, who, "100000", auth(c, "custody"), c.refs()).status_code == 200
    assert c.post("/v1/accounts", json={"account": "keeper"}, headers=admin).status_code == 200
    assert deposit(c, "keeper", "1000000", admin, c.refs()).status_code == 200
    fill = {"buyer": "alice", "seller": "bob", "instrument": "BTC-PERP", "size": "2", "price": "60000"}
    assert c.post("/v1/fills", json=fill, headers=admin).status_code == 200


def test_commands_are_journaled_and_answered(service):
    c = service
    seed(c)
    margin = c.get("/v1/accounts/alice/margin", headers=auth(c, "alice")).json()
    # 2 BTC long at 60,000: IM 120,000 * (2% + 2 * 0.005%) = 2,412
    assert margin["initial_margin"] == "2412.000000"
    # long 2 from 60,000 on its equity: Hyperliquid's closed form at MM 1% + 2 x 0.005%
    (liq,) = margin["liquidation_prices"]
    expected = perp_liquidation_price(60_000, 2, float(margin["equity"]), 0.0101)
    assert liq["underlying"] == "BTC" and float(liq["below"]) == pytest.approx(expected, rel=1e-9)
    assert liq["above"] is None and liq["liquidatable_now"] is False
    account = c.get("/v1/accounts/alice", headers=auth(c, "alice")).json()
    assert account["positions"] == [{"instrument": "BTC-PERP", "size": "2", "quote": "-120000.000000"}]
    what_if = c.post("/v1/accounts/alice/what-if", json={"trades": ["BTC-PERP:-2"]}, headers=auth(c, "alice")).json()
    assert what_if["after"]["initial_margin"] == "0.000000"


def test_rejections_and_bad_input_are_4xx_with_reasons(service):
    c = service
    seed(c)
    r = c.post("/v1/accounts/alice/withdrawals", json={"amount": "99999"}, headers=auth(c, "alice"))
    assert r.status_code == 409 and r.json()["code"] == "insufficient_margin"
    assert r.json()["needed"] == "2412.000000"
    r = deposit(c, "alice", "0.0000001", auth(c, "custody"), c.refs())
    assert r.status_code == 422 and r.json()["field"] == "amount"
    r = c.post(
        "/v1/accounts/alice/deposits", json={"amount": "1", "reference": "t:1", "extra": 1}, headers=auth(c, "custody")
    )
    assert r.status_code == 422
    r = c.post(
        "/v1/fills",
        json={"buyer": "alice", "seller": "bob", "instrument": "BTC-XYZ", "size": "1", "price": "1"},
        headers=auth(c, "admin"),
    )
    assert r.status_code == 422 and r.json()["field"] == "instrument"
    r = c.get("/v1/accounts/nobody/margin", headers=auth(c, "admin"))
    assert r.status_code == 404
    r = c.post(
        "/v1/accounts/alice/deposits",
        content=b"{not json",
        headers={**auth(c, "custody"), "content-type": "application/json"},
    )
    assert r.status_code == 422


def test_idempotency_key_applies_once_and_answers_the_same(service):
    c = service
    seed(c)
    headers = {**auth(c, "custody"), "Idempotency-Key": "dep-1"}
    first = deposit(c, "alice", "5", headers, "0xabc:1").json()
    second = deposit(c, "alice", "5", headers, "0xabc:1").json()
    assert first == second and first["client_id"] == "dep-1"
    balances = c.get("/v1/accounts/alice", headers=auth(c, "alice")).json()["balances"]
    assert balances["USDC"] == "100005.000000"


WHO = (None, "alice", "bob", "custody", "keeper", "scout", "oracle", "admin")
ENDPOINTS = [
    # (method, path, body, callers allowed)
    ("POST", "/v1/accounts", {"account": "alice"}, {"admin", "alice"}),
    ("GET", "/v1/accounts", None, {"admin"}),
    ("GET", "/v1/accounts/alice", None, {"admin", "alice"}),
    ("POST", "/v1/accounts/alice/deposits", {"amount": "1", "reference": "0xfeed:7"}, {"admin", "custody"}),
    ("POST", "/v1/accounts/alice/withdrawals", {"amount": "1"}, {"admin", "alice"}),
    ("POST", "/v1/accounts/alice/allocate", {"instrument": "BTC-PERP", "amount": "1"}, {"admin", "alice"}),
    ("GET", "/v1/accounts/alice/margin", None, {"admin", "alice"}),
    ("POST", "/v1/accounts/alice/what-if", {"trades": ["BTC-PERP:1"]}, {"admin", "alice"}),
    ("GET", "/v1/withdrawals", None, {"admin", "custody"}),
    ("POST", "/v1/withdrawals/W1/settle", {"reference": "0xpaid:1"}, {"admin", "custody"}),
    ("POST", "/v1/withdrawals/W1/fail", {"reason": "address blocked"}, {"admin", "custody"}),
    (
        "POST",
        "/v1/fills",
        {"buyer": "alice", "seller": "bob", "instrument": "BTC-PERP", "size": "1", "price": "60000"},
        {"admin"},
    ),
    ("POST", "/v1/markets", {"underlying": "BTC", "index": "61000", "vol": 0.6}, {"admin"}),
    ("POST", "/v1/time", {"time": "2026-11-25T09:00:00Z"}, {"admin"}),
    ("POST", "/v1/funding", {"instrument": "BTC-PERP", "rate": "0.0001"}, {"admin"}),
    ("POST", "/v1/expiries", {"underlying": "BTC", "expiry": "25DEC26", "price": "60000"}, {"admin"}),
    ("POST", "/v1/insurance", {"amount": "1"}, {"admin"}),
    ("POST", "/v1/oracle/updates", None, {"admin", "oracle"}),
    ("POST", "/v1/oracle/sources", {"source": "feed-x", "public_key": "ab" * 32}, {"admin"}),
    ("DELETE", "/v1/oracle/sources/feed-x", None, {"admin"}),
    ("GET", "/v1/oracle/sources", None, {"admin", "oracle"}),
    ("GET", "/v1/liquidations/queue", None, {"admin", "keeper", "scout"}),
    ("POST", "/v1/liquidations", {"account": "alice", "liquidator": "keeper"}, {"admin", "keeper"}),
    ("GET", "/v1/auctions", None, {"admin", "keeper", "scout"}),
    ("POST", "/v1/auctions/L1/bids", {"liquidator": "keeper", "fraction": "1"}, {"admin", "keeper"}),
    ("GET", "/v1/parameters", None, {"admin"}),
    ("GET", "/v1/oracle/status", None, set(WHO) - {None}),
    ("GET", "/v1/dashboard", None, {"admin"}),
    ("GET", "/v1/events/stream", None, {"admin"}),
    ("GET", "/metrics", None, {"admin"}),
    ("POST", "/v1/session", None, set(WHO) - {None}),
]


def _oracle_body():
    update = PriceUpdate("BTC", "desk-feed", 60000.0, None, 1795593600)
    return {
        "underlying": "BTC",
        "source": "desk-feed",
        "price": "60000",
        "timestamp": 1795593600,
        "signature": sign_update(ORACLE_KEY, update).hex(),
    }


def test_the_matrix_covers_every_route(service):
    """A new endpoint must join the role matrix below."""
    routes = {
        (method, route.path)
        for route in service.app_ref.routes
        if getattr(route, "include_in_schema", False)
        for method in route.methods
    } - {("GET", "/health")}
    shown = {
        (
            m,
            p.replace("alice", "{account}")
            .replace("W1", "{withdrawal}")
            .replace("L1", "{auction}")
            .replace("feed-x", "{source}"),
        )
        for m, p, _, _ in ENDPOINTS
    }
    assert routes - shown == set()


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS, ids=[e[1] + " " + e[0] for e in ENDPOINTS])
def test_every_endpoint_refuses_the_wrong_role_and_changes_nothing(service, method, path, body, allowed):
    c = service
    seed(c)
    body = _oracle_body() if path == "/v1/oracle/updates" else body
    runtime = c.app_ref.state.runtime
    for who in WHO:
        if who in allowed:
            continue
        before = (len(list(runtime.journal.history())), dict(runtime.engine.state.ledger.balances))
        headers = {} if who is None else auth(c, who)
        r = c.request(method, path, json=body, headers=headers)
        assert r.status_code == (401 if who is None else 403), (who, r.status_code, r.text)
        assert (len(list(runtime.journal.history())), dict(runtime.engine.state.ledger.balances)) == before
    r = c.request(method, path, json=body, headers={"X-API-Key": "me_0000_forged"})
    assert r.status_code == 401
    r = c.request(method, f"{path}?key={c.keys['admin']}", json=body)  # keys only in headers
    assert r.status_code == 401


def test_oracle_update_through_the_api(service):
    c = service
    seed(c)
    r = c.post("/v1/oracle/updates", json=_oracle_body(), headers=auth(c, "oracle"))
    assert r.status_code == 200, r.text
    assert r.json()["events"][0]["type"] == "oracle_updated"
    forged = dict(_oracle_body(), price="1")
    r = c.post("/v1/oracle/updates", json=forged, headers=auth(c, "oracle"))
    assert r.status_code == 409 and r.json()["code"] == "bad_signature"
    status = c.get("/v1/oracle/status", headers=auth(c, "alice")).json()["underlyings"]
    assert status[0]["underlying"] == "BTC"


def test_keeper_liquidates_through_the_api(service):
    c = service
    seed(c)
    assert c.get("/v1/liquidations/queue", headers=auth(c, "keeper")).json() == {"queue": []}
    # alice long 2 at 60,000 with 100,000: a fall to 10,000 puts her below maintenance
    c.post("/v1/markets", json={"underlying": "BTC", "index": "10000", "vol": 0.6}, headers=auth(c, "admin"))
    queue = c.get("/v1/liquidations/queue", headers=auth(c, "keeper")).json()["queue"]
    assert [q["account"] for q in queue] == ["alice"]
    r = c.post("/v1/liquidations", json={"account": "alice", "liquidator": "bob"}, headers=auth(c, "keeper"))
    assert r.status_code == 403  # a keeper key bound to "keeper" cannot act as bob
    r = c.post("/v1/liquidations", json={"account": "alice", "liquidator": "bob"}, headers=auth(c, "scout"))
    assert r.status_code == 403  # nor can an unbound keeper key
    r = c.post("/v1/liquidations", json={"account": "alice"}, headers=auth(c, "scout"))
    assert r.status_code == 409 and r.json()["code"] == "liquidator_required"  # it takes nothing itself
    bob = c.get("/v1/accounts/bob", headers=auth(c, "bob")).json()["positions"]
    assert [(p["instrument"], p["size"]) for p in bob] == [("BTC-PERP", "-2")]  # bob took nothing
    r = c.post("/v1/liquidations", json={"account": "alice"}, headers=auth(c, "keeper"))  # as its bound account
    assert r.status_code == 200 and any(e["type"] == "liquidation_fill" for e in r.json()["events"])
    fill = next(e for e in r.json()["events"] if e["type"] == "liquidation_fill")
    assert fill["liquidator"] == "keeper"


def test_request_size_and_rate_limits(tmp_path, profile_path):
    from fastapi.testclient import TestClient

    from margin_engine.service.app import create_app
    from margin_engine.service.settings import Settings

    app = create_app(
        Settings(
            db_url=str(tmp_path / "l.db"),
            profile=str(profile_path),
            rate_limit_per_s=0.001,
            rate_limit_burst=3,
            max_body_bytes=200,
            init=True,
            anonymous_rate_limit_per_s=0.001,
            anonymous_rate_limit_burst=3,
        )
    )
    with TestClient(app) as c:
        key = {"X-API-Key": app.state.keys.create("admin")}
        r = c.post(
            "/v1/markets",
            content=json.dumps({"underlying": "BTC", "index": "1" * 300, "vol": 0.6}),
            headers={**key, "content-type": "application/json"},
        )
        assert r.status_code == 413
        codes = [c.get("/v1/parameters", headers=key).status_code for _ in range(5)]
        assert codes[:2] == [200, 200] and codes[-1] == 429
        anonymous = [c.get("/v1/parameters").status_code for _ in range(5)]  # per client address
        assert anonymous[:3] == [401, 401, 401] and anonymous[-1] == 429
        guesses = [c.get("/v1/parameters", headers={"X-API-Key": f"me_{i}_x"}).status_code for i in range(2)]
        assert guesses == [429, 429]  # wrong keys count as unauthenticated


def test_state_survives_a_restart(tmp_path, profile_path):
    from fastapi.testclient import TestClient

    from margin_engine.service.app import create_app
    from margin_engine.service.settings import Settings

    settings = Settings(db_url=str(tmp_path / "r.db"), profile=str(profile_path), init=True)
    app = create_app(settings)
    with TestClient(app) as c:
        token = app.state.keys.create("admin")
        c.post("/v1/accounts", json={"account": "carol"}, headers={"X-API-Key": token})
        deposit(c, "carol", "123.45", {"X-API-Key": token}, "bank:ref-1")
    app = create_app(settings.model_copy(update={"init": False}))
    with TestClient(app) as c:
        r = c.get("/v1/accounts/carol", headers={"X-API-Key": token})
        assert r.json()["balances"] == {"USDC": "123.450000"}


def test_event_stream_and_desk(service):
    c = service
    seed(c)
    with c.stream("GET", "/v1/events/stream", headers=auth(c, "admin")) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith(": connected")
        c.post("/v1/markets", json={"underlying": "BTC", "index": "61000", "vol": 0.6}, headers=auth(c, "admin"))
        received = []
        for line in lines:
            if line.startswith("data: "):
                received.append(json.loads(line[6:]))
                break
    assert received[0]["type"] == "market_set"
    desk = c.get("/v1/dashboard", headers=auth(c, "admin")).json()
    assert desk["oracle"][0]["index"] == 61000.0
    assert c.get("/", headers={}).status_code == 200
    metrics = c.get("/metrics", headers=auth(c, "admin")).text
    assert "margin_engine_commands_total" in metrics and "margin_engine_insurance_fund" in metrics


def test_rate_limit_buckets_stay_bounded(monkeypatch):
    from margin_engine.service import limits

    monkeypatch.setattr(limits, "BUCKETS_MAX", 100)
    bucket = limits.TokenBucket(rate_per_s=1.0, burst=2.0)
    for i in range(1000):  # a thousand addresses, one request each, a second apart
        assert bucket.allow(f"10.0.{i // 256}.{i % 256}", now_s=float(i))
    assert len(bucket.stamps) <= 100
    assert bucket.allow("10.0.3.231", 999.5) is True and bucket.allow("10.0.3.231", 999.6) is False


def test_keys_are_listed_revoked_and_checked_by_the_cli(tmp_path):
    from typer.testing import CliRunner

    from margin_engine.cli.app import app
    from margin_engine.service.keys import KeyStore
    from margin_engine.storage.journal import database_url

    runner = CliRunner()
    db = str(tmp_path / "keys.db")
    assert runner.invoke(app, ["journal", "init", db]).exit_code == 0
    token = runner.invoke(app, ["create-key", "trader", "--account", "alice", "--db", db]).stdout.strip()
    key_id = token.split("_")[1]
    for bad in ("alice ", "", "a:b/c", "x" * 65):
        result = runner.invoke(app, ["create-key", "trader", "--account", bad, "--db", db])
        assert result.exit_code == 2 and result.stderr.startswith("error: account: account id must be"), bad
    listed = json.loads(runner.invoke(app, ["list-keys", "--db", db, "--format", "json"]).stdout)
    assert listed == [{"key_id": key_id, "role": "trader", "account": "alice", "revoked": False}]
    assert token not in runner.invoke(app, ["list-keys", "--db", db]).stdout  # secrets are never shown
    import sqlalchemy as sa

    store = KeyStore(sa.create_engine(database_url(db)))
    assert store.authenticate(token) is not None
    assert runner.invoke(app, ["revoke-key", key_id, "--db", db]).stdout == f"revoked {key_id}\n"
    assert KeyStore(sa.create_engine(database_url(db))).authenticate(token) is None  # a fresh server
    assert store.authenticate(token, now_s=10**9) is None  # a running one, once its cache expires
    result = runner.invoke(app, ["revoke-key", "nope", "--db", db])
    assert result.exit_code == 2 and "no key 'nope'" in result.stderr


def test_a_desk_session_reads_only_and_ends_with_its_key(service):
    c = service
    admin_key = c.keys["admin"]
    r = c.post("/v1/session", headers={"X-API-Key": admin_key})
    assert r.status_code == 200 and r.json()["role"] == "admin"
    cookie = r.cookies.get("me_session")
    assert cookie and cookie != admin_key and "httponly" in r.headers["set-cookie"].lower()
    c.cookies.clear()
    c.cookies.set("me_session", cookie)
    assert c.get("/v1/dashboard").status_code == 200
    body = {"underlying": "BTC", "index": "61000", "vol": 0.6}
    assert c.post("/v1/markets", json=body).status_code == 401  # a session never writes
    c.app_ref.state.keys.revoke(admin_key.split("_")[1])
    assert c.get("/v1/dashboard").status_code == 401  # ends with its key
    c.cookies.set("me_session", "forged")
    assert c.get("/v1/dashboard").status_code == 401
