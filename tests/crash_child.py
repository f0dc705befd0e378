"""Child process for ``tests/test_crash_windows.py``: a node killed (-9) at a file write.

Run as ``python -m tests.crash_child MODE ROOT`` from the repository root. It
starts a node on ROOT as ``up`` does (load, reconcile: the folder's file is
taken in and recorded), then takes one peer's update to :data:`KEY` and sends
itself SIGKILL the moment the node touches the file for it: after the
``Store.sync`` that precedes every file write and removal, so the store holds
the update and the file does not show it. MODE ``edit``: the peer appends
:data:`PEER_LINE` (killed in ``write_if``); ``delete``: the peer deletes the
item (killed in ``remove_if``); ``saved-over``: the peer's edit is written, the
user saves on top of it at once, and the kill follows. Nothing here loops or waits.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from worksync_p2p.adapters.files import RealFiles
from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.core import codec
from worksync_p2p.core.hlc import Hlc
from worksync_p2p.core.itemdoc import Writer
from worksync_p2p.core.repo import Repo
from worksync_p2p.node import LocalNode, now_ms
from worksync_p2p.ports import WriteOutcome
from worksync_p2p.workspace import init

KEY, RELPATH = "task-one", "task-one.md"
TEXT = "---\nid: task-one\nstatus: open\n---\nfirst line\n"
PEER_LINE = "a line from the peer\n"
USER_LINE = "a line the user saved over our write\n"
PEER = "peer-b"


class KilledAtTheFile(RealFiles):
    """Real files until ``armed``; then the first write or removal is a kill -9.

    With ``save_after_write``, the write happens and the user saves the file at
    once, before the node looks at it again; the kill comes after ``receive``.
    """

    armed = False
    save_after_write: str | None = None

    def _die_if_armed(self) -> None:
        if self.armed and self.save_after_write is None:
            os.kill(os.getpid(), signal.SIGKILL)

    def write_if(
        self,
        relpath: str,
        text: str,
        expect: str | None,
        durable: Callable[[], object] | None = None,
    ) -> WriteOutcome:
        if self.armed and durable is not None:
            durable()  # the store's sync runs inside the write: killed right after it
        self._die_if_armed()
        outcome = super().write_if(relpath, text, expect, durable)
        if self.armed and self.save_after_write is not None:
            with (self.root / relpath).open("r+b") as handle:  # in place, as editors do
                handle.truncate(0)
                handle.write(self.save_after_write.encode())
        return outcome

    def remove_if(self, relpath: str, expect: str) -> bool:
        self._die_if_armed()
        return super().remove_if(relpath, expect)


def peer_update(node: LocalNode, mode: str) -> bytes:
    """The peer's update, made on a copy of the node's document."""
    mine = Repo(Writer(PEER, Hlc(PEER), 0), 424_242)
    state = node.repo.encoded(KEY)
    assert state is not None, "the node did not take in the file"
    mine.load(KEY, state)
    if mode == "delete":
        update = mine.delete(KEY, now_ms())
    else:
        parsed = codec.parse((TEXT + PEER_LINE).encode(), RELPATH)
        update = mine.ingest(KEY, RELPATH, parsed, now_ms()).update
    assert update is not None
    return update


def main(mode: str, root: Path) -> None:
    workspace = init(root).workspace
    with SqliteStore(workspace.store_path) as store:
        fs = KilledAtTheFile(workspace.root)
        node = LocalNode(workspace, workspace.load_config(), store, fs=fs)
        node.load()
        node.reconcile()
        update = peer_update(node, "edit" if mode == "saved-over" else mode)
        if mode == "saved-over":
            fs.save_after_write = TEXT + PEER_LINE + USER_LINE
        fs.armed = True
        node.receive(KEY, update, PEER)
        if mode == "saved-over":
            os.kill(os.getpid(), signal.SIGKILL)  # before any watcher could report the save
    raise SystemExit("the node never touched the file: nothing killed it")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
