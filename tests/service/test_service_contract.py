"""What the API promises: the allocate endpoint, 404 for what the URL path names and 409 for a command's
rejection, a bound keeper key acting as its own liquidator, Retry-After on 429, and an OpenAPI document
with its security schemes, every error status and the answers' models (the JSON unchanged)."""

import pytest
from fastapi.testclient import TestClient
from svc_helpers import References, auth, deposit

from margin_engine.service import openapi
from margin_engine.service.app import create_app
from margin_engine.service.settings import Settings

T0 = "2026-11-25T08:00:00Z"


def market(c, index="60000"):
    admin = auth(c, "admin")
    assert c.post("/v1/time", json={"time": T0}, headers=admin).status_code == 200
    body = {"underlying": "BTC", "index": index, "vol": 0.6}
    assert c.post("/v1/markets", json=body, headers=admin).status_code == 200


def test_allocate_moves_collateral_into_an_isolated_position_and_back(service):
    c = service
    refs = References()
    market(c)
    alice = auth(c, "alice")
    assert c.post("/v1/accounts", json={"account": "alice", "mode": "isolated"}, headers=alice).status_code == 200
    assert c.post("/v1/accounts", json={"account": "bob"}, headers=auth(c, "bob")).status_code == 200
    for who in ("alice", "bob"):
        assert deposit(c, who, "100000", auth(c, "custody"), refs()).status_code == 200
    fill = {"buyer": "alice", "seller": "bob", "instrument": "BTC-PERP", "size": "1", "price": "60000"}
    assert c.post("/v1/fills", json=fill, headers=auth(c, "admin")).status_code == 200

    def held():
        account = c.get("/v1/accounts/alice", headers=alice).json()
        return account["balances"]["USDC"], account["positions"][0]["collateral"]

    free, collateral = held()
    headers = {**alice, "Idempotency-Key": "alloc-1"}
    body = {"instrument": "BTC-PERP", "amount": "500"}
    r = c.post("/v1/accounts/alice/allocate", json=body, headers=headers)
    assert r.status_code == 200, r.text
    openapi.Receipt.model_validate(r.json())
    assert r.json()["client_id"] == "alloc-1" and any(e["type"] == "transfer" for e in r.json()["events"])
    assert c.post("/v1/accounts/alice/allocate", json=body, headers=headers).json() == r.json()  # once
    after = held()
    assert float(after[0]) == float(free) - 500 and float(after[1]) == float(collateral) + 500
    back = c.post("/v1/accounts/alice/allocate", json={"instrument": "BTC-PERP", "amount": "-500"}, headers=alice)
    assert back.status_code == 200 and held() == (free, collateral)
    r = c.post("/v1/accounts/alice/allocate", json={"instrument": "BTC-PERP", "amount": "-1000000"}, headers=alice)
    assert r.status_code == 409 and r.json()["code"] == "insufficient_balance"
    r = c.post("/v1/accounts/alice/allocate", json={"instrument": "ETH-PERP", "amount": "1"}, headers=alice)
    assert r.status_code == 409 and r.json()["code"] == "no_position"
    r = c.post("/v1/accounts/bob/allocate", json={"instrument": "BTC-PERP", "amount": "1"}, headers=auth(c, "admin"))
    assert r.status_code == 409 and r.json()["code"] == "wrong_mode"  # bob is cross
    r = c.post("/v1/accounts/bob/allocate", json={"instrument": "BTC-PERP", "amount": "1"}, headers=alice)
    assert r.status_code == 403
    r = c.post("/v1/accounts/alice/allocate", json={"instrument": "BTC-PERP", "amount": "1e400"}, headers=alice)
    assert r.status_code == 422 and r.json()["field"] == "amount"
    r = c.post("/v1/accounts/alice/allocate", json={"instrument": "BTC-PERP", "amount": "1", "x": 1}, headers=alice)
    assert r.status_code == 422


