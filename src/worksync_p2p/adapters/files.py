"""File system side of the bridge: stat, safe reads, atomic checked writes.

Writes go to a hidden temp file in the same folder (the watcher ignores
hidden names), are fsynced and put in place, keeping the target's
permissions. A write names the
content hash it expects to replace and is refused when the file moved on,
so a save the user made after our last look is never clobbered. On Linux
the temp file is swapped in with renameat2(RENAME_EXCHANGE), so a save that
lands between our check and the swap is found at the temp path afterwards
and put back; elsewhere the check is repeated just before the rename.
Nothing is written through a symlink or into a folder that resolves
outside the workspace.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import stat as stat_module
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worksync_p2p import items
from worksync_p2p.core.bridge import content_hash
from worksync_p2p.ports import Stat, WriteOutcome

DEFAULT_MODE = 0o644
FSYNC_THREADS = 32
"""A batch's fsyncs run at once (the disk merges their flushes): with 8, each
thread waited for 8 flushes in a row, a third of a first sync's batch."""
SYNCFS_MIN_FILES = 64
"""From this many new files in one batch, one syncfs makes them durable (see _flush)."""
TEMP_SUFFIX = ".worksync-tmp"
STATE_DIR = ".worksync"
MADE_KEPT = 65_536
"""Files of a first sync remembered until the watcher reports them (their texts)."""


def stat(path: str | Path) -> Stat | None:
    """Size and mtime of a regular file (not following a symlink), None if absent."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat_module.S_ISREG(info.st_mode):
        return None
    return Stat(info.st_size, info.st_mtime_ns)


def read_item_bytes(path: Path, max_bytes: int) -> bytes | None:
    """The file's bytes (at most ``max_bytes + 1``, so the codec can refuse it), None if gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(max_bytes + 1)


def inside(root: Path, path: Path) -> bool:
    """Whether ``path``'s folder resolves inside ``root`` (symlinked folders included)."""
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(path.parent)
    return real_parent == real_root or real_parent.startswith(real_root + os.sep)


def _deepest_existing(path: Path) -> Path:
    """``path`` itself if its folder exists, else a child of its deepest existing ancestor."""
    probe = path
    while not probe.parent.exists() and probe.parent != probe:
        probe = probe.parent
    return probe


