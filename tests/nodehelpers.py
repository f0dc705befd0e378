"""Helpers for driving a real node (real files, real watcher) and real daemon processes.

Nothing here sleeps to wait for something: waits are on an event (the node's
bus) or on a condition polled with a bounded deadline. A "quiet window" is a
bounded wait that *no* event arrives, the only way to show that nothing
happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from worksync_p2p.adapters import files
from worksync_p2p.adapters.eventsock import EventBus
from worksync_p2p.core import codec
from worksync_p2p.core.hlc import Hlc
from worksync_p2p.core.itemdoc import ItemDoc, Writer
from worksync_p2p.core.repo import Repo
from worksync_p2p.node import LocalNode, now_ms

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
POLL_S = 0.005
PROCESS_POLL_S = 0.02  # a condition on other processes' files can be costly to check
WAIT_S = 10.0
QUIET_S = 0.35  # longer than the bridge's grace periods (150 ms, 100 ms) plus a watcher step

Event = dict[str, Any]


# -- waiting ------------------------------------------------------------------


async def wait_until(cond: Callable[[], bool], timeout: float = WAIT_S, what: str = "") -> None:
    """Poll ``cond`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or cond}")
        await asyncio.sleep(POLL_S)


def poll_until(cond: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    """``wait_until`` outside an event loop: for conditions on other processes' files."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(PROCESS_POLL_S)


class EventTap:
    """A subscription to a node's bus that keeps every event it has seen."""

    def __init__(self, bus: EventBus) -> None:
        self.queue = bus.subscribe()
        self.seen: list[Event] = []

    def _take(self, line: bytes | None) -> Event:
        assert line is not None, "the event bus closed"
        event: Event = json.loads(line)
        self.seen.append(event)
        return event

    def drain(self) -> list[Event]:
        """Events already queued, without waiting."""
        out = []
        while not self.queue.empty():
            out.append(self._take(self.queue.get_nowait()))
        return out

    async def next(self, timeout: float) -> Event:
        return self._take(await asyncio.wait_for(self.queue.get(), timeout))

    async def wait_for(
        self, match: Callable[[Event], bool], timeout: float = WAIT_S, what: str = ""
    ) -> Event:
        """The first new event matching ``match`` (others are kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            remaining = deadline - time.monotonic()
            try:
                event = await self.next(max(remaining, 0.0))
            except TimeoutError:
                break
            if match(event):
                return event
        raise AssertionError(f"no event {what} within {timeout}s; saw {self.seen}")

    async def quiet(self, window: float = QUIET_S) -> list[Event]:
        """Every event that arrives within ``window`` seconds (the caller expects few or none)."""
        deadline = time.monotonic() + window
        out: list[Event] = []
        for _ in range(100_000):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                out.append(await self.next(remaining))
            except TimeoutError:
                break
        return out


def is_event(kind: str, key: str, origin: str | None = None) -> Callable[[Event], bool]:
    def match(event: Event) -> bool:
        return (
            event["event"] == kind
            and event["id"] == key
            and (origin is None or event["origin"] == origin)
        )

    return match


# -- the node under test -------------------------------------------------------


def render(node: LocalNode, key: str) -> str | None:
    item = node.repo.get(key)
    return None if item is None else item.render()


def file_text(path: Path) -> str | None:
    try:
        return path.read_bytes().decode()
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def in_sync(node: LocalNode, key: str, path: Path) -> Callable[[], bool]:
    """The file holds exactly what the document renders, and no timer is pending."""

    def check() -> bool:
        text = file_text(path)
        return (
            text is not None
            and text == render(node, key)
            and node.bridge.deadline_ms() is None
            and node.bridge.path_of(key) == path.relative_to(node.root).as_posix()
        )

    return check


class Spy:
    """Counts what the node does: store appends per key, file writes, file reads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, node: LocalNode) -> None:
        self.appends: Counter[str] = Counter()
        self.writes: Counter[str] = Counter()
        self.write_attempts: Counter[str] = Counter()
        self.feeds: Counter[str] = Counter()
        append, feed, write_if = node.store.append, node.feed, files.write_if

        def counting_append(key: str, update: bytes) -> None:
            self.appends[key] += 1
            append(key, update)

        def counting_feed(relpath: str, *, reported: bool = False) -> None:
            self.feeds[relpath] += 1
            feed(relpath, reported=reported)

        def counting_write_if(
            root: Path,
            relpath: str,
            text: str,
            expect: str | None,
            durable: Callable[[], object] | None = None,
        ) -> files.WriteOutcome:
            self.write_attempts[relpath] += 1
            outcome = write_if(root, relpath, text, expect, durable=durable)
            if outcome is files.WriteOutcome.WRITTEN:
                self.writes[relpath] += 1
            return outcome

        monkeypatch.setattr(node.store, "append", counting_append)
        monkeypatch.setattr(node, "feed", counting_feed)
        monkeypatch.setattr(files, "write_if", counting_write_if)

    def fed_again(self, relpath: str) -> Callable[[], bool]:
        """A condition: the node has read ``relpath`` since this call."""
        before = self.feeds[relpath]
        return lambda: self.feeds[relpath] > before


# -- a peer ---------------------------------------------------------------------


class Remote:
    """Another replica: loads the node's state, edits its copy, hands back the update."""

    def __init__(self, name: str = "peer-b", client_id: int = 424_242) -> None:
        self.writer = Writer(name, Hlc(name), 0)
        self.repo = Repo(self.writer, client_id)
        self.name = name

    def pull(self, node: LocalNode, key: str) -> ItemDoc:
        """Merge the node's current state of ``key`` into our copy."""
        theirs = node.repo.get(key)
        assert theirs is not None, f"the node has no item {key!r}"
        state = theirs.doc.get_update()
        mine = self.repo.get(key)
        if mine is None:
            self.repo.load(key, state)
            mine = self.repo.get(key)
            assert mine is not None
        else:
            mine.apply_remote(state)
        return mine

    def edit(
        self,
        node: LocalNode,
        key: str,
        change: Callable[[str], str],
        path: str | None = None,
    ) -> bytes:
        """Our update after pulling the node's state and editing the rendered text."""
        mine = self.pull(node, key)
        text = mine.render()
        relpath = path or mine.path()
        assert text is not None
        assert relpath is not None
        new = change(text)
        parsed = codec.parse(new.encode(), relpath)
        update = self.repo.ingest(key, relpath, parsed, now_ms()).update
        assert update is not None, "the remote edit changed nothing"
        return update

    def send(
        self,
        node: LocalNode,
        key: str,
        change: Callable[[str], str],
        path: str | None = None,
    ) -> bytes:
        update = self.edit(node, key, change, path)
        node.receive(key, update, self.name)
        return update


# -- editors --------------------------------------------------------------------


def save_in_place(path: Path, text: str) -> None:
    """Open 'r+', truncate, write: the file keeps its inode."""
    with path.open("r+b") as handle:
        handle.truncate(0)
        handle.write(text.encode())


def save_via_rename(path: Path, text: str, temp_name: str | None = None) -> None:
    """Write a temp file beside it, then rename it over the original."""
    temp = path.with_name(temp_name or f".{path.name}.swp")
    temp.write_bytes(text.encode())
    os.replace(temp, path)


def save_recreate(path: Path, text: str) -> None:
    """Unlink, then write a new file."""
    path.unlink()
    path.write_bytes(text.encode())


SAVES: tuple[Callable[[Path, str], None], ...] = (save_in_place, save_via_rename, save_recreate)


def copy_corpus(root: Path, *names: str) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names:
        out[name] = Path(shutil.copy(CORPUS / name, root / name))
    return out


def tree(folder: Path, skip: str | None = None) -> set[str]:
    """Every path below ``folder`` (symlinks not followed), minus those under ``skip``."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [*dirnames, *filenames]:
            rel = (Path(dirpath) / name).relative_to(folder).as_posix()
            if skip is None or not rel.startswith(skip):
                out.add(rel)
    return out


# -- daemon processes -------------------------------------------------------------


class Proc:
    """A ``python -m worksync_p2p`` process whose output is read line by line, bounded."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "worksync_p2p", *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.pid = self.popen.pid
        self._out = b""
        self.lines: list[str] = []

    def readline(self, timeout: float = WAIT_S) -> str:
        """The next stdout line; fails after ``timeout`` seconds or at end of output."""
        stdout = self.popen.stdout
        assert stdout is not None
        fd = stdout.fileno()
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            if b"\n" in self._out:
                line, self._out = self._out.split(b"\n", 1)
                self.lines.append(line.decode())
                return self.lines[-1]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"output ended; got {self.lines}; {self.stderr()}")
                self._out += chunk
        raise AssertionError(f"no stdout line within {timeout}s; got {self.lines}")

    def wait_line(self, fragment: str, timeout: float = WAIT_S) -> str:
        deadline = time.monotonic() + timeout
        for _ in range(1000):
            line = self.readline(max(deadline - time.monotonic(), 0.0))
            if fragment in line:
                return line
        raise AssertionError(f"no line with {fragment!r}; got {self.lines}")

    def signal(self, sig: signal.Signals) -> None:
        if self.popen.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def stderr(self) -> str:
        """Everything on stderr; only once the process has ended."""
        if self.popen.poll() is None or self.popen.stderr is None:
            return "(still running)"
        return self.popen.stderr.read().decode(errors="replace")

    def close(self) -> None:
        """Kill it if it still runs (by PID), reap it, close the pipes."""
        if self.popen.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(10)
        for pipe in (self.popen.stdout, self.popen.stderr):
            if pipe is not None:
                pipe.close()


@contextlib.contextmanager
def processes() -> Iterator[list[Proc]]:
    """A list to put started processes in; every one is killed and reaped on exit."""
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in started:
            proc.close()
