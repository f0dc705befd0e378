"""Rendering received documents in worker processes, beside the event loop.

A first sync renders every item it receives (about a third of the receiving
peer's CPU), and rendering is a pure function of a document's state
(``itemdoc.read_new``, which also reads the item's path). While the node
applies and commits a batch, these workers render the same updates on the
other cores; the node keeps a worker's text (and path) as the reads of the
update's bytes, used only while its own document's state encodes to exactly
those bytes (``ItemDoc.take_render``), so the result is the same whichever
process rendered it. Anything that goes wrong with a worker (it died, hung or
answered garbage) makes the node render that batch itself, as it did without
them.

The workers are plain ``python -m worksync_p2p.adapters.renderpool``
processes on pipes: they import only the core, not the daemon. They start
with the first large batch (which is rendered at home while they start),
stop after ``IDLE_S`` without work, and exit on their own when the pipe
closes, so a killed daemon leaves none behind.

Frames on the pipes: a 4-byte length, then the payload. A request is a
sequence of ``u32 length + update``; the reply holds per update a status
byte (rendered, deleted or empty, bad update), ``u32 + UTF-8 text``,
``u32 + UTF-8 path`` (empty: none; an item's path is never empty) and
``u32 + digest`` (empty: a new document does not encode the update back to
the same bytes). The node keeps these reads only for a document that encodes
to the update's bytes (``ItemDoc.take_render``, ``ItemDoc.asleep``). A
worker's first frame (empty) says it is ready. The pipes are made large
enough for a whole batch, so a batch crosses them without waiting for the
other side in between.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from worksync_p2p.core import digest as dg

log = logging.getLogger(__name__)

IDLE_S = 10.0
REPLY_TIMEOUT_S = 30.0
RETRY_AFTER_S = 60.0
"""After workers failed, batches are rendered in the daemon for this long."""
MAX_WORKERS = 4
_LEN = struct.Struct("<I")
_TEXT, _NO_TEXT, _BAD = 0, 1, 2


@dataclass(frozen=True)
class Rendered:
    """A worker's render of one update."""

    text: str | None
    """None: the update leaves the item deleted or empty."""
    path: str | None
    """The item's path in that state (None: it names none)."""
    digest: bytes | None = None
    """The item's digest (``digest.item_hash``), given when a new document that
    applies the update encodes it back byte for byte (the item may sleep then:
    ``ItemDoc.asleep``); None when it does not."""


PIPE_BYTES = 1 << 20
_PIPE_BYTES_POSIX = 4096  # what a pipe holds at least, where its size cannot be read


# -- the worker side ---------------------------------------------------------------


