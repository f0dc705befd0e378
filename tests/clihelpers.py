"""Running the real `worksync-p2p` command line in a child process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLI_TIMEOUT_S = 60


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """One command, to completion; bounded by a timeout, never checked (tests check)."""
    return subprocess.run(
        [sys.executable, "-m", "worksync_p2p", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
