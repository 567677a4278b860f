"""Fault injection: a handler that raises, an answer that cannot be formatted, a journal that breaks.
A bug in one command is a 500 for that request alone (an invariant violation, never a rejection
code), nothing of it is journaled, and the service goes on; a writer that stops answers 503."""

import pytest
from svc_helpers import References, auth, deposit

from margin_engine.engine import engine as engine_module
from margin_engine.engine.commands import Deposit
from margin_engine.engine.rejection import Rejection
from margin_engine.storage import CommandFailed, JournalCorrupt, Receipt


def journaled(c) -> int:
    return len(list(c.app_ref.state.runtime.journal.history()))


@pytest.fixture
def opened(service):
    c = service
    for who in ("alice", "bob"):
        assert c.post("/v1/accounts", json={"account": who}, headers=auth(c, "admin")).status_code == 200
    c.refs = References()
    return c


def test_a_handler_that_raises_is_a_500_for_that_request_and_nothing_is_journaled(opened, monkeypatch):
    c = opened
    real = engine_module._HANDLERS[Deposit]

    def broken(state, cmd):
        if cmd.account == "bob":
            raise ZeroDivisionError("a bug in the deposit maths")
        return real(state, cmd)

    monkeypatch.setitem(engine_module._HANDLERS, Deposit, broken)
    before = journaled(c)
    r = deposit(c, "bob", "10", auth(c, "custody"), c.refs())
    assert r.status_code == 500 and r.json()["code"] == "internal_error"
    assert journaled(c) == before
    assert c.get("/v1/accounts/bob", headers=auth(c, "bob")).json()["balances"] == {}
    assert deposit(c, "alice", "10", auth(c, "custody"), c.refs()).status_code == 200  # the service goes on
    assert journaled(c) == before + 1
    assert c.get("/health").json()["status"] == "ok"


def test_one_failing_command_leaves_the_rest_of_its_batch_applied(opened, monkeypatch):
    c = opened
    runtime = c.app_ref.state.runtime
    real = engine_module._HANDLERS[Deposit]

    def broken(state, cmd):
        if cmd.amount == 13_000_000:
            raise RuntimeError("unlucky amount")
        return real(state, cmd)

    monkeypatch.setitem(engine_module._HANDLERS, Deposit, broken)
    items = [
        ({"type": "deposit", "account": "alice", "amount": amount, "reference": f"0xb:{i}"}, None)
        for i, amount in enumerate(("1", "13", "2"))
    ]
    results = runtime.journal.submit_batch(runtime.engine, items)
    assert isinstance(results[0], Receipt) and isinstance(results[2], Receipt)
    assert isinstance(results[1], CommandFailed) and not isinstance(results[1], Rejection)
    assert results[2].seq == results[0].seq + 1  # the failed command took no sequence number
    assert runtime.engine.state.ledger.balance("user:alice", "USDC") == 3_000_000
    assert "0xb:1" not in runtime.engine.state.references  # nothing it half-did stayed


def test_an_answer_that_cannot_be_formatted_fails_that_request_only(opened, monkeypatch):
    c = opened

    def unformattable(self):
        raise ArithmeticError("cannot format")

    monkeypatch.setattr(Rejection, "to_json", unformattable)
    r = c.post("/v1/accounts/alice/withdrawals", json={"amount": "5"}, headers=auth(c, "alice"))
    assert r.status_code == 500
    monkeypatch.undo()
    r = c.post("/v1/accounts/alice/withdrawals", json={"amount": "5"}, headers=auth(c, "alice"))
    assert r.status_code == 409 and r.json()["code"] == "insufficient_balance"


def test_a_writer_that_stops_answers_503_and_health_says_so(opened, monkeypatch):
    c = opened
    journal = c.app_ref.state.runtime.journal

    def corrupt(*args, **kwargs):
        raise JournalCorrupt("injected: the database went bad")

    monkeypatch.setattr(journal, "submit_batch", corrupt)
    r = deposit(c, "alice", "1", auth(c, "custody"), c.refs())
    assert r.status_code == 503 and "journal is broken" in r.json()["message"]
    r = deposit(c, "alice", "1", auth(c, "custody"), c.refs())  # later commands: 503 at once, no hang
    assert r.status_code == 503
    health = c.get("/health")
    assert health.status_code == 503 and "injected" in health.json()["writer"]
    assert c.get("/v1/accounts/alice", headers=auth(c, "alice")).status_code == 200  # reads still answer


def test_a_command_that_would_break_conservation_is_refused_before_it_is_journaled(opened, monkeypatch):
    """The service checks each command's events as it decides them (audit_events), not only at the
    snapshot every 1,000 commands: a handler that mints money (a transfer from outside that is no
    deposit) is refused with a 500 and nothing of it is written."""
    from margin_engine.engine.events import Transferred

    c = opened

    def mint(state, cmd):
        return [Transferred("external", "user:bob", "USDC", 10**12, "fee")]

    monkeypatch.setitem(engine_module._HANDLERS, Deposit, mint)
    before = journaled(c)
    r = deposit(c, "bob", "1", auth(c, "custody"), c.refs())
    assert r.status_code == 500 and journaled(c) == before
    assert c.get("/v1/accounts/bob", headers=auth(c, "bob")).json()["balances"] == {}