def _read_exact(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if len(data) == size else None


def _frames(stream: BinaryIO) -> list[bytes] | None:
    """The updates of one request; None at the end of the pipe."""
    head = _read_exact(stream, _LEN.size)
    if head is None:
        return None
    payload = _read_exact(stream, _LEN.unpack(head)[0])
    if payload is None:
        return None
    updates, at = [], 0
    while at < len(payload):
        (size,) = _LEN.unpack_from(payload, at)
        updates.append(payload[at + _LEN.size : at + _LEN.size + size])
        at += _LEN.size + size
    return updates


Read = Callable[[bytes], tuple[str | None, str | None, bool]]


def _reply(updates: list[bytes], read_new: Read) -> bytes:
    parts = []
    for update in updates:
        try:
            text, path, exact = read_new(update)
        except ValueError:
            parts.append(bytes([_BAD]) + _LEN.pack(0) * 3)
            continue
        status = _NO_TEXT if text is None else _TEXT
        encoded = b"" if text is None else text.encode()
        where = (path or "").encode()
        digest = dg.item_hash(update) if exact else b""
        parts += [bytes([status]), *_sized(encoded), *_sized(where), *_sized(digest)]
    payload = b"".join(parts)
    return _LEN.pack(len(payload)) + payload


def _sized(data: bytes) -> tuple[bytes, bytes]:
    return _LEN.pack(len(data)), data


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Answer requests until the pipe closes."""
    # Imported here, not at the top: the daemon imports this module too.
    from worksync_p2p import gcsettings  # noqa: PLC0415
    from worksync_p2p.core.itemdoc import read_new  # noqa: PLC0415

    gcsettings.settle()  # rendering a batch allocates as much as receiving it
    stdout.write(_LEN.pack(0))  # "ready": the imports are done
    stdout.flush()
    while (updates := _frames(stdin)) is not None:
        stdout.write(_reply(updates, read_new))
        stdout.flush()


# -- the node side -----------------------------------------------------------------


def _decode_reply(payload: bytes, count: int) -> list[Rendered | None]:
    """The worker's renders; None for an update it could not decode."""
    out: list[Rendered | None] = []
    at = 0
    for _ in range(count):
        status = payload[at]
        text, at = _field(payload, at + 1)
        path, at = _field(payload, at)
        digest, at = _field(payload, at)
        if status == _BAD:
            out.append(None)
        else:
            text_read = None if status == _NO_TEXT else text.decode()
            out.append(Rendered(text_read, path.decode() or None, digest or None))
    if at != len(payload):
        raise ValueError("a reply longer than its renders")
    return out


def _field(payload: bytes, at: int) -> tuple[bytes, int]:
    """One ``u32 length + bytes`` field at ``at``; the bytes and the offset after it."""
    (size,) = _LEN.unpack_from(payload, at)
    start = at + _LEN.size
    if start + size > len(payload):
        raise ValueError("a reply cut short")
    return payload[start : start + size], start + size


class _Worker:
    """One worker process and our ends of its pipes (non-blocking)."""

    def __init__(self) -> None:
        args = [sys.executable, "-m", "worksync_p2p.adapters.renderpool"]
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.to_fd = self.process.stdin.fileno()
        self.from_fd = self.process.stdout.fileno()
        self.pipe_bytes = PIPE_BYTES
        """The smaller pipe's size (what a request or a reply may hold unread)."""
        for fd in (self.to_fd, self.from_fd):
            os.set_blocking(fd, False)
            with contextlib.suppress(OSError, AttributeError):  # Linux only; a hint
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
            try:
                self.pipe_bytes = min(self.pipe_bytes, fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ))
            except (OSError, AttributeError):
                self.pipe_bytes = min(self.pipe_bytes, _PIPE_BYTES_POSIX)
        self.ready = False
        self._buffer = b""
        self.unanswered: deque[_Slice] = deque()
        """Our requests it has not answered yet, oldest first (it answers in order)."""

    def poll_ready(self) -> bool:
        """Whether the worker said it is ready (without waiting); EOFError if it exited."""
        if not self.ready and select.select([self.from_fd], [], [], 0)[0]:
            with contextlib.suppress(TimeoutError):  # not all of the frame yet
                if self._frame(time.monotonic()) != b"":
                    raise EOFError("a render worker did not start right")
                self.ready = True
        return self.ready

    def send(self, part: _Slice, frame: bytes, deadline: float) -> None:
        """Send a request for ``part``, reading replies meanwhile: a worker
        blocked writing a reply into a full pipe reads no more requests."""
        view = memoryview(frame)
        while view:
            readable, writable, _ = select.select([self.from_fd], [self.to_fd], [], _left(deadline))
            if readable:
                self._read_some()
            if writable:
                view = view[os.write(self.to_fd, view) :]
            elif not readable:
                raise TimeoutError("a render worker does not read")
        self.unanswered.append(part)

    def answer_oldest(self, deadline: float) -> int:
        """Read the reply to the oldest unanswered request into its slice; its count."""
        part = self.unanswered[0]
        part.renders = _decode_reply(self._frame(deadline), part.count)
        self.unanswered.popleft()
        return part.count

    def _read_some(self) -> None:
        chunk = os.read(self.from_fd, 1 << 20)
        if not chunk:
            raise EOFError("a render worker exited")
        self._buffer += chunk

    def _frame(self, deadline: float) -> bytes:
        while True:
            if len(self._buffer) >= _LEN.size:
                size = _LEN.size + _LEN.unpack_from(self._buffer)[0]
                if len(self._buffer) >= size:
                    frame, self._buffer = self._buffer[_LEN.size : size], self._buffer[size:]
                    return frame
            if not select.select([self.from_fd], [], [], _left(deadline))[0]:
                raise TimeoutError("a render worker does not answer")
            self._read_some()

    def stop(self) -> None:
        """Close its pipe (it exits at the end of its input); kill it if it lingers."""
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                assert pipe is not None
                pipe.close()
        try:
            self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=1.0)


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _request(updates: Sequence[bytes]) -> bytes:
    payload = b"".join(_LEN.pack(len(u)) + u for u in updates)
    return _LEN.pack(len(payload)) + payload


