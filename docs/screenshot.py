"""Write docs/img/dashboard.png: the desk after the browser test's scripted session (deposits, trades,
a price move, a liquidation), seen by headless Chromium. One code path: it runs that test.

python docs/screenshot.py   (needs Debian's chromium and chromium-driver)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    env = {**os.environ, "DESK_SCREENSHOT": str(ROOT / "docs" / "img" / "dashboard.png")}
    test = "tests/service/test_dashboard_browser.py"
    sys.exit(
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], cwd=ROOT, env=env
        ).returncode
    )


if __name__ == "__main__":
    main()
