"""Real ``worksync-p2p --json up`` peers on loopback, for the peer benchmarks.

Each peer is ``sys.executable -m worksync_p2p --json up DIR --host 127.0.0.1
--port 0`` with static ``--peer`` addresses, ended by its PID (see
:func:`benchmarks.daemon.stop`). Its stdout JSON lines ("started", "peer"
joined/left) and its event socket are read on threads and stamped with
``time.perf_counter`` as they arrive, so two processes can be timed at once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from benchmarks import daemon

LOOPBACK = "127.0.0.1"
READ_STEP_S = 0.2  # how often an event-socket reader looks at its stop flag
JOIN_S = 5.0

Wanted = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Stamped:
    at: float
    """perf_counter when the line arrived."""
    event: dict[str, Any]


class Feed:
    """Stamped lines from a reader thread; waited on with perf_counter deadlines."""

    def __init__(self) -> None:
        self._lines: list[Stamped] = []
        self._cond = threading.Condition()
        self._cursor = 0
        self._ended = False

    def put(self, line: Stamped) -> None:
        with self._cond:
            self._lines.append(line)
            self._cond.notify_all()

    def end(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def _wait(self, start: int, wanted: Wanted, deadline: float) -> tuple[int, Stamped]:
        index = start
        with self._cond:
            while True:
                while index < len(self._lines):
                    if wanted(self._lines[index].event):
                        return index, self._lines[index]
                    index += 1
                remaining = deadline - time.perf_counter()
                if self._ended or remaining <= 0:
                    why = "the stream ended" if self._ended else "deadline passed"
                    raise TimeoutError(f"no matching line ({why}, {index - start} others)")
                self._cond.wait(remaining)

    def find(self, wanted: Wanted, deadline: float) -> Stamped:
        """The first wanted line since the start, whenever it came."""
        return self._wait(0, wanted, deadline)[1]

    def take(self, wanted: Wanted, deadline: float) -> tuple[Stamped, int]:
        """The next wanted line after the last one taken, and how many others it passed."""
        index, line = self._wait(self._cursor, wanted, deadline)
        skipped, self._cursor = index - self._cursor, index + 1
        return line, skipped


def _read_stdout(stdout: IO[bytes], feed: Feed) -> None:
    for raw in stdout:
        at = time.perf_counter()
        try:
            event = json.loads(raw)
        except ValueError:
            event = {"text": raw.decode(errors="replace")}
        feed.put(Stamped(at, event))
    feed.end()


@dataclass
class Peer:
    process: subprocess.Popen[bytes]
    root: Path
    spawned: float
    """perf_counter just before the process was spawned."""
    lines: Feed
    reader: threading.Thread

    @property
    def pid(self) -> int:
        return self.process.pid

    def started(self, timeout: float) -> Stamped:
        """The "started" line (peer id, listening address), waiting for it."""
        return self.lines.find(is_started, self.spawned + timeout)

    def address(self, timeout: float) -> str:
        return str(self.started(timeout).event["address"])

    def joined(self, timeout: float) -> Stamped:
        return self.lines.find(is_joined, self.spawned + timeout)

    def alive(self) -> bool:
        return self.process.poll() is None


def is_started(event: dict[str, Any]) -> bool:
    return event.get("event") == "started"


def is_joined(event: dict[str, Any]) -> bool:
    return event.get("event") == "peer" and str(event.get("state", "")).startswith("joined")


DAEMON = (sys.executable, "-m", "worksync_p2p")
"""How a peer is started; ``stagetrace`` and older trees take other commands."""


def _spawn(root: Path, logs: Path, peers: Sequence[str], command: Sequence[str]) -> Peer:
    args = [*command, "--json", "up", str(root)]
    args += ["--host", LOOPBACK, "--port", "0"]
    for address in peers:
        args += ["--peer", address]
    with (logs / f"{root.name}.err").open("ab") as stderr:
        spawned = time.perf_counter()
        process = subprocess.Popen(
            args,
            cwd=daemon.PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=daemon.user_env(logs),
        )
    assert process.stdout is not None
    feed = Feed()
    reader = threading.Thread(target=_read_stdout, args=(process.stdout, feed), daemon=True)
    reader.start()
    return Peer(process, root, spawned, feed, reader)


@contextmanager
def running(
    root: Path, logs: Path, peers: Sequence[str] = (), command: Sequence[str] = DAEMON
) -> Iterator[Peer]:
    """``up root`` dialling ``peers``, from spawn (not waiting for it) until the block exits."""
    peer = _spawn(root, logs, peers, command)
    try:
        yield peer
    finally:
        daemon.stop(peer.process)
        peer.reader.join(JOIN_S)  # it reads to the end of the pipe, then stops
        assert peer.process.stdout is not None
        peer.process.stdout.close()
    if peer.process.returncode not in (0, -signal.SIGTERM):
        raise RuntimeError(f"`up {root.name}` ended with {peer.process.returncode}")


class Tap:
    """A daemon's event socket read on a thread into a :class:`Feed`."""

    def __init__(self, root: Path, timeout: float) -> None:
        self.feed = Feed()
        self._stream = daemon.EventStream(root, timeout)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while not self._stop.is_set():
                arrival = self._stream.next(time.perf_counter() + READ_STEP_S)
                if arrival is not None:
                    self.feed.put(Stamped(arrival.at, arrival.event))
        except (ConnectionError, OSError):
            pass
        finally:
            self.feed.end()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(JOIN_S)
        self._stream.close()


@contextmanager
def tapped(root: Path, timeout: float) -> Iterator[Feed]:
    tap = Tap(root, timeout)
    try:
        yield tap.feed
    finally:
        tap.close()