def test_unknown_in_the_path_is_404_and_a_rejected_command_409(service):
    c = service
    market(c)
    admin = auth(c, "admin")
    assert c.post("/v1/accounts", json={"account": "alice"}, headers=auth(c, "alice")).status_code == 200
    nobody = "/v1/accounts/nobody"
    for method, path, body, who in (
        ("GET", nobody, None, "admin"),
        ("GET", f"{nobody}/margin", None, "admin"),
        ("POST", f"{nobody}/what-if", {"trades": ["BTC-PERP:1"]}, "admin"),
        ("POST", f"{nobody}/deposits", {"amount": "1", "reference": "0xa:1"}, "custody"),
        ("POST", f"{nobody}/withdrawals", {"amount": "1"}, "admin"),
        ("POST", f"{nobody}/allocate", {"instrument": "BTC-PERP", "amount": "1"}, "admin"),
        ("POST", "/v1/withdrawals/W9/settle", {"reference": "0xp:1"}, "custody"),
        ("POST", "/v1/withdrawals/W9/fail", {"reason": "no"}, "custody"),
    ):
        r = c.request(method, path, json=body, headers=auth(c, who))
        assert r.status_code == 404, (path, r.status_code, r.text)
        assert r.json()["code"] in ("unknown_account", "unknown_withdrawal") and r.json()["message"], r.text
    fill = {"buyer": "alice", "seller": "nobody", "instrument": "BTC-PERP", "size": "1", "price": "60000"}
    r = c.post("/v1/fills", json=fill, headers=admin)  # named in the body: the command's rejection
    assert r.status_code == 409 and r.json()["code"] == "unknown_account", r.text
    r = c.post("/v1/liquidations", json={"account": "nobody"}, headers=auth(c, "keeper"))
    assert r.status_code == 409 and r.json()["code"] == "unknown_account", r.text
    r = c.post("/v1/accounts", json={"account": "alice"}, headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "account_exists"


@pytest.fixture
def dutch(tmp_path):
    """The derive profile (Dutch auctions), a keeper key bound to the keeper account."""
    app = create_app(Settings(db_url=str(tmp_path / "d.db"), profile="derive", init=True))
    with TestClient(app) as c:
        keys = app.state.keys
        c.keys = {
            "admin": keys.create("admin"),
            "keeper": keys.create("keeper", "keeper"),
            "scout": keys.create("keeper"),
        }
        yield c


def test_a_bound_keeper_starts_and_bids_as_its_own_account_by_default(dutch):
    c = dutch
    admin = auth(c, "admin")
    refs = References()
    market(c)
    # 2 BTC at 60,000 needs 12,000 (derive mainnet IM 10%); at 56,000 alice has 13,000 - 8,000 = 5,000
    # against MM 6.5% x 112,000 = 7,280: liquidatable, solvent
    for who, amount in (("alice", "13000"), ("bob", "1000000"), ("keeper", "1000000")):
        assert c.post("/v1/accounts", json={"account": who}, headers=admin).status_code == 200
        assert deposit(c, who, amount, admin, refs()).status_code == 200
    fill = {"buyer": "alice", "seller": "bob", "instrument": "BTC-PERP", "size": "2", "price": "60000"}
    assert c.post("/v1/fills", json=fill, headers=admin).status_code == 200, "fill"
    assert c.post("/v1/markets", json={"underlying": "BTC", "index": "56000", "vol": 0.6}, headers=admin).status_code
    queue = c.get("/v1/liquidations/queue", headers=auth(c, "keeper")).json()["queue"]
    assert [q["account"] for q in queue] == ["alice"]
    r = c.post("/v1/liquidations", json={"account": "alice"}, headers=auth(c, "keeper"))  # no liquidator named
    assert r.status_code == 200, r.text
    auctions = c.get("/v1/auctions", headers=auth(c, "keeper")).json()["auctions"]
    assert [a["account"] for a in auctions] == ["alice"], auctions
    auction = auctions[0]["id"]
    r = c.post(f"/v1/auctions/{auction}/bids", json={"fraction": "1"}, headers=auth(c, "scout"))
    assert r.status_code == 422 and r.json()["field"] == "liquidator"  # an unbound key bids as no one
    r = c.post(f"/v1/auctions/{auction}/bids", json={"fraction": "1", "liquidator": "bob"}, headers=auth(c, "keeper"))
    assert r.status_code == 403
    r = c.post(f"/v1/auctions/{auction}/bids", json={"fraction": "1"}, headers=auth(c, "keeper"))
    assert r.status_code == 200, r.text
    fills = [e for e in r.json()["events"] if e["type"] == "liquidation_fill"]
    assert fills and {f["liquidator"] for f in fills} == {"keeper"}
    r = c.post("/v1/auctions/L999/bids", json={"fraction": "1"}, headers=auth(c, "keeper"))
    assert r.status_code == 404 and r.json()["code"] == "unknown_auction"


def test_429_says_when_to_retry(tmp_path):
    settings = Settings(
        db_url=str(tmp_path / "r.db"),
        init=True,
        rate_limit_per_s=0.5,
        rate_limit_burst=1,
        anonymous_rate_limit_per_s=0.001,
        anonymous_rate_limit_burst=1,
    )
    app = create_app(settings)
    with TestClient(app) as c:
        key = {"X-API-Key": app.state.keys.create("admin")}
        assert c.get("/v1/accounts", headers=key).status_code == 200
        r = c.get("/v1/accounts", headers=key)
        assert r.status_code == 429 and r.json()["code"] == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 2  # half a token a second: two seconds at most
        assert c.get("/v1/accounts").status_code == 401
        r = c.get("/v1/accounts")
        assert r.status_code == 429 and 990 <= int(r.headers["retry-after"]) <= 1000  # a token every 1,000 s


def test_retry_after_is_whole_seconds_and_at_least_one():
    from margin_engine.service.limits import TokenBucket

    bucket = TokenBucket(rate_per_s=10.0, burst=1.0)
    assert bucket.allow("k", 0.0) and not bucket.allow("k", 0.01)
    assert bucket.retry_after_s("k", 0.01) == 1  # 0.09 s: rounded up to one
    slow = TokenBucket(rate_per_s=0.25, burst=2.0)
    assert slow.allow("k", 0.0) and slow.allow("k", 0.0) and not slow.allow("k", 0.0)
    assert slow.retry_after_s("k", 0.0) == 4 and slow.retry_after_s("k", 3.5) == 1


def test_openapi_has_security_every_error_and_the_answers_models(service):
    spec = service.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["Bearer"]["scheme"] == "bearer" and schemes["DeskSession"]["in"] == "cookie"
    error = spec["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"code", "message"} and "field" in error["properties"]
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            responses = op["responses"]
            if path == "/health":
                assert set(responses) == {"200", "503"} and "security" not in op
                continue
            assert {"413"} <= set(responses), where
            if (method, path) != ("delete", "/v1/session"):
                assert op["security"] and {"401", "429"} <= set(responses), where
                assert "Retry-After" in responses["429"]["headers"], where
            for code in set(responses) - {"200"}:
                ref = responses[code]["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorBody", where
            if method in ("post", "delete") and path.startswith("/v1/") and "session" not in path:
                if path.endswith("/what-if"):
                    continue
                assert {"403", "409", "422", "500", "503"} <= set(responses), where
                assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Receipt"), where
    paths = spec["paths"]
    for path in ("/v1/accounts/{account}", "/v1/accounts/{account}/margin", "/v1/accounts/{account}/allocate"):
        assert "404" in next(iter(paths[path].values()))["responses"], path
    assert paths["/v1/accounts/{account}/margin"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/Margin"}


def test_the_models_describe_the_json_as_sent(service):
    c = service
    market(c)
    assert c.post("/v1/accounts", json={"account": "alice"}, headers=auth(c, "alice")).status_code == 200
    assert deposit(c, "alice", "1000", auth(c, "custody"), "0xm:1").status_code == 200
    alice = auth(c, "alice")
    r = c.post("/v1/accounts/alice/withdrawals", json={"amount": "10"}, headers=alice)
    receipt = r.json()
    assert set(receipt) == {"accepted", "seq", "client_id", "events"}  # the shape as before
    openapi.Receipt.model_validate(receipt)
    openapi.Account.model_validate(c.get("/v1/accounts/alice", headers=alice).json())
    openapi.Margin.model_validate(c.get("/v1/accounts/alice/margin", headers=alice).json())
    openapi.WhatIfAnswer.model_validate(
        c.post("/v1/accounts/alice/what-if", json={"trades": ["BTC-PERP:1"]}, headers=alice).json()
    )
    openapi.Withdrawals.model_validate(c.get("/v1/withdrawals", headers=auth(c, "custody")).json())
    openapi.Accounts.model_validate(c.get("/v1/accounts", headers=auth(c, "admin")).json())
    openapi.Queue.model_validate(c.get("/v1/liquidations/queue", headers=auth(c, "keeper")).json())
    openapi.Auctions.model_validate(c.get("/v1/auctions", headers=auth(c, "keeper")).json())
    openapi.Session.model_validate(c.post("/v1/session", headers=alice).json())
    openapi.Health.model_validate(c.get("/health").json())
    r = c.post("/v1/accounts/alice/withdrawals", json={"amount": "1000000"}, headers=alice)
    assert r.status_code == 409
    openapi.ErrorBody.model_validate(r.json())


def test_markets_take_the_market_model_and_a_stablecoin_price(dutch):
    c = dutch
    admin = auth(c, "admin")
    assert c.post("/v1/time", json={"time": T0}, headers=admin).status_code == 200
    body = {
        "underlying": "BTC",
        "index": "60000",
        "vol": 0.6,
        "rate": {"25DEC26": "0.04"},
        "forward": {"25DEC26": "60200"},
        "perp": "60300",
        "confidence": {"spot": "0.9", "perp": "0.8"},
    }
    r = c.post("/v1/markets", json=body, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["events"][0]["market"]["perp"] == "60300"
    r = c.post("/v1/markets", json={"underlying": "USDC", "index": "0.985"}, headers=admin)
    assert r.status_code == 200, r.text
    state = c.app.state.runtime.engine.state
    assert state.markets["BTC"].perp_mark == 60300.0 and state.markets["USDC"].index == 0.985
    # a perp mark 100% off the index is a unit error; a stablecoin has no vol: both 422, nothing changed
    r = c.post("/v1/markets", json={**body, "perp": "120000"}, headers=admin)
    assert r.status_code == 422 and r.json()["field"] == "perp"
    r = c.post("/v1/markets", json={"underlying": "USDC", "index": "0.99", "vol": 0.5}, headers=admin)
    assert r.status_code == 422
    assert state.markets["BTC"].perp_mark == 60300.0 and state.markets["USDC"].index == 0.985
