"""The attacks of issue 11 against the real server (a `serve` process on loopback): requests that used
to kill the writer, fail a batch or blind the keepers; a trader crediting itself; keepers acting as
others; idempotency keys shared across callers; and SIGTERM with a stream open."""

import concurrent.futures
import signal
import subprocess
import time

import httpx
import pytest
from svc_helpers import References, create_key, free_port, start

T0 = "2026-11-25T08:00:00Z"


@pytest.fixture
def server(tmp_path):
    """A fresh server with a market, a funded trader and a maker, and keys for each role."""
    db = str(tmp_path / "attack.db")
    port = free_port()
    proc = start(db, port)
    keys = {
        "admin": create_key(db, "admin"),
        "custody": create_key(db, "custody"),
        "alice": create_key(db, "trader", "alice"),
        "mallory": create_key(db, "trader", "mallory"),
        "keeper": create_key(db, "keeper", "keeper"),
        "scout": create_key(db, "keeper"),
    }
    base = f"http://127.0.0.1:{port}"
    clients = {who: httpx.Client(base_url=base, headers={"X-API-Key": k}, timeout=10) for who, k in keys.items()}
    refs = References()
    admin, custody = clients["admin"], clients["custody"]
    admin.post("/v1/time", json={"time": T0}).raise_for_status()
    admin.post("/v1/markets", json={"underlying": "BTC", "index": "60000", "vol": 0.6}).raise_for_status()
    for account in ("alice", "mallory", "bob", "keeper"):
        admin.post("/v1/accounts", json={"account": account}).raise_for_status()
    for account, amount in (("alice", "100000"), ("bob", "1000000"), ("keeper", "1000000")):
        body = {"amount": amount, "reference": refs()}
        custody.post(f"/v1/accounts/{account}/deposits", json=body).raise_for_status()
    state = {"db": db, "port": port, "proc": proc, "clients": clients, "refs": refs, "base": base}
    yield state
    for c in clients.values():
        c.close()
    state["proc"].kill()
    state["proc"].wait()


def restart(s) -> None:
    s["proc"].send_signal(signal.SIGTERM)
    s["proc"].wait(timeout=20)
    s["proc"] = start(s["db"], s["port"])


def alive(s) -> None:
    """The writer still takes commands, and every read a keeper and the desk make answers 200."""
    admin = s["clients"]["admin"]
    r = s["clients"]["custody"].post("/v1/accounts/alice/deposits", json={"amount": "1", "reference": s["refs"]()})
    assert r.status_code == 200, r.text
    assert httpx.get(f"{s['base']}/health").json()["status"] == "ok"
    assert s["clients"]["keeper"].get("/v1/liquidations/queue").status_code == 200
    for path in ("/v1/dashboard", "/metrics", "/v1/accounts/alice/margin", "/v1/accounts"):
        assert admin.get(path).status_code == 200, path


KILLERS = [
    # (who, path, body): each once killed the writer or a batch, or was accepted and broke reads
    ("alice", "/v1/accounts/alice/withdrawals", {"amount": "1e22"}),
    ("mallory", "/v1/accounts/mallory/withdrawals", {"amount": "1e22"}),
    ("custody", "/v1/accounts/alice/deposits", {"amount": "1e22", "reference": "0xk:1"}),
    ("custody", "/v1/accounts/alice/deposits", {"amount": "1e303", "reference": "0xk:2"}),
    ("custody", "/v1/accounts/alice/deposits", {"amount": "1e400", "reference": "0xk:3"}),
    ("custody", "/v1/accounts/alice/deposits", {"amount": "1e999999999999999999", "reference": "0xk:4"}),
    ("custody", "/v1/accounts/alice/deposits", {"amount": "1e-999999999999999999", "reference": "0xk:5"}),
    ("admin", "/v1/fills", {"buyer": "alice", "seller": "bob", "instrument": "BTC-PERP", "size": "1e21", "price": "1"}),
    ("admin", "/v1/fills", {"buyer": "alice", "seller": "bob", "instrument": "BTC-PERP", "size": "1", "price": "1e30"}),
    ("admin", "/v1/insurance", {"amount": "1e400"}),
    ("admin", "/v1/markets", {"underlying": "BTC", "index": "1e308", "vol": 0.6}),
]


