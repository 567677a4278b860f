"""`margin-engine profiles` and the --profile help: every packaged profile, with its venue, version and source."""

import json

from typer.testing import CliRunner

from margin_engine.cli.app import app
from margin_engine.margin.profile import packaged_profiles

runner = CliRunner()


def test_profiles_lists_every_packaged_profile_with_its_source():
    result = runner.invoke(app, ["profiles", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert (
        set(rows)
        == set(packaged_profiles())
        >= {"deribit", "deribit-pm", "derive", "derive-test", "derive-pmrm", "derive-pmrm-test", "dydx", "hyperliquid"}
    )
    assert rows["derive"]["version"] == "mainnet" and "config-mainnet.sol" in rows["derive"]["source"]
    assert rows["derive-pmrm-test"]["version"] == "test" and "config-test.sol" in rows["derive-pmrm-test"]["source"]
    assert rows["derive-pmrm"]["margin"] == "standard + portfolio" and rows["derive"]["margin"] == "standard"
    assert {r["venue"] for r in rows.values()} == {"Deribit", "Derive", "dYdX", "Hyperliquid"}
    table = runner.invoke(app, ["profiles"], terminal_width=200)
    assert table.exit_code == 0 and "derive-pmrm-test" in table.output


def test_profile_help_names_every_packaged_profile():
    result = runner.invoke(app, ["margin", "--help"], terminal_width=300)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for name in packaged_profiles():
        assert name in text, name
