"""`serve` says what it does: its start-up lines (the URL, the database, the profile, what to do when no
key exists), a profile other than the journal's refused, and the key commands never creating a database
on a mistyped path. uvicorn is replaced, so nothing listens."""

import json

import pytest
from typer.testing import CliRunner

from margin_engine.cli.app import app


@pytest.fixture
def no_listen(monkeypatch):
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda asgi, **kw: started.append(kw))
    return started


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_serve_says_where_with_which_profile_and_how_to_make_the_first_key(tmp_path, no_listen):
    db = tmp_path / "new.db"
    result = invoke("serve", "--db", db, "--port", 8123, "--init", "--no-log-commands")
    assert result.exit_code == 0, result.output
    first, second = result.stderr.splitlines()
    assert "http://127.0.0.1:8123/" in first and "http://127.0.0.1:8123/docs" in first
    assert f"database {db}" in first and "profile deribit" in first and "0 commands" in first
    assert second == f"no API keys yet: run `margin-engine create-key admin --db {db}`"
    assert no_listen == [
        {"host": "127.0.0.1", "port": 8123, "log_level": "warning", "access_log": False, "timeout_graceful_shutdown": 5}
    ]
    assert invoke("create-key", "admin", "--db", db).exit_code == 0
    again = invoke("serve", "--db", db, "--no-log-commands")  # its own profile, no --init needed
    assert again.exit_code == 0, again.output
    assert "1 API key(s)" in again.stderr and "no API keys yet" not in again.stderr


def test_a_new_journal_takes_the_profile_given(tmp_path, no_listen):
    db = tmp_path / "pm.db"
    result = invoke("serve", "--db", db, "--init", "--profile", "deribit-pm", "--no-log-commands")
    assert result.exit_code == 0, result.output
    assert "profile deribit-pm" in result.stderr
    same = invoke("serve", "--db", db, "--profile", "deribit-pm", "--no-log-commands")  # the same one: fine
    assert same.exit_code == 0, same.output


def test_serve_refuses_a_profile_other_than_the_journals(tmp_path, no_listen):
    db = tmp_path / "d.db"
    assert invoke("serve", "--db", db, "--init", "--no-log-commands").exit_code == 0
    for other in ("derive", "deribit-pm"):
        for init in ([], ["--init"]):
            result = invoke("serve", "--db", db, "--profile", other, *init, "--no-log-commands")
            assert result.exit_code == 2, result.output
            assert result.stderr.count("\n") == 1, result.stderr
            assert "holds a journal with profile 'deribit'" in result.stderr and repr(other) in result.stderr
    assert len(no_listen) == 1  # only the first one started


def test_the_same_name_with_other_parameters_is_refused(tmp_path, no_listen):
    from importlib import resources

    db = tmp_path / "d.db"
    assert invoke("serve", "--db", db, "--init", "--no-log-commands").exit_code == 0
    text = (resources.files("margin_engine.profiles") / "deribit.toml").read_text()
    changed = tmp_path / "deribit-edited.toml"
    changed.write_text(text.replace("max_positions_per_account = 64", "max_positions_per_account = 65", 1))
    result = invoke("serve", "--db", db, "--profile", changed, "--no-log-commands")
    assert result.exit_code == 2 and "profile 'deribit' with other parameters" in result.stderr, result.output


def test_a_portfolio_account_under_a_standard_profile_is_refused(service):
    from svc_helpers import auth

    r = service.post("/v1/accounts", json={"account": "alice", "mode": "portfolio"}, headers=auth(service, "alice"))
    assert r.status_code == 409 and r.json()["code"] == "mode_unavailable", r.text
    assert "deribit" in r.json()["message"]
    r = service.get("/v1/accounts/alice", headers=auth(service, "alice"))
    assert r.status_code == 404  # nothing opened, not a silent cross account


@pytest.mark.parametrize("command", [["create-key", "admin"], ["list-keys"], ["revoke-key", "abc"]])
def test_key_commands_never_create_a_database_on_a_mistyped_path(tmp_path, command):
    typo = tmp_path / "margin-engin.db"
    result = invoke(*command, "--db", typo)
    assert result.exit_code == 2 and result.stdout == "", result.output
    assert result.stderr.startswith("error: db:") and result.stderr.count("\n") == 1, result.stderr
    assert not typo.exists()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    result = invoke(*command, "--db", empty)
    assert result.exit_code == 2 and "holds no journal" in result.stderr, result.output  # refused, not a journal


def test_key_commands_work_on_a_journal(tmp_path):
    db = tmp_path / "k.db"
    assert invoke("journal", "init", db).exit_code == 0
    token = invoke("create-key", "keeper", "--account", "keeper", "--db", db).stdout.strip()
    listed = json.loads(invoke("list-keys", "--db", db, "--format", "json").stdout)
    assert [(k["role"], k["account"]) for k in listed] == [("keeper", "keeper")] and token.startswith("me_")