def _split(updates: Sequence[bytes], parts: int) -> list[Sequence[bytes]]:
    """``updates`` cut in order into at most ``parts`` runs of about equal bytes
    (a render's cost, and a reply's size, follow its update's size)."""
    total = sum(map(len, updates))
    runs: list[Sequence[bytes]] = []
    start, held = 0, 0
    for at, update in enumerate(updates):
        held += len(update)
        if held * parts >= total * (len(runs) + 1) and len(runs) < parts - 1:
            runs.append(updates[start : at + 1])
            start = at + 1
    if start < len(updates):
        runs.append(updates[start:])
    return runs


@dataclass(eq=False)
class _Slice:
    """The part of a batch sent to one worker, and its renders once read."""

    worker: _Worker
    count: int
    renders: list[Rendered | None] | None = None


@dataclass
class Pending:
    """Renders under way: one slice of the batch per worker."""

    pool: RenderPool
    slices: list[_Slice]

    def results(self) -> list[Rendered | None] | None:
        """The renders in the order submitted; None if the workers failed (render at home)."""
        return self.pool.collect(self)


class RenderPool:
    """Worker processes rendering batches of updates; thread-safe against the idle timer."""

    def __init__(self, workers: int) -> None:
        self.size = workers
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._used_at = 0.0
        self._watch: threading.Thread | None = None
        self._wake = threading.Event()  # set: the idle watch should look again now
        self._retry_at = 0.0
        self.rendered = 0
        """Updates rendered by the workers so far (for tests and benchmarks)."""

    def start(self, timeout_s: float) -> bool:
        """Start the workers and wait until they are ready (or ``timeout_s`` passed)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            waiting = self._started()
            while waiting and time.monotonic() < deadline:
                select.select([w.from_fd for w in waiting], [], [], _left(deadline))
                waiting = self._started()
            return bool(self._workers) and not waiting

    def _started(self) -> list[_Worker]:
        """The workers not ready yet, starting them if needed; the lock is held."""
        self._used_at = time.monotonic()
        if not self._workers and self._used_at >= self._retry_at:
            self._workers = [_Worker() for _ in range(self.size)]
            self._watch = threading.Thread(target=self._stop_when_idle, daemon=True)
            self._watch.start()
        try:
            return [w for w in self._workers if not w.poll_ready()]
        except (EOFError, OSError) as error:
            self._fail(error)
            return []

    def warm(self) -> None:
        """Start the workers without waiting for them (a batch is expected soon)."""
        with self._lock:
            self._started()

    def submit(self, updates: Sequence[bytes]) -> Pending | None:
        """Start rendering ``updates``; None while the workers are starting (or failed)."""
        with self._lock:
            self._started()
            ready = [w for w in self._workers if w.ready]
            if not ready:
                return None
            deadline = time.monotonic() + REPLY_TIMEOUT_S
            slices = []
            try:
                for run, worker in zip(_split(updates, len(ready)), ready, strict=False):
                    part = _Slice(worker, len(run))
                    worker.send(part, _request(run), deadline)
                    slices.append(part)
            except (OSError, EOFError, TimeoutError) as error:
                self._fail(error)
                return None
            return Pending(self, slices)

    def collect(self, pending: Pending) -> list[Rendered | None] | None:
        """The renders of ``pending``, in order. Replies to requests sent before
        it (collected later, or never) are read into their own slices: a
        reply is never taken for another request's."""
        with self._lock:
            if any(part.worker not in self._workers for part in pending.slices):
                return None  # workers stopped since (idle, or failed): render at home
            deadline = time.monotonic() + REPLY_TIMEOUT_S
            try:
                for part in pending.slices:
                    while part.renders is None:
                        self.rendered += part.worker.answer_oldest(deadline)
            except (OSError, EOFError, TimeoutError, ValueError, IndexError, struct.error) as error:
                self._fail(error)
                return None
            return [render for part in pending.slices for render in part.renders or ()]

    def _fail(self, error: Exception) -> None:
        log.warning("render workers stopped (%s); rendering in the daemon", error)
        self._stop_workers()
        self._retry_at = time.monotonic() + RETRY_AFTER_S

    def _stop_when_idle(self) -> None:
        """Stop the workers once unused for IDLE_S (one thread while they run)."""
        me = threading.current_thread()
        while True:
            with self._lock:
                if self._watch is not me:
                    return  # stopped otherwise, perhaps started again since
                idle_s = time.monotonic() - self._used_at
                if idle_s >= IDLE_S:
                    self._stop_workers()
                    return
                wake = self._wake
            wake.wait(IDLE_S - idle_s)

    def _stop_workers(self) -> None:
        workers, self._workers = self._workers, []
        self._watch = None
        self._wake.set()
        self._wake = threading.Event()
        for worker in workers:
            worker.stop()

    def close(self) -> None:
        """Stop the workers (idle, or at exit); the next batch starts them again."""
        with self._lock:
            self._stop_workers()

    def room(self) -> int:
        """Bytes of updates one request may hold to queue behind another unread:
        half a pipe per ready worker (a request pipe holds two such, a reply
        pipe two replies, a render being smaller than its update). A bigger
        request is still sent whole, but the send waits (reading replies)
        until the worker has read it, on the event loop."""
        with self._lock:
            self._started()  # starts stopped workers, and polls those warmed up since (``warm``)
            return sum(w.pipe_bytes // 2 for w in self._workers if w.ready)

    def pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._workers]