def _current_digest(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        return content_hash(handle.read())


def _digest_of(path: Path) -> str | None:
    """The hash of a regular file; None for anything else (a symlink, a folder, gone)."""
    try:
        return _current_digest(path)
    except OSError:
        return None


# renameat2(2), Linux 3.15+ and glibc 2.28+: an atomic swap of two names, and a
# rename that never replaces. Looked up once; None where the system lacks it.
AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
_UNSUPPORTED = frozenset({errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})


def _libc(name: str, argtypes: list[Any]) -> Any:
    """The C library's function ``name`` (returning an int), or None where the
    system lacks it; Linux only, where the ones used here exist."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    func.argtypes = argtypes
    func.restype = ctypes.c_int
    return func


_RENAMEAT2: Any = _libc(
    "renameat2", [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
)
_SYNCFS: Any = _libc("syncfs", [ctypes.c_int])
"""syncfs(2) (Linux 2.6.39+, glibc 2.14+): flushes the file system a descriptor is on."""


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """renameat2 with ``flags``; False where the system or the file system lacks it."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(dst))


def _safe_target(root: Path, relpath: str) -> Path | None:
    """The path to write ``relpath`` at, its folders made; None if it leads outside."""
    path = root / relpath
    # Check before creating folders: a symlinked folder must not make us
    # create anything outside the workspace.
    if not inside(root, _deepest_existing(path)) or path.is_symlink():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    return path if inside(root, path) else None


def write_if(
    root: Path,
    relpath: str,
    text: str,
    expect: str | None,
    *,
    before_swap: Callable[[], object] | None = None,
    durable: Callable[[], object] | None = None,
) -> WriteOutcome:
    """Atomically replace ``relpath`` with ``text`` if it still hashes to ``expect``.

    ``durable`` is the caller's step that must be on disk before the new text
    can be seen under any name, temp file included (the node's store sync: a
    file that outlived its update in a power cut would be taken for the
    user's edit, and a temp file for a user's save a killed swap had moved
    aside). It runs once the check passed, before the temp file is made.
    Running it beside the text's own fsync instead (the text unnamed until
    both were done) was measured slower here: the two flushes met in the
    disk's queue anyway, and the thread that ran one cost 0.5 ms of CPU.
    ``before_swap`` runs between the check and the swap (a test's seam for a
    user saving in that window).
    """
    path = _safe_target(root, relpath)
    if path is None:
        return WriteOutcome.UNSAFE
    if _current_digest(path) != expect:
        return WriteOutcome.CHANGED
    mode = DEFAULT_MODE
    with contextlib.suppress(FileNotFoundError):
        mode = stat_module.S_IMODE(os.lstat(path).st_mode)
    temp = _temp_beside(path)
    data = text.encode()
    try:
        ours = _write_temp(temp, data, mode, durable)
        if before_swap is not None:
            before_swap()
        if expect is None:
            return _create(temp, path)
        return _replace(temp, path, expect, _Ours(ours.st_dev, ours.st_ino, content_hash(data)))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def _temp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def _write_temp(
    temp: Path, data: bytes, mode: int, durable: Callable[[], object] | None
) -> os.stat_result:
    """``durable`` done, then ``temp`` made holding ``data``, fsynced."""
    if durable is not None:
        durable()
    return _write_named_temp(temp, data, mode)


def _write_named_temp(temp: Path, data: bytes, mode: int) -> os.stat_result:
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        info = os.fstat(handle.fileno())
    os.chmod(temp, mode)  # the umask may have narrowed it
    return info


@dataclass(frozen=True)
class _Ours:
    """The temp file we wrote: which inode, and what it held."""

    dev: int
    ino: int
    digest: str

    def at(self, path: Path) -> bool:
        """Whether ``path`` is still our file, untouched."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return False
        same_file = (info.st_dev, info.st_ino) == (self.dev, self.ino)
        return same_file and _digest_of(path) == self.digest


def _create(temp: Path, path: Path) -> WriteOutcome:
    """Move ``temp`` to ``path`` unless a file got there first (a user's new file)."""
    return WriteOutcome.WRITTEN if _place_new(temp, path) else WriteOutcome.CHANGED


def _place_new(temp: Path, path: Path) -> bool:
    """Rename ``temp`` to ``path`` only if ``path`` is free; False (``temp`` kept) if not."""
    try:
        if _rename2(temp, path, RENAME_NOREPLACE):
            return True
        os.link(temp, path)  # fails, replacing nothing, when ``path`` exists
    except FileExistsError:
        return False
    except PermissionError:  # a file system without hard links: check, then rename
        if os.path.lexists(path):
            return False
        os.replace(temp, path)
        return True
    os.unlink(temp)
    return True


def _replace(temp: Path, path: Path, expect: str, ours: _Ours) -> WriteOutcome:
    """Swap ``temp`` in for ``path``; a save that got in since the check goes back.

    The swap is atomic and destroys nothing: whatever ``path`` held at that
    instant is now at ``temp``, where it is checked. Where the system lacks
    the swap, the check is repeated just before a plain replace (a small
    window stays open there).
    """
    try:
        if not _rename2(temp, path, RENAME_EXCHANGE):
            if _current_digest(path) != expect:
                return WriteOutcome.CHANGED
            os.replace(temp, path)
            return WriteOutcome.WRITTEN
    except FileNotFoundError:
        return WriteOutcome.CHANGED  # deleted since the check (perhaps mid-save)
    if _digest_of(temp) == expect:
        return WriteOutcome.WRITTEN
    _give_back(temp, path, ours)
    return WriteOutcome.CHANGED


def _give_back(temp: Path, path: Path, ours: _Ours) -> None:
    """Put the user's save (at ``temp`` since the swap) back at ``path``.

    Swapping again brings our render out. If ``path`` changed once more in
    those microseconds (another save replaced or rewrote our render), that
    save is newer than the one we hold: a third swap puts it back in place,
    and the older save it superseded is dropped with the temp file, as the
    user's own second save would have dropped it.
    """
    try:
        swapped = _rename2(temp, path, RENAME_EXCHANGE)
    except FileNotFoundError:
        # Our render was deleted (a delete-and-recreate save started on it):
        # the user's save returns, unless their new file is already there.
        _place_new(temp, path)
        return
    assert swapped, "the first swap worked, so the system has it"
    if not ours.at(temp):
        with contextlib.suppress(FileNotFoundError):
            _rename2(temp, path, RENAME_EXCHANGE)


def leftover_temps(root: Path) -> list[tuple[str, str]]:
    """(temp, target) relpaths of the writes and removals a killed daemon left unfinished.

    Only the daemon holding the workspace lock makes such files, so at its
    start every one there is a leftover (kill -9 between create and rename,
    or between a swap and its check).
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(root):  # symlinked folders are not followed
        here = Path(dirpath)
        if here == root and STATE_DIR in dirnames:
            dirnames.remove(STATE_DIR)
        for name in filenames:
            target = _target_of_temp(name)
            if target is not None:
                rel = here.relative_to(root)
                found.append(((rel / name).as_posix(), (rel / target).as_posix()))
    return sorted(found)


def _target_of_temp(name: str) -> str | None:
    """``a.md`` for ``.a.md.0123abcd.worksync-tmp`` (see ``_temp_beside``)."""
    if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
        return None
    target, dot, _token = name[1 : -len(TEMP_SUFFIX)].rpartition(".")
    return target if dot and target else None


def put_back(root: Path, temp: str, target: str) -> None:
    """Move a leftover temp file to ``target``; whatever it displaces is removed."""
    temp_path, path = root / temp, root / target
    try:
        if _rename2(temp_path, path, RENAME_EXCHANGE):
            temp_path.unlink()
            return
    except FileNotFoundError:
        if _place_new(temp_path, path):
            return
    os.replace(temp_path, path)


def remove_if(
    root: Path, relpath: str, expect: str, *, before_move: Callable[[], object] | None = None
) -> bool:
    """Remove ``relpath`` if it still holds what we expect; a changed file stays.

    The file is first renamed aside (atomic: it takes whatever is there at
    that instant) and checked there; a save that got in since the check is
    put back, unless a newer file already took its place. ``before_move``
    runs between the check and the rename (a test's seam).
    """
    path = root / relpath
    if not inside(root, path) or path.is_symlink() or _current_digest(path) != expect:
        return False
    if before_move is not None:
        before_move()
    aside = _temp_beside(path)
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True  # gone already
    try:
        if _digest_of(aside) == expect:
            return True
        _place_new(aside, path)
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(aside)


__all__ = [
    "RealFiles",
    "Stat",
    "WriteOutcome",
    "inside",
    "read_item_bytes",
    "stat",
    "write_new_files",
]


class RealFiles:
    """:class:`~worksync_p2p.ports.FileSystem` over a real folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root = os.fspath(root)
        # Files write_new_many made, as they looked when made, and their text:
        # the watcher reports each one, and reading it back is what it says.
        self._made: dict[str, tuple[Made, str]] = {}

    def list_items(self) -> list[str]:
        return items.item_relpaths(self.root)

    def stat(self, relpath: str) -> Stat | None:
        # A plain join, not a Path: start-up stats every item.
        return stat(os.path.join(self._root, relpath))

    def read(self, relpath: str, max_bytes: int) -> bytes | None:
        made = self._made.pop(relpath, None)
        if made is not None and _looks_as_made(os.path.join(self._root, relpath), made[0]):
            return made[1].encode()[: max_bytes + 1]
        return read_item_bytes(self.root / relpath, max_bytes)

    def write_if(
        self,
        relpath: str,
        text: str,
        expect: str | None,
        durable: Callable[[], object] | None = None,
    ) -> WriteOutcome:
        self._made.pop(relpath, None)
        return write_if(self.root, relpath, text, expect, durable=durable)

    def remove_if(self, relpath: str, expect: str) -> bool:
        self._made.pop(relpath, None)
        return remove_if(self.root, relpath, expect)

    def write_new_many(
        self, texts: list[tuple[str, str]], durable: Callable[[], object] | None = None
    ) -> list[tuple[WriteOutcome, Stat | None]]:
        """``write_new_files``, with the size and mtime of each file written (None if
        unknown); what it wrote is remembered, so reading it back costs no read."""
        made: list[Made | None] = []
        outcomes = write_new_files(self.root, texts, made, durable)
        for (relpath, text), seen in zip(texts, made, strict=True):
            if seen is not None:
                self._made.pop(relpath, None)  # to the end: the oldest go first
                self._made[relpath] = (seen, text)
        while len(self._made) > MADE_KEPT:
            del self._made[next(iter(self._made))]
        return [
            (outcome, None if seen is None else Stat(seen.size, seen.mtime_ns))
            for outcome, seen in zip(outcomes, made, strict=True)
        ]


# -- many new files at once (a first sync) ----------------------------------------
#
# Added for the first sync (perf-sync); write_if above is unchanged. Per file,
# write_if's fsync is most of the cost of receiving an item (about 0.5 ms on
# ext4). Here every temp file is written first (an unnamed O_TMPFILE file
# where the system has it), then the lot is fsynced from a few threads (the
# journal commits them together), then each is linked to its name and the
# folders are fsynced. A name only
# ever appears for bytes already on disk, so no crash or power cut can leave a
# partial or empty item file under a real name; and a file that appeared in
# the meantime is never replaced (link fails on an existing name).
#
# Each folder of a batch is checked once and opened once: the files are then
# made, linked and removed relative to that folder's descriptor, and the
# folder is fsynced through it. Besides sparing every file the walk of its
# path (about 20 system calls each, a fifth of the cost of receiving an
# item), a descriptor cannot be redirected: a folder swapped for a symlink
# after its check no longer changes where the files go.

_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _pool() -> ThreadPoolExecutor:
    """The fsync threads, kept between batches (starting 8 threads per batch of a
    first sync cost more than the batch's fsyncs did); a new pool after a fork."""
    global _POOL  # noqa: PLW0603 - one pool per process
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(FSYNC_THREADS, "worksync-fsync"))
    return _POOL[1]


def _flush(fds: list[int], durable: Callable[[], object] | None = None) -> None:
    """Make the data of ``fds`` durable: an fsync each, from a few threads at
    once (the journal commits them together), or for a large batch one syncfs.

    ``durable`` runs on this thread meanwhile (the store's sync: the disk
    flushes it with the files).

    Why syncfs for large batches: making 10,000 new files durable one fsync
    each cost 1.3-5.6 s of kernel time and 4.0-8.2 s of waiting on the
    development machine's ext4, one syncfs for them all 0.4-4.2 s and
    0.6-4.5 s (less waiting in each of six alternated pairs, less kernel time
    in five). Its price is that it also flushes whatever else is dirty on the
    file system, so small batches (a live edit writes one file) keep their
    own fsyncs. It reports a failed writeback of
    any file since Linux 5.8; on older kernels an I/O error can go unseen
    here, as it could with fsync on kernels before 4.13.
    """
    if len(fds) <= 1 and durable is None:
        for fd in fds:
            os.fsync(fd)
        return
    if len(fds) >= SYNCFS_MIN_FILES and _SYNCFS is not None:
        # One per file system: a folder of the workspace may be a mount point.
        devices = {os.fstat(fd).st_dev: fd for fd in fds}
        flushing = [_pool().submit(_syncfs, fd) for fd in devices.values()]
    else:
        # One task per thread, not per file: handing over a task costs more
        # than a Python loop of fsync calls (which release the GIL).
        lanes = [fds[lane::FSYNC_THREADS] for lane in range(min(FSYNC_THREADS, len(fds)))]
        flushing = [_pool().submit(_fsync_all, lane) for lane in lanes]
    try:
        if durable is not None:
            durable()
    finally:
        wait(flushing)  # the caller closes the files only once their fsyncs are done
    for done in flushing:
        done.result()


def _fsync_all(fds: list[int]) -> None:
    for fd in fds:
        os.fsync(fd)


def _syncfs(fd: int) -> None:
    """Flush the whole file system ``fd`` is on."""
    if _SYNCFS(fd) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), "syncfs")


