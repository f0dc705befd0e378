"""File system side of the bridge: stat, safe reads, atomic checked writes.

Writes go to a hidden temp file in the same folder (the watcher ignores
hidden names), are fsynced and renamed over the target, keeping the target's
permissions. A write names the content hash it expects to replace and is
refused when the file moved on, so a save the user made after our last look
is never clobbered. Nothing is written through a symlink or into a folder
that resolves outside the workspace.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat as stat_module
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from worksync_p2p import items
from worksync_p2p.core.bridge import content_hash
from worksync_p2p.ports import Stat, WriteOutcome

DEFAULT_MODE = 0o644
FSYNC_THREADS = 8
TEMP_SUFFIX = ".worksync-tmp"
STATE_DIR = ".worksync"


def stat(path: Path) -> Stat | None:
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


def write_if(root: Path, relpath: str, text: str, expect: str | None) -> WriteOutcome:
    """Atomically replace ``relpath`` with ``text`` if it still hashes to ``expect``."""
    path = root / relpath
    # Check before creating folders: a symlinked folder must not make us
    # create anything outside the workspace.
    if not inside(root, _deepest_existing(path)) or path.is_symlink():
        return WriteOutcome.UNSAFE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not inside(root, path):
        return WriteOutcome.UNSAFE
    if _current_digest(path) != expect:
        return WriteOutcome.CHANGED
    mode = DEFAULT_MODE
    with contextlib.suppress(FileNotFoundError):
        mode = stat_module.S_IMODE(os.lstat(path).st_mode)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode())
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)  # the umask may have narrowed it
        os.replace(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    return WriteOutcome.WRITTEN


def remove_stale_temps(root: Path) -> list[str]:
    """Remove the temp files of writes a killed daemon never finished; their relpaths.

    Only the daemon holding the workspace lock writes such files, so at its
    start every one left is a leftover (kill -9 between create and rename).
    """
    removed = []
    for dirpath, dirnames, filenames in os.walk(root):  # symlinked folders are not followed
        here = Path(dirpath)
        if here == root and STATE_DIR in dirnames:
            dirnames.remove(STATE_DIR)
        for name in filenames:
            if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    (here / name).unlink()
                    removed.append((here / name).relative_to(root).as_posix())
    return removed


def remove_if(root: Path, relpath: str, expect: str) -> bool:
    """Remove ``relpath`` if it still holds what we expect; a changed file stays."""
    path = root / relpath
    if not inside(root, path) or path.is_symlink() or _current_digest(path) != expect:
        return False
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return True


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

    def list_items(self) -> list[str]:
        return sorted(items.relpath_of(self.root, p) for p in items.iter_item_files(self.root))

    def stat(self, relpath: str) -> Stat | None:
        return stat(self.root / relpath)

    def read(self, relpath: str, max_bytes: int) -> bytes | None:
        return read_item_bytes(self.root / relpath, max_bytes)

    def write_if(self, relpath: str, text: str, expect: str | None) -> WriteOutcome:
        return write_if(self.root, relpath, text, expect)

    def remove_if(self, relpath: str, expect: str) -> bool:
        return remove_if(self.root, relpath, expect)

    def write_new_many(self, texts: list[tuple[str, str]]) -> list[WriteOutcome]:
        return write_new_files(self.root, texts)


# -- many new files at once (a first sync) ----------------------------------------
#
# Added for the first sync (perf-sync); write_if above is unchanged. Per file,
# write_if's fsync is most of the cost of receiving an item (about 0.5 ms on
# ext4). Here every temp file is written first, then the lot is fsynced from
# a few threads (the journal commits them together), then each is linked to
# its name and the folders are fsynced. A name only
# ever appears for bytes already on disk, so no crash or power cut can leave a
# partial or empty item file under a real name; and a file that appeared in
# the meantime is never replaced (link fails on an existing name).


def _flush(fds: list[int]) -> None:
    """fsync ``fds`` from a few threads at once: the journal commits them together.

    Not syncfs: that would also flush every other program's dirty data on the
    file system (and make our next file creations wait for it).
    """
    if len(fds) <= 1:
        for fd in fds:
            os.fsync(fd)
        return
    with ThreadPoolExecutor(max_workers=min(FSYNC_THREADS, len(fds))) as pool:
        list(pool.map(os.fsync, fds))


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_temp(root: Path, relpath: str, text: str) -> tuple[Path, int] | WriteOutcome:
    """The checks of write_if for a file that must not exist yet; a temp file written."""
    path = root / relpath
    if not inside(root, _deepest_existing(path)) or path.is_symlink():
        return WriteOutcome.UNSAFE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not inside(root, path):
        return WriteOutcome.UNSAFE
    if os.path.lexists(path):
        return WriteOutcome.CHANGED
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, DEFAULT_MODE)
    try:
        os.write(fd, text.encode())
        os.fchmod(fd, DEFAULT_MODE)  # the umask may have narrowed it
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    return temp, fd


def _up_to(root: Path, folder: Path) -> list[Path]:
    """``folder`` and its parents up to ``root``: a folder made for a file is
    itself a new name in its parent, which must be durable too."""
    chain = [folder]
    while chain[-1] != root and chain[-1] != chain[-1].parent:
        chain.append(chain[-1].parent)
    return chain


def _publish(temp: Path, path: Path) -> WriteOutcome:
    """Give the durable temp file its name, unless a file took that name meanwhile."""
    try:
        os.link(temp, path)
    except FileExistsError:
        return WriteOutcome.CHANGED
    except OSError:
        # No hard links here (some network or FAT folders): check, then rename.
        if os.path.lexists(path):
            return WriteOutcome.CHANGED
        os.replace(temp, path)
    return WriteOutcome.WRITTEN


def write_new_files(root: Path, texts: list[tuple[str, str]]) -> list[WriteOutcome]:
    """Create many files that must not exist yet; an outcome per ``(relpath, text)``.

    WRITTEN: the file is on disk whole (data and name durable) when this
    returns. CHANGED: a file is already there (ingest it first). UNSAFE: as
    in write_if.
    """
    outcomes: list[WriteOutcome] = []
    temps: dict[int, tuple[Path, int]] = {}
    try:
        for index, (relpath, text) in enumerate(texts):
            made = _new_temp(root, relpath, text)
            if isinstance(made, WriteOutcome):
                outcomes.append(made)
            else:
                outcomes.append(WriteOutcome.WRITTEN)
                temps[index] = made
        _flush([fd for _, fd in temps.values()])
        folders: set[Path] = set()
        for index, (temp, _) in temps.items():
            path = root / texts[index][0]
            outcomes[index] = _publish(temp, path)
            folders.update(_up_to(root, path.parent))
        for folder in sorted(folders):
            _fsync_folder(folder)
    finally:
        for temp, fd in temps.values():
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
    return outcomes