class Ahead:
    """Renders asked for before their batch is applied.

    A first sync's batches alternate between the node applying and writing
    one (the workers idle) and the workers rendering the next (the node
    waiting). Asked for as soon as the next batch's messages are read, its
    renders are made while the node writes this one. Results are found by
    the update's bytes, so batches may be cut differently when applied.
    """

    MAX_QUEUED = 2
    MAX_KEPT = 4096

    def __init__(self) -> None:
        self._queue: deque[tuple[list[bytes], Pending]] = deque()
        self._asked: set[bytes] = set()
        self._done: dict[bytes, Rendered | None] = {}

    def ask(self, pool: RenderPool, updates: Sequence[bytes], min_items: int) -> None:
        """Start rendering those of ``updates`` not asked for yet, if they are many."""
        new = [u for u in dict.fromkeys(updates) if u not in self._asked and u not in self._done]
        # Two requests per worker at most, and small enough for the pipes
        # together (``RenderPool.room``): a worker blocked on a full reply
        # pipe while we block on its full request pipe would stall both
        # until the reply timeout.
        if len(new) < min_items or sum(map(len, new)) > pool.room():
            return
        while len(self._queue) >= self.MAX_QUEUED:
            self._collect_first()  # one nobody took (its link ended): long done
        pending = pool.submit(new)
        if pending is not None:
            self._queue.append((new, pending))
            self._asked.update(new)

    def asked(self, update: bytes) -> bool:
        """Whether ``update`` was asked for (rendered or under way)."""
        return update in self._asked or update in self._done

    def take(self, updates: Sequence[bytes]) -> dict[bytes, Rendered | None]:
        """The renders of those of ``updates`` that were asked for (waiting for them;
        None for an update a worker could not decode). A failed worker leaves
        its updates out: the caller renders them."""
        while self._queue and any(u in self._asked for u in updates):
            self._collect_first()  # in order: each worker answers in turn
        found = {u: self._done.pop(u) for u in updates if u in self._done}
        if len(self._done) > self.MAX_KEPT:
            self._done.clear()  # asked for and never applied
        return found

    def _collect_first(self) -> None:
        batch, pending = self._queue.popleft()
        self._asked.difference_update(batch)
        results = pending.results()
        if results is None:  # the workers failed or stopped: what is queued is lost too
            for lost, _ in self._queue:
                self._asked.difference_update(lost)
            self._queue.clear()
            return
        self._done.update(zip(batch, results, strict=True))


_SHARED: tuple[int, RenderPool] | None = None


def shared() -> RenderPool | None:
    """This process's pool; None on a single core, where workers would only compete."""
    global _SHARED  # noqa: PLW0603 - one pool per process, like the fsync threads
    cores = os.cpu_count() or 1
    if cores < 2:
        return None
    if _SHARED is None or _SHARED[0] != os.getpid():
        pool = RenderPool(min(cores, MAX_WORKERS))
        atexit.register(pool.close)
        _SHARED = (os.getpid(), pool)
    return _SHARED[1]


if __name__ == "__main__":
    # Ctrl-C in the daemon's terminal reaches the whole process group: the
    # daemon stops, closing our pipe, and we end there, without a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)
