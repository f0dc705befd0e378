"""An inotify "doorbell": wakes the watcher when something in the folder changes.

watchfiles finds out what changed, but only by polling its change set every
``step``; polling every few milliseconds costs a wake-up each time, which on
this kind of machine is 20-50 µs (0.6-0.9 % of a core at a 5 ms step, with
nothing changing). The doorbell is a second inotify instance over the same
folders that says only *that* something happened: the watcher sleeps in
``poll()`` until it rings, so an idle daemon does not wake at all.

It watches the root and every folder items may live in (the same rule as
``items.iter_item_files``: no hidden folders, no ``.worksync/``, symlinked
folders not entered). When a folder appears, moves or vanishes, or the kernel
queue overflowed, it rebuilds its watches from a fresh walk; it still rings, so
the watcher collects whatever arrived meanwhile. Linux only:
:func:`open_doorbell` returns None elsewhere, and the watcher then polls.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import select
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

# IN_CLOSE_WRITE, not IN_MODIFY: an in-place save truncates, writes, then
# closes; ringing at the truncate had the file read empty or half-written.
# A file written and kept open rings at its close (or the safety net looks).
WATCH_MASK = (
    IN_CLOSE_WRITE
    | IN_ATTRIB
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
)
FOLDER_CHANGES = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
SAVED = IN_CLOSE_WRITE | IN_MOVED_TO  # a file that holds a whole save (see Heard)
EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (struct inotify_event)
READ_BYTES = 64 * 1024
STATE_DIR = ".worksync"


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        # The C library the interpreter itself is linked with (glibc or musl), by
        # the process's own symbols: ctypes.util.find_library would find it by
        # running `ldconfig -p` in a subprocess, 5-15 ms of every start.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    except (OSError, AttributeError):
        return None
    return libc


def watched_folders(root: Path) -> Iterator[Path]:
    """``root`` and every folder below it where items may live."""
    for dirpath, dirnames, _files in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if d != STATE_DIR and not d.startswith(".")]
        yield Path(dirpath)


def folder_changed(buffer: bytes) -> bool:
    """Whether these inotify events include a folder appearing, moving or vanishing."""
    offset = 0
    while offset + EVENT_HEADER.size <= len(buffer):
        _wd, mask, _cookie, length = EVENT_HEADER.unpack_from(buffer, offset)
        offset += EVENT_HEADER.size + length
        if mask & IN_Q_OVERFLOW or mask & (IN_DELETE_SELF | IN_MOVE_SELF):
            return True
        if mask & IN_ISDIR and mask & FOLDER_CHANGES:
            return True
    return False


@dataclass
class Heard:
    """What the doorbell heard since it was last asked, by file.

    ``saved``: files shown complete (moved in by an atomic save's rename, or
    closed after writing by an in-place one), which hold the whole save.
    ``changed``: files with any other change (created, which may still be
    empty; deleted; moved away; attributes). ``unknown``: something with no
    file to name (a folder, a queue overflow, a ring by hand, a watch given
    up since): only watchfiles can say what.
    """

    saved: set[str] = field(default_factory=set)
    changed: set[str] = field(default_factory=set)
    unknown: bool = False

    def add(self, buffer: bytes, folders: dict[int, str]) -> None:
        """Sort the events in ``buffer``; ``folders`` maps watch descriptors to folders."""
        offset = 0
        while offset + EVENT_HEADER.size <= len(buffer):
            wd, mask, _cookie, length = EVENT_HEADER.unpack_from(buffer, offset)
            name = buffer[offset + EVENT_HEADER.size : offset + EVENT_HEADER.size + length]
            offset += EVENT_HEADER.size + length
            folder = folders.get(wd)
            if folder is None or mask & (IN_ISDIR | IN_Q_OVERFLOW) or not length:
                self.unknown = True
                continue
            path = os.path.join(folder, os.fsdecode(name.rstrip(b"\0")))
            (self.saved if mask & SAVED else self.changed).add(path)


class Doorbell:
    """Rings (``wait`` returns True) when anything changes in the watched folders.

    ``ring`` wakes a ``wait`` from another thread (a probe, or shutting down).
    ``take`` hands over what the rings were about (see :class:`Heard`), so a
    save can be read before watchfiles' next step.
    """

    def __init__(self, root: Path, libc: ctypes.CDLL) -> None:
        self.root = root
        self._libc = libc
        self._fd = -1
        self._folders: dict[int, str] = {}  # watch descriptor -> folder, of ``_fd``
        self._heard = Heard()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poll = select.poll()
        self._poll.register(self._wake_r, select.POLLIN)
        try:
            self._rebuild()
        except OSError:
            self.close()
            raise

    def _rebuild(self) -> None:
        """A fresh inotify instance over the folders as they are now."""
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_init1: {os.strerror(code)}")
        folders: dict[int, str] = {}
        try:
            for folder in watched_folders(self.root):
                self._add(fd, folder, folders)
        except OSError:
            os.close(fd)
            raise
        if self._fd >= 0:
            self._poll.unregister(self._fd)
            os.close(self._fd)
        self._fd, self._folders = fd, folders
        self._poll.register(fd, select.POLLIN)

    def _add(self, fd: int, folder: Path, folders: dict[int, str]) -> None:
        wd = self._libc.inotify_add_watch(fd, os.fsencode(folder), WATCH_MASK)
        if wd >= 0:
            folders[wd] = str(folder)
            return
        code = ctypes.get_errno()
        if code in (errno.ENOENT, errno.ENOTDIR, errno.EACCES):
            return  # it vanished (or is not ours to read) between the walk and the watch
        raise OSError(code, f"{folder}: inotify_add_watch: {os.strerror(code)}")

    def wait(self, timeout_s: float) -> bool:
        """Block until a change or a ``ring`` (True), or ``timeout_s`` passes (False).

        The queued events are consumed before returning, so the caller must
        collect changes *after* this returns: an event that lands later rings again.
        """
        ready = self._poll.poll(timeout_s * 1000)
        if not ready:
            return False
        if self._drain_wake():
            self._heard.unknown = True
        rebuild = False
        with contextlib.suppress(BlockingIOError):
            while True:
                events = os.read(self._fd, READ_BYTES)
                rebuild = folder_changed(events) or rebuild
                self._heard.add(events, self._folders)
        if rebuild:
            try:
                self._rebuild()
            except OSError as error:
                log.warning("file watcher: cannot watch new folders (%s); they are polled", error)
        return True

    def take(self) -> Heard:
        """What was heard since the last call (absolute paths, not filtered)."""
        heard, self._heard = self._heard, Heard()
        return heard

    def _drain_wake(self) -> bool:
        """Empty the pipe of ``ring``; whether it had been rung."""
        rung = False
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, READ_BYTES):
                rung = True
        return rung

    def ring(self) -> None:
        with contextlib.suppress(BlockingIOError):  # full: it is ringing already
            os.write(self._wake_w, b"\0")

    def close(self) -> None:
        for fd in (self._fd, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fd = -1


def open_doorbell(root: Path) -> Doorbell | None:
    """A doorbell over ``root``, or None where inotify is unavailable (the caller polls)."""
    libc = _libc()
    if libc is None:
        return None
    try:
        return Doorbell(root, libc)
    except OSError as error:
        log.warning("file watcher: no inotify doorbell (%s); polling every step instead", error)
        return None
