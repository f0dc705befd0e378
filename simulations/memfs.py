"""An in-memory workspace folder: :class:`worksync_p2p.ports.FileSystem` plus editor hooks.

Paths are relative with ``/``; there are no folders, symlinks or permissions,
only files (bytes and an mtime). The mtime is a per-folder counter bumped on
every change, so two different contents never share a ``Stat`` by accident (a
coarse-mtime file system is a different fault, not modelled here).

``write_if`` and ``remove_if`` keep the expectation semantics of
``adapters/files.py``: the content must still hash to ``expect`` (``None``:
the file must be absent), else the write is refused with ``CHANGED``. Each of
them is atomic, like the temp-file-and-rename of the real adapter.

Every change, by the node or by an editor, is reported to ``on_change`` so a
simulated watcher can call ``node.on_relpaths`` later, as watchfiles does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from worksync_p2p.core.bridge import content_hash
from worksync_p2p.ports import Stat, WriteOutcome

MTIME_STEP_NS = 1_000_000


def is_item_relpath(relpath: str) -> bool:
    """What the real watcher and ``list_items`` accept: a visible ``*.md`` in visible folders."""
    if not relpath.endswith(".md"):
        return False
    parts = relpath.split("/")
    return not any(part.startswith(".") for part in parts) and not parts[-1].startswith("#")


def escapes(relpath: str) -> bool:
    """Whether a path the node asked for would leave the folder."""
    parts = relpath.split("/")
    return relpath.startswith(("/", "\\")) or ".." in parts or "" in parts


@dataclass
class _File:
    data: bytes
    mtime_ns: int


@dataclass
class FsCounters:
    """What the node did to this folder, for the no-echo and containment checkers."""

    node_writes: int = 0
    node_removes: int = 0
    refused: int = 0
    unsafe: list[str] = field(default_factory=list)


class MemFS:
    """One peer's workspace folder in memory."""

    def __init__(self, on_change: Callable[[str], None] | None = None) -> None:
        self.files: dict[str, _File] = {}
        self.on_change = on_change
        self.on_node_op: Callable[[str], None] | None = None  # the trace of what the node did
        self.counters = FsCounters()
        self.last_held: dict[str, bytes] = {}  # what a path held when it last went away
        self._mtime = 0

    # -- FileSystem port (what the node calls) ------------------------------------

    def list_items(self) -> list[str]:
        return sorted(p for p in self.files if is_item_relpath(p))

    def stat(self, relpath: str) -> Stat | None:
        entry = self.files.get(relpath)
        return None if entry is None else Stat(len(entry.data), entry.mtime_ns)

    def read(self, relpath: str, max_bytes: int) -> bytes | None:
        entry = self.files.get(relpath)
        return None if entry is None else entry.data[: max_bytes + 1]

    def write_if(
        self,
        relpath: str,
        text: str,
        expect: str | None,
        durable: Callable[[], object] | None = None,
    ) -> WriteOutcome:
        if escapes(relpath):
            self.counters.unsafe.append(relpath)
            return WriteOutcome.UNSAFE
        if self.digest(relpath) != expect:
            self.counters.refused += 1
            self._node_op(f"write {relpath} refused: changed")
            return WriteOutcome.CHANGED
        if durable is not None:
            durable()  # as the real folder: done before the content can be seen
        self.counters.node_writes += 1
        self._node_op(f"write {relpath}")
        self.put(relpath, text.encode())
        return WriteOutcome.WRITTEN

    def remove_if(self, relpath: str, expect: str) -> bool:
        if escapes(relpath):
            self.counters.unsafe.append(relpath)
            return False
        if self.digest(relpath) != expect:
            self._node_op(f"remove {relpath} refused: changed")
            return False
        self.counters.node_removes += 1
        self._node_op(f"remove {relpath}")
        self.remove(relpath)
        return True

    # -- editor side -------------------------------------------------------------

    def digest(self, relpath: str) -> str | None:
        entry = self.files.get(relpath)
        return None if entry is None else content_hash(entry.data)

    def get(self, relpath: str) -> bytes | None:
        entry = self.files.get(relpath)
        return None if entry is None else entry.data

    def put(self, relpath: str, data: bytes) -> None:
        """Create or replace a file in one step (what a rename over it looks like)."""
        self._mtime += MTIME_STEP_NS
        self.files[relpath] = _File(data, self._mtime)
        self._changed(relpath)

    def remove(self, relpath: str) -> None:
        entry = self.files.pop(relpath, None)
        if entry is not None:
            self.last_held[relpath] = entry.data
            self._changed(relpath)

    def rename(self, source: str, target: str) -> None:
        """``os.replace``: the target takes the source's bytes and mtime in one step."""
        entry = self.files.pop(source, None)
        if entry is None:
            return
        self.last_held[source] = entry.data
        self.files[target] = entry
        self._changed(source)
        self._changed(target)

    def _node_op(self, line: str) -> None:
        if self.on_node_op is not None:
            self.on_node_op(line)

    def files_data(self) -> list[bytes]:
        return [entry.data for entry in self.files.values()]

    def snapshot(self) -> dict[str, bytes]:
        return {p: f.data for p, f in sorted(self.files.items())}

    def _changed(self, relpath: str) -> None:
        if self.on_change is not None:
            self.on_change(relpath)