def test_killer_requests_are_refused_and_the_writer_goes_on(server):
    s = server
    for i, (who, path, body) in enumerate(KILLERS):
        r = s["clients"][who].post(path, json=body, headers={"Idempotency-Key": f"kill-{i}"})
        assert r.status_code == 422, (path, body, r.status_code, r.text)
        answer = r.json()
        assert answer["code"] == "bad_input" and answer["field"] in ("amount", "size", "price", "market.index"), answer
        assert "limit" in answer["message"] or "range" in answer["message"] or "decimal number" in answer["message"]
        alive(s)
    # the same idempotency key again after a restart: the same answer, the writer alive
    who, path, body = KILLERS[0]
    key = {"Idempotency-Key": "kill-again"}
    first = s["clients"][who].post(path, json=body, headers=key)
    restart(s)
    again = s["clients"][who].post(path, json=body, headers=key)
    assert (first.status_code, first.json()) == (again.status_code, again.json())
    alive(s)


def test_a_bad_request_does_not_fail_the_others_of_its_batch(server):
    s = server
    custody = s["clients"]["custody"]
    bad = [
        {"amount": "1e999999999999999999", "reference": "0xbad:1"},
        {"amount": "1e-999999999999999999", "reference": "0xbad:2"},
    ]
    good = [{"amount": "1", "reference": f"0xgood:{i}"} for i in range(30)]
    bodies = bad[:1] + good[:15] + bad[1:] + good[15:]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda b: custody.post("/v1/accounts/bob/deposits", json=b).status_code, bodies))
    assert codes.count(200) == 30 and codes.count(422) == 2
    balances = s["clients"]["admin"].get("/v1/accounts/bob").json()["balances"]
    assert balances["USDC"] == "1000030.000000"


def test_a_trader_cannot_credit_a_deposit_and_custody_credits_a_transfer_once(server):
    s = server
    alice, custody = s["clients"]["alice"], s["clients"]["custody"]
    before = alice.get("/v1/accounts/alice").json()["balances"]
    r = alice.post("/v1/accounts/alice/deposits", json={"amount": "1000000", "reference": "0xfake:0"})
    assert r.status_code == 403
    r = custody.post("/v1/accounts/alice/deposits", json={"amount": "5"})
    assert r.status_code == 422 and r.json()["field"] == "reference"
    assert custody.post("/v1/accounts/alice/deposits", json={"amount": "5", "reference": "0xab:1"}).status_code == 200
    r = custody.post("/v1/accounts/alice/deposits", json={"amount": "5", "reference": "0xab:1"})
    assert r.status_code == 409 and r.json()["code"] == "duplicate_reference"
    assert alice.get("/v1/accounts/alice").json()["balances"]["USDC"] == f"{float(before['USDC']) + 5:.6f}"


def test_withdrawals_are_requested_then_settled_or_failed_by_custody(server):
    s = server
    alice, custody = s["clients"]["alice"], s["clients"]["custody"]
    r = alice.post("/v1/accounts/alice/withdrawals", json={"amount": "1000"})
    assert r.status_code == 200
    requested = next(e for e in r.json()["events"] if e["type"] == "withdrawal_requested")
    account = alice.get("/v1/accounts/alice").json()
    assert account["balances"]["USDC"] == "99000.000000"  # debited on request
    assert account["pending_withdrawals"][0]["id"] == requested["withdrawal"] == "W1"
    assert alice.post("/v1/withdrawals/W1/settle", json={"reference": "0xpay:1"}).status_code == 403
    assert [w["id"] for w in custody.get("/v1/withdrawals").json()["withdrawals"]] == ["W1"]
    assert custody.post("/v1/withdrawals/W1/settle", json={"reference": "0xpay:1"}).status_code == 200
    r = custody.post("/v1/withdrawals/W1/fail", json={"reason": "too late"})
    assert r.status_code == 404 and r.json()["code"] == "unknown_withdrawal"  # settled once, closed
    alice.post("/v1/accounts/alice/withdrawals", json={"amount": "500"}).raise_for_status()
    assert custody.post("/v1/withdrawals/W2/fail", json={"reason": "address on a sanctions list"}).status_code == 200
    account = alice.get("/v1/accounts/alice").json()
    assert account["balances"]["USDC"] == "99000.000000" and account["pending_withdrawals"] == []  # returned


