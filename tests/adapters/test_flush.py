"""How a batch of new files is made durable: an fsync each, or one syncfs for many.

The system calls are watched with strace on a child process (skipped, with
the reason, where strace is missing or not allowed); the files are real.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from worksync_p2p.adapters import files

CHILD = """
import sys
from pathlib import Path
from worksync_p2p.adapters import files
root, count = Path(sys.argv[1]), int(sys.argv[2])
texts = [(f"sub/item-{n}.md", f"---\\nid: item-{n}\\n---\\nbody {n}\\n") for n in range(count)]
outcomes = files.write_new_files(root, texts)
assert all(o is files.WriteOutcome.WRITTEN for o in outcomes), outcomes
"""


def _syscalls(tmp_path: Path, count: int) -> list[str]:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    root = tmp_path / "ws"
    (root / "sub").mkdir(parents=True)
    trace = tmp_path / "trace"
    watched = [strace, "-f", "-qq", "-e", "trace=fsync,syncfs", "-o", str(trace)]
    done = subprocess.run(
        [*watched, sys.executable, "-c", CHILD, str(root), str(count)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0 and "ptrace" in done.stderr:
        pytest.skip(f"strace cannot trace here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr
    assert len(list((root / "sub").glob("*.md"))) == count
    calls = [line.split(None, 1)[1].split("(", 1)[0] for line in trace.read_text().splitlines()]
    return [call for call in calls if call in ("fsync", "syncfs")]


@pytest.mark.skipif(files._SYNCFS is None, reason="no syncfs on this system")
def test_a_large_batch_is_flushed_by_one_syncfs(tmp_path: Path) -> None:
    calls = _syscalls(tmp_path, files.SYNCFS_MIN_FILES + 36)
    # One syncfs for the files' data; the fsyncs left are the folders' (their names).
    assert calls.count("syncfs") == 1
    assert calls.count("fsync") <= 2


def test_a_small_batch_fsyncs_each_file(tmp_path: Path) -> None:
    count = files.SYNCFS_MIN_FILES - 1
    calls = _syscalls(tmp_path, count)
    assert calls.count("syncfs") == 0
    assert calls.count("fsync") >= count
