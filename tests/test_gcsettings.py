"""The collector settings the daemon and its render workers start with."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc
before = gc.get_threshold()
from worksync_p2p import gcsettings
gcsettings.settle()
print(gc.get_threshold()[0], gc.get_threshold()[1:] == before[1:], gc.get_freeze_count() > 0)
"""


def test_settle_freezes_what_is_loaded_and_collects_the_young_less_often() -> None:
    # A process of its own: freezing is for the rest of a process's life.
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert out == ["20000", "True", "True"]
