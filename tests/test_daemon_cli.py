"""`up` and `events` as real processes: the daemon lock, the event stream, clean stops.

Every process is started by the test, waited on with a bound, and killed by
its PID if it outlives the test (``nodehelpers.processes``).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.clihelpers import run_cli as run_once
from tests.nodehelpers import Proc, processes
from worksync_p2p.cli import ExitCode

ITEM = "---\nid: live-item\nstatus: open\n---\nbody\n"
STOP_S = 2.0


def stop(proc: Proc) -> float:
    """SIGTERM; the seconds it took to exit 0 (fails after STOP_S)."""
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    code = proc.wait(STOP_S)
    assert code == ExitCode.OK, proc.stderr()
    return time.monotonic() - started


def test_a_second_up_is_refused_and_a_killed_daemon_is_taken_over(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    with processes() as started:
        first = Proc("up", str(root), "--local-only", cwd=tmp_path)
        started.append(first)
        assert str(root) in first.wait_line("serving", timeout=30)

        second = run_once("up", str(root), "--local-only", cwd=tmp_path)
        assert second.returncode == 4, second.stderr
        assert second.returncode == ExitCode.ALREADY_RUNNING
        assert f"PID {first.pid}" in second.stderr
        assert second.stderr.count("\n") == 1, second.stderr
        assert "Traceback" not in second.stderr
        assert "serving" not in second.stdout

        first.signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL

        third = Proc("up", str(root), "--local-only", cwd=tmp_path)
        started.append(third)
        third.wait_line("serving", timeout=30)
        assert (root / ".worksync" / "daemon.lock").read_text() == f"{third.pid}\n"
        assert stop(third) < STOP_S
        assert (root / ".worksync" / "daemon.lock").read_text() == ""
        assert not (root / ".worksync" / "events.sock").exists()


def test_events_prints_live_changes_and_up_stops_on_sigterm(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    with processes() as started:
        up = Proc("up", str(root), "--local-only", cwd=tmp_path)
        started.append(up)
        up.wait_line("serving", timeout=30)

        events = Proc("events", "-w", str(root), cwd=tmp_path)
        started.append(events)
        assert json.loads(events.readline(timeout=30)) == {"event": "subscribed"}

        (root / "live.md").write_text(ITEM)
        created = json.loads(events.readline())
        assert created == {
            "event": "created",
            "id": "live-item",
            "path": "live.md",
            "fields": ["id", "status"],
            "origin": "file",
        }
        (root / "live.md").write_text(ITEM.replace("open", "done"))
        modified = json.loads(events.readline())
        assert (modified["event"], modified["id"], modified["fields"]) == (
            "modified",
            "live-item",
            ["status"],
        )

        assert stop(up) < STOP_S
        # the stream ends with the daemon, and `events` exits cleanly
        assert events.wait(10) == ExitCode.OK, events.stderr()
        assert events.stderr() == ""


def test_up_reports_a_bad_file_once_on_stderr_and_leaves_it(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    bad = b"---\nid: broken\nstatus: [unclosed\n---\nbody\n"
    (root / "broken.md").write_bytes(bad)
    (root / "good.md").write_text(ITEM)
    with processes() as started:
        up = Proc("up", str(root), "--local-only", cwd=tmp_path)
        started.append(up)
        line = up.wait_line("serving", timeout=30)
        assert "(1 items, 1 unreadable)" in line
        stop(up)
        stderr = up.stderr()
        assert stderr.count("broken.md: invalid YAML") == 1, stderr
        assert "Traceback" not in stderr
    assert (root / "broken.md").read_bytes() == bad