def test_keepers_act_only_as_their_bound_account(server):
    s = server
    admin, keeper, scout = s["clients"]["admin"], s["clients"]["keeper"], s["clients"]["scout"]
    fill = {"buyer": "alice", "seller": "bob", "instrument": "BTC-PERP", "size": "8", "price": "60000"}
    admin.post("/v1/fills", json=fill).raise_for_status()
    admin.post("/v1/markets", json={"underlying": "BTC", "index": "47800", "vol": 0.6}).raise_for_status()
    assert [q["account"] for q in keeper.get("/v1/liquidations/queue").json()["queue"]] == ["alice"]
    r = scout.post("/v1/liquidations", json={"account": "alice", "liquidator": "bob"})
    assert r.status_code == 403  # the hole: an unbound key loading bob with alice's position
    r = keeper.post("/v1/liquidations", json={"account": "alice", "liquidator": "bob"})
    assert r.status_code == 403
    for method, path, body in (
        ("POST", "/v1/accounts/keeper/deposits", {"amount": "1", "reference": "0xk:9"}),
        ("POST", "/v1/accounts/keeper/withdrawals", {"amount": "1"}),
        ("GET", "/v1/accounts/keeper/margin", None),
        ("POST", "/v1/accounts/keeper/what-if", {"trades": ["BTC-PERP:1"]}),
        ("GET", "/v1/accounts/keeper", None),
    ):
        assert keeper.request(method, path, json=body).status_code == 403, path
    assert admin.get("/v1/accounts/bob").json()["positions"][0]["size"] == "-8"
    r = keeper.post("/v1/liquidations", json={"account": "alice"})
    assert r.status_code == 200
    assert next(e for e in r.json()["events"] if e["type"] == "liquidation_fill")["liquidator"] == "keeper"


def test_idempotency_keys_are_per_caller(server):
    s = server
    alice, admin = s["clients"]["alice"], s["clients"]["admin"]
    key = {"Idempotency-Key": "fill-000042"}
    assert alice.post("/v1/accounts/alice/withdrawals", json={"amount": "1"}, headers=key).status_code == 200
    fill = {"buyer": "alice", "seller": "bob", "instrument": "BTC-PERP", "size": "1", "price": "60000"}
    r = admin.post("/v1/fills", json=fill, headers=key)  # the admin's own key space: applied
    assert r.status_code == 200 and r.json()["client_id"] == "fill-000042"
    again = admin.post("/v1/fills", json=fill, headers=key)
    assert again.json() == r.json()
    other = admin.post("/v1/fills", json={**fill, "size": "2"}, headers=key)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert "seq" not in other.json()["message"]  # says nothing of where it was used


def test_sigterm_stops_the_server_with_a_stream_open(server):
    s = server
    with httpx.stream("GET", f"{s['base']}/v1/events/stream", headers=dict(s["clients"]["admin"].headers)):
        started = time.monotonic()
        s["proc"].send_signal(signal.SIGTERM)
        s["proc"].wait(timeout=15)
    assert time.monotonic() - started < 15 and s["proc"].returncode is not None


def test_serve_refuses_a_missing_journal_with_one_line(tmp_path):
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "margin_engine.cli.app", "serve", "--db", str(tmp_path / "typo.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "no journal at" in proc.stderr and "--init" in proc.stderr
    assert not (tmp_path / "typo.db").exists()
    keys = subprocess.run(
        [sys.executable, "-m", "margin_engine.cli.app", "create-key", "admin", "--db", str(tmp_path / "typo.db")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert keys.returncode == 2 and keys.stdout == "" and not (tmp_path / "typo.db").exists()
