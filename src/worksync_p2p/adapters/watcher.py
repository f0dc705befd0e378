"""The file watcher: watchfiles' change set, collected in a thread when the doorbell rings.

watchfiles (``RustNotify``) records every change as inotify reports it and
hands the set over from ``watch(debounce, step, timeout)``, which polls that
set every ``step`` and returns once it stopped growing for one step (so a
save arrives 1-2 steps after it happened). Polling every step while nothing
changes is what costs idle CPU, and a larger step is what costs latency. So
``watch`` is called only after the doorbell (:mod:`.doorbell`) rang: idle, the
thread sleeps in ``poll()``; on a save it collects the batch with a small
step. Without a doorbell (not Linux, inotify exhausted, or
``watch_doorbell = false``) it polls every step, as ``watchfiles.awatch`` does.

A file the doorbell itself saw complete (moved in by an atomic save, or
closed after an in-place one) is handed over at once, without ``watch``:
that spares a save the 1-2 steps of watchfiles' batching (about 2 ms of the
4 from a save to its event). watchfiles reports it again with its next
collect, and the node's second read finds nothing new. Everything else
(creations, deletions, attribute changes, folders, rings by hand) makes
``watch`` collect, as before.

Batches are merged while the event loop is busy: the loop takes every path
changed since it last looked, and re-reads each file, so merging loses nothing.
A burst therefore costs at most one re-read per file per turn of the loop.
Batches are handed over at once, never held back: an in-place save seen at
its truncate arrives as a second batch when the write lands, and holding that
one back (tried: one batch per debounce) made in-place saves 10 ms slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from watchfiles._rust_notify import RustNotify

from worksync_p2p.adapters.doorbell import Doorbell, open_doorbell

COLLECT_TIMEOUT_MS = 20
"""After a ring, how long ``watch`` waits for watchfiles to record the change.

Both inotify instances get the event at once; this only covers watchfiles'
own thread being scheduled late on a loaded machine."""
SAFETY_NET_S = 1.0
"""Collect this often even without a ring: a change the doorbell could not see
(a file saved in a folder created a moment before) waits at most this long."""
POLL_TIMEOUT_MS = 1000
JOIN_TIMEOUT_S = 2.0


class Watcher:
    """Changed paths below ``root`` that ``accept`` keeps, as an async stream.

    Use as a context manager from inside the event loop; ``next()`` returns the
    next set of paths, None once closed.
    """

    def __init__(
        self,
        root: Path,
        accept: Callable[[str], bool],
        *,
        step_ms: int,
        debounce_ms: int,
        doorbell: bool = True,
    ) -> None:
        self.step_ms = step_ms
        self.debounce_ms = debounce_ms
        self._accept = accept
        self._loop = asyncio.get_running_loop()
        self._notify = RustNotify([str(root)], False, False, 300, True, False)
        self._bell: Doorbell | None = open_doorbell(root) if doorbell else None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending: set[str] = set()
        self._error: Exception | None = None
        self._has = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="worksync-watcher", daemon=True)
        self._thread.start()

    @property
    def mode(self) -> str:
        return "polling" if self._bell is None else "doorbell"

    # -- the watcher thread ---------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                timeout_ms = self._wait()
                if self._stop.is_set():
                    break
                if timeout_ms is None:
                    continue  # the doorbell named all there was
                result = self._notify.watch(self.debounce_ms, self.step_ms, timeout_ms, self._stop)
                if isinstance(result, set):
                    self._deliver(result)
        except Exception as error:  # watchfiles' internal error: the event loop raises it
            self._error = error
        finally:
            self._signal()

    def _wait(self) -> int | None:
        """Sleep until there is something to collect; how long ``watch`` may wait for it.

        None: the doorbell named everything it heard (complete saves, handed
        over here, and files we do not follow, such as an atomic save's temp
        file), so watchfiles is not asked; its record comes with a later
        collect, and the node's second read of the file is off the edit's
        path. Not asking also keeps this thread listening: the rename that
        follows an atomic save's temp file rings at once.
        """
        if self._bell is None:
            return POLL_TIMEOUT_MS
        if not self._bell.wait(SAFETY_NET_S):
            return self.step_ms  # the safety net: a look at what is there, nothing more
        heard = self._bell.take()
        self._deliver_paths(heard.saved)
        if heard.unknown or any(self._accept(path) for path in heard.changed):
            return COLLECT_TIMEOUT_MS
        return None

    def _deliver(self, raw: set[tuple[int, str]]) -> None:
        self._deliver_paths({path for _change, path in raw})

    def _deliver_paths(self, paths: set[str]) -> None:
        accepted = {path for path in paths if self._accept(path)}
        if not accepted:
            return
        with self._lock:
            first = not self._pending
            self._pending |= accepted
        if first:
            self._signal()

    def _signal(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop already closed: nobody is waiting
            self._loop.call_soon_threadsafe(self._has.set)

    # -- the event loop's side ------------------------------------------------

    async def next(self) -> set[str] | None:
        """The paths changed since the last call (waits for one); None once closed."""
        while True:
            with self._lock:
                paths, self._pending = self._pending, set()
            if paths:
                return paths
            if self._error is not None:
                raise self._error
            if self._stop.is_set() or not self._thread.is_alive():
                return None
            # Checked before waiting: a batch handed over since the last call
            # has already set the flag, so nothing is waited for twice.
            await self._has.wait()
            self._has.clear()

    def pending(self) -> set[str]:
        """The paths collected that ``next()`` has not returned yet."""
        with self._lock:
            return set(self._pending)

    def ring(self) -> None:
        """Look for changes now (a file the doorbell does not watch was just touched)."""
        if self._bell is not None:
            self._bell.ring()

    def close(self) -> None:
        """Stop the thread and release the watches; a second call does nothing."""
        if self._stop.is_set():
            return
        self._stop.set()
        self.ring()
        self._thread.join(JOIN_TIMEOUT_S)
        self._has.set()
        if self._thread.is_alive():
            return  # stuck in a slow file system call: leave it its handles
        self._notify.close()
        if self._bell is not None:
            self._bell.close()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()
