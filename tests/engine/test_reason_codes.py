"""Every rejection code the handlers can raise is listed in REASON_CODES and explained in
docs/formats.md, and nothing is listed that no handler raises."""

import re
from pathlib import Path

from margin_engine.engine.rejection import REASON_CODES

ROOT = Path(__file__).parents[2]
ENGINE = ROOT / "src" / "margin_engine" / "engine"


def raised_codes() -> set[str]:
    source = "\n".join(p.read_text() for p in ENGINE.glob("*.py"))
    literal = set(re.findall(r'reject\(\s*"([a-z_]+)"', source)) | set(re.findall(r'Rejection\("([a-z_]+)"', source))
    assert 'f"oracle_{outcome.reason}"' in source and 'f"oracle_{mark.status}"' in source  # listed from the enums
    return literal


def test_every_raised_code_is_listed_and_documented():
    listed = set(REASON_CODES)
    assert len(listed) == len(REASON_CODES), "a code is listed twice"
    raised = raised_codes()
    assert raised - listed == set(), "raised but not in REASON_CODES"
    oracle = {c for c in listed if c.startswith("oracle_")}
    assert listed - raised - oracle == set(), "listed but never raised"
    docs = (ROOT / "docs" / "formats.md").read_text()
    assert {c for c in listed if f"`{c}`" not in docs} == set(), "not explained in docs/formats.md"
