"""A real ``worksync-p2p up`` process and its event socket, for the bridge benchmarks.

The daemon is started with ``sys.executable -m worksync_p2p up DIR`` and ended
by its PID with SIGTERM; every wait is bounded. Events are read with a plain
AF_UNIX socket and stamped with ``time.perf_counter`` when their line arrives.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worksync_p2p.adapters.eventsock import socket_path
from worksync_p2p.workspace import Workspace

PROJECT_ROOT = Path(__file__).resolve().parent.parent
READY_TEXT = "serving"
POLL_S = 0.02  # polling the daemon's stdout file while it starts; not timed
STOP_WAIT_S = 10.0
RECV_BYTES = 65536


def user_env(logs: Path) -> dict[str, str]:
    """The environment a user's daemon starts in: Python keeps its bytecode cache.

    A development shell may set PYTHONDONTWRITEBYTECODE (this one does), which
    makes every start compile the project's modules again (about 0.3 s); an
    installed package starts from its cache. The cache goes under ``logs``, so
    the benchmark writes nothing into the source tree; the first start fills it.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(logs / "pycache")
    return env


@dataclass(frozen=True)
class Daemon:
    process: subprocess.Popen[bytes]
    root: Path
    ready_s: float
    """Seconds from spawning the process to its "serving" line."""

    @property
    def pid(self) -> int:
        return self.process.pid


def _tail(path: Path, chars: int = 2000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def _wait_serving(process: subprocess.Popen[bytes], out: Path, err: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while READY_TEXT not in out.read_text(errors="replace"):
        if process.poll() is not None:
            raise RuntimeError(f"`up` exited with {process.returncode}: {_tail(err)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"`up` not serving after {timeout:.0f} s: {_tail(err)}")
        time.sleep(POLL_S)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID, a bounded wait, then SIGKILL if it is still there."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_WAIT_S)


@contextmanager
def running(root: Path, logs: Path, timeout: float) -> Iterator[Daemon]:
    """``up root`` (networking on loopback only) until the block exits."""
    out, err = logs / "up.out", logs / "up.err"
    args = [sys.executable, "-m", "worksync_p2p", "up", str(root), "--host", "127.0.0.1"]
    with out.open("wb") as stdout, err.open("ab") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(
            args, cwd=PROJECT_ROOT, stdout=stdout, stderr=stderr, env=user_env(logs)
        )
    try:
        _wait_serving(process, out, err, timeout)
        yield Daemon(process, root, time.perf_counter() - start)
    finally:
        stop(process)
    if process.returncode not in (0, -signal.SIGTERM):
        raise RuntimeError(f"`up` ended with {process.returncode}: {_tail(err)}")


@dataclass(frozen=True)
class Arrival:
    at: float
    """perf_counter when the event's line was received."""
    event: dict[str, Any]


class EventStream:
    """The daemon's event socket, read line by line with deadlines."""

    def __init__(self, root: Path, timeout: float) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._buffer = b""
        self._stamp = 0.0
        try:
            self._sock.settimeout(timeout)
            self._sock.connect(str(socket_path(Workspace(root).state_dir)))
            first = self.next(time.perf_counter() + timeout)
            if first is None or first.event != {"event": "subscribed"}:
                raise RuntimeError(f"unexpected first event line: {first}")
        except BaseException:
            self._sock.close()
            raise

    def close(self) -> None:
        self._sock.close()

    def next(self, deadline: float) -> Arrival | None:
        """The next event line, or None when none arrives before ``deadline``."""
        while b"\n" not in self._buffer:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return None
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(RECV_BYTES)
            except TimeoutError:
                return None
            self._stamp = time.perf_counter()
            if not chunk:
                raise ConnectionError("the daemon closed its event stream")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return Arrival(self._stamp, json.loads(line))

    def until(self, deadline: float) -> list[Arrival]:
        """Every event that arrives before ``deadline``."""
        found = []
        while (arrival := self.next(deadline)) is not None:
            found.append(arrival)
        return found

    def until_quiet(self, quiet_s: float, deadline: float) -> list[Arrival]:
        """Events until none arrives for ``quiet_s`` (or ``deadline`` passes)."""
        found = []
        while (arrival := self.next(min(deadline, time.perf_counter() + quiet_s))) is not None:
            found.append(arrival)
        return found

    def wait_for(
        self, wanted: Callable[[dict[str, Any]], bool], deadline: float
    ) -> tuple[Arrival, int]:
        """The first wanted event, and how many others came before it."""
        skipped = 0
        while (arrival := self.next(deadline)) is not None:
            if wanted(arrival.event):
                return arrival, skipped
            skipped += 1
        raise TimeoutError(f"no matching event before the deadline ({skipped} others)")


@contextmanager
def subscribed(root: Path, timeout: float) -> Iterator[EventStream]:
    stream = EventStream(root, timeout)
    try:
        yield stream
    finally:
        stream.close()
