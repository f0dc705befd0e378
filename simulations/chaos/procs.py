"""One real ``worksync-p2p --json up`` daemon on loopback, started, killed and stopped by PID.

Its stdout JSON lines say when it is ready (``started``, with its listening
address) and which peers it is linked to (``peer`` joined/left); its event
socket says what it does to the folder (created/modified/... with the origin:
``file`` for the person's saves, a peer id for a write of a remote change).
Both are read by tasks as they arrive, so the runner waits on them, never on
a sleep. stderr goes to a log file the checks read afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worksync_p2p.adapters import eventsock

LOOPBACK = "127.0.0.1"
STOP_S = 10.0
TAP_CONNECT_S = 5.0
MAX_LINES = 1_000_000
"""Bound on the lines read from one process: a sane daemon prints far fewer."""


class Daemon:
    def __init__(
        self, index: int, root: Path, logs: Path, on_ready: Callable[[Daemon], None]
    ) -> None:
        self.index = index
        self.label = f"p{index}"
        self.root = root
        self.log = logs / f"{self.label}.err"
        self.on_ready = on_ready
        self.process: asyncio.subprocess.Process | None = None
        self.peer_id = ""
        self.address: tuple[str, int] | None = None
        self.links: set[str] = set()
        self.ready = asyncio.Event()
        self.starts = 0
        self.item_events = 0
        self.remote_writes = 0
        self.events: list[tuple[float, str]] = []
        """Every item event (and start, kill, stop) with its time, for the kept logs."""
        self.last_activity = time.monotonic()
        self.problems: list[str] = []
        self._ending = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def up(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self, peers: list[str]) -> None:
        """Spawn it; readiness arrives later (``ready``, ``on_ready``)."""
        assert not self.up, f"{self.label} is already running"
        args = [sys.executable, "-m", "worksync_p2p", "--json", "up", str(self.root)]
        args += ["--host", LOOPBACK, "--port", "0", "--no-mdns"]
        for address in peers:
            args += ["--peer", address]
        self.ready = asyncio.Event()
        self.links = set()
        self.address = None
        self._ending = False
        with self.log.open("ab") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        self.starts += 1
        self._log_event("start")
        self._spawn(self._read(self.process))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        for _ in range(MAX_LINES):
            line = await process.stdout.readline()
            if not line:
                break
            self._line(line)
        code = await process.wait()
        if not self._ending and process is self.process:
            self.problems.append(f"{self.label} exited by itself with code {code}")

    def _line(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            self.problems.append(f"{self.label}: not a JSON line on stdout: {line[:200]!r}")
            return
        self.last_activity = time.monotonic()
        kind = event.get("event")
        if kind == "started":
            self.peer_id = str(event["peer_id"])
            host, _, port = str(event["address"]).rpartition(":")
            self.address = (host, int(port))
            self.ready.set()
            self.on_ready(self)
            self._spawn(self._tap())
        elif kind == "peer":
            state = str(event.get("state", ""))
            if state.startswith("joined"):
                self.links.add(str(event["peer"]))
            elif state == "left":
                self.links.discard(str(event["peer"]))

    async def _tap(self) -> None:
        """Count the daemon's item events until it ends."""
        path = eventsock.socket_path(self.root / ".worksync")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(path)), TAP_CONNECT_S
            )
        except (OSError, TimeoutError):
            return  # it died before we could subscribe
        try:
            for _ in range(MAX_LINES):
                line = await reader.readline()
                if not line:
                    break
                self._event(json.loads(line))
        except (OSError, ValueError):
            pass
        finally:
            writer.close()

    def _event(self, event: dict[str, Any]) -> None:
        if event.get("event") in ("subscribed", "peer"):
            return
        self.last_activity = time.monotonic()
        self._log_event(json.dumps(event, sort_keys=True))
        self.item_events += 1
        if event.get("origin") not in (None, "file"):
            self.remote_writes += 1

    def _log_event(self, line: str) -> None:
        if len(self.events) < MAX_LINES:
            self.events.append((time.monotonic(), line))

    def events_text(self, t0: float) -> str:
        return "".join(f"{at - t0:7.3f}s {line}\n" for at, line in self.events)

    def kill(self) -> None:
        """kill -9, by PID: no clean-up runs in the daemon."""
        if self.up and self.process is not None:
            self._log_event("kill -9")
            self._ending = True
            os.kill(self.process.pid, signal.SIGKILL)
        self.address = None

    async def wait_ended(self) -> int | None:
        if self.process is None:
            return None
        try:
            return await asyncio.wait_for(self.process.wait(), STOP_S)
        except TimeoutError:
            self.problems.append(f"{self.label} (PID {self.process.pid}) did not end in {STOP_S}s")
            self.kill()
            return await asyncio.wait_for(self.process.wait(), STOP_S)

    async def stop(self) -> None:
        """A clean stop (SIGTERM), as a service manager does it."""
        if not self.up or self.process is None:
            return
        self._ending = True
        self.address = None
        self._log_event("stop")
        os.kill(self.process.pid, signal.SIGTERM)
        code = await self.wait_ended()
        if code not in (0, -signal.SIGTERM):
            self.problems.append(f"{self.label}: a clean stop ended with code {code}")

    async def close(self) -> None:
        """Kill it if it still runs, reap it, end the reader tasks."""
        self.kill()
        await self.wait_ended()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=STOP_S)
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def stderr_tracebacks(self) -> list[str]:
        """Tracebacks in the log (the daemon survived them, or ``problems`` says it exited)."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        out = []
        for chunk in text.split("Traceback (most recent call last):")[1:4]:
            lines = [line for line in chunk.strip().splitlines() if line.strip()]
            out.append(f"{self.label}: traceback in the daemon's log: {' | '.join(lines[-3:])}")
        return out