def fsync_folder(folder: Path) -> None:
    """Make the names in ``folder`` durable (a new or renamed file survives power loss)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _Folder:
    """A folder of the batch, checked inside the workspace, held open."""

    path: Path
    fd: int


def _open_folder(root: Path, relpath: str) -> _Folder | None:
    """The checks of write_if's ``_safe_target`` for ``relpath``'s folder (made if
    missing), and the folder opened; None if it leads outside the workspace."""
    path = root / relpath
    if not inside(root, _deepest_existing(path)):
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # Checked after opening, so what was checked is what is open: the
        # folder's real path is inside and is the very folder we hold.
        real, real_root = os.path.realpath(path.parent), os.path.realpath(root)
        here, held = os.stat(real), os.fstat(fd)
    except BaseException:
        os.close(fd)  # gone since it was made: the batch fails, as a write there would
        raise
    within = real == real_root or real.startswith(real_root + os.sep)
    if within and (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino):
        return _Folder(path.parent, fd)
    os.close(fd)
    return None


@dataclass(frozen=True)
class Made:
    """A new file as it was when we made it (unnamed until linked, so no one else
    could have written to it): while its name shows this same inode, size and
    mtime, its content is what we wrote.

    Kept only when the clock the kernel stamps files with had moved past the
    file's mtime by then: any later write to it gets a later mtime (a save in
    the same clock tick as ours would otherwise look unchanged).
    """

    dev: int
    ino: int
    size: int
    mtime_ns: int


def _made(fd: int) -> Made | None:
    info = os.fstat(fd)
    if info.st_mtime_ns >= _stamp_clock_ns():
        return None
    return Made(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _stamp_clock_ns() -> int:
    """The clock file times come from (Linux: the coarse real-time clock; elsewhere
    the time a year from now, so nothing is ever taken as unchanged)."""
    clock = getattr(time, "CLOCK_REALTIME_COARSE", _LINUX_REALTIME_COARSE)
    if not sys.platform.startswith("linux"):
        return time.time_ns() + _YEAR_NS
    return time.clock_gettime_ns(clock)


_LINUX_REALTIME_COARSE = 5
_YEAR_NS = 365 * 24 * 3600 * 10**9


def _looks_as_made(path: str, made: Made) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    seen = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    return stat_module.S_ISREG(info.st_mode) and seen == (
        made.dev,
        made.ino,
        made.size,
        made.mtime_ns,
    )


_PROC_FD = "/proc/self/fd"
_ANONYMOUS = hasattr(os, "O_TMPFILE") and os.path.isdir(_PROC_FD)
"""Whether new files start as anonymous inodes (O_TMPFILE), linked in by linkat."""


def _new_temp(
    folder: _Folder, name: str, text: str, narrowing: bool
) -> tuple[str | None, int] | WriteOutcome:
    """The checks of write_if for a file that must not exist yet; a temp file written.

    The temp file has no name (``None``) where the system allows: nothing is
    left to tidy after a crash, and the folder changes once (at the link), not
    three times (create, link, unlink), which the watcher would hear of too.
    """
    try:
        info = os.lstat(name, dir_fd=folder.fd)
    except FileNotFoundError:
        pass
    else:
        return WriteOutcome.UNSAFE if stat_module.S_ISLNK(info.st_mode) else WriteOutcome.CHANGED
    temp: str | None = None
    fd = _open_anonymous(folder) if _ANONYMOUS else None
    if fd is None:
        temp = f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temp, flags, DEFAULT_MODE, dir_fd=folder.fd)
    try:
        os.write(fd, text.encode())
        if narrowing:
            os.fchmod(fd, DEFAULT_MODE)  # the umask narrowed it
    except BaseException:
        os.close(fd)
        if temp is not None:
            os.unlink(temp, dir_fd=folder.fd)
        raise
    return temp, fd


def _open_anonymous(folder: _Folder) -> int | None:
    """An unnamed file in ``folder``; None where its file system has no O_TMPFILE."""
    try:
        return os.open(
            ".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, DEFAULT_MODE, dir_fd=folder.fd
        )
    except OSError as error:
        if error.errno in _UNSUPPORTED or error.errno in (errno.EISDIR, errno.ENOENT):
            return None
        raise


def _up_to(root: Path, folder: Path) -> list[Path]:
    """``folder`` and its parents up to ``root``: a folder made for a file is
    itself a new name in its parent, which must be durable too."""
    chain = [folder]
    while chain[-1] != root and chain[-1] != chain[-1].parent:
        chain.append(chain[-1].parent)
    return chain


def _publish(folder: _Folder, staged: _Staged) -> WriteOutcome | Made:
    """Give the durable temp file its name, unless a file took that name meanwhile;
    a file that was unnamed until then is WRITTEN, and told as :class:`Made`."""
    fd, name = folder.fd, staged.name
    if staged.temp is None:
        made = _made(staged.fd)  # before the link: until then no one else can write it
        try:  # linkat(2) of an O_TMPFILE file, as its manual page describes
            os.link(f"{_PROC_FD}/{staged.fd}", name, dst_dir_fd=fd, follow_symlinks=True)
        except FileExistsError:
            return WriteOutcome.CHANGED
        return made or WriteOutcome.WRITTEN
    try:
        os.link(staged.temp, name, src_dir_fd=fd, dst_dir_fd=fd)
    except FileExistsError:
        return WriteOutcome.CHANGED
    except OSError:
        # No hard links here (some network or FAT folders): check, then rename.
        try:
            os.lstat(name, dir_fd=fd)
        except FileNotFoundError:
            os.replace(staged.temp, name, src_dir_fd=fd, dst_dir_fd=fd)
            return WriteOutcome.WRITTEN
        return WriteOutcome.CHANGED
    return WriteOutcome.WRITTEN


@dataclass(frozen=True)
class _Staged:
    folder: _Folder
    name: str
    temp: str | None
    """None for an unnamed (O_TMPFILE) file."""
    fd: int


def _stage_all(
    root: Path,
    texts: list[tuple[str, str]],
    folders: dict[str, _Folder | None],
    staged: dict[int, _Staged],
) -> list[WriteOutcome]:
    """A temp file for every text that may be written (into ``staged``, so the
    caller cleans up after a failure half-way); the outcome so far of each."""
    outcomes: list[WriteOutcome] = []
    narrowing = _umask_narrows(DEFAULT_MODE)
    for index, (relpath, text) in enumerate(texts):
        # Folders by the relpath's folder part, a string: a Path per file was
        # a twentieth of a first sync's time in the daemon.
        parent, _, name = relpath.rpartition("/")
        if parent not in folders:
            folders[parent] = _open_folder(root, relpath)
        folder = folders[parent]
        made = WriteOutcome.UNSAFE if folder is None else _new_temp(folder, name, text, narrowing)
        if isinstance(made, WriteOutcome):
            outcomes.append(made)
            continue
        assert folder is not None
        outcomes.append(WriteOutcome.WRITTEN)
        staged[index] = _Staged(folder, name, *made)
    return outcomes


def _umask_narrows(mode: int) -> bool:
    """Whether the process umask takes bits from ``mode`` (True when it cannot be
    read: Linux shows it in /proc/self/status, and setting it to look would
    race other threads' file creations)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return bool(int(line.split()[1], 8) & mode)
    except (OSError, ValueError, IndexError):
        pass
    return True


def _fsync_folders(root: Path, published: list[_Folder]) -> None:
    """The folders that got new names, and their parents (new folders are names too)."""
    held = {folder.path: folder.fd for folder in published}
    chain: set[Path] = set()
    for folder in held:
        chain.update(_up_to(root, folder))
    opened: list[int] = []
    try:
        for path in sorted(chain - set(held)):
            opened.append(_open_dir(path))
        _flush([*held.values(), *opened])  # at once, as the files
    finally:
        for fd in opened:
            os.close(fd)


def _open_dir(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def write_new_files(
    root: Path,
    texts: list[tuple[str, str]],
    made: list[Made | None] | None = None,
    durable: Callable[[], object] | None = None,
) -> list[WriteOutcome]:
    """Create many files that must not exist yet; an outcome per ``(relpath, text)``.

    WRITTEN: the file is on disk whole (data and name durable) when this
    returns. CHANGED: a file is already there (ingest it first). UNSAFE: as
    in write_if. ``made`` gets, per text, how a written file looked when it
    was made (:class:`Made`), or None. ``durable`` runs while the unnamed
    files are fsynced, and returns before any of them gets its name (what the
    files show is made durable first: the store's sync).
    """
    folders: dict[str, _Folder | None] = {}
    staged: dict[int, _Staged] = {}
    seen: list[Made | None] = [None] * len(texts)
    try:
        outcomes = _stage_all(root, texts, folders, staged)
        _flush([s.fd for s in staged.values()], durable)
        for index, s in staged.items():
            published = _publish(s.folder, s)
            if isinstance(published, Made):
                seen[index], published = published, WriteOutcome.WRITTEN
            outcomes[index] = published
        _fsync_folders(root, [s.folder for s in staged.values()])
    finally:
        for s in staged.values():
            os.close(s.fd)
            if s.temp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(s.temp, dir_fd=s.folder.fd)
        for folder in folders.values():
            if folder is not None:
                os.close(folder.fd)
    if made is not None:
        made[:] = seen
    return outcomes
