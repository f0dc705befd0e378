"""Nothing leaves the node before its store keeps it, power cuts included (B45).

A file written for a peer's update, or a local update handed to peers, must
follow a ``Store.sync`` that covers the update: with ``synchronous = NORMAL``
a commit survives kill -9 but not a power cut, and an update that left the
node but not its disk comes back as a duplicate or as a lost edit. Real
files and real SQLite; the store below only notes which updates were
appended since the last sync.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.test_store_conformance import half_synced_batch
from tests.nodehelpers import Remote
from worksync_p2p.adapters import files
from worksync_p2p.adapters.files import RealFiles
from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.core import codec
from worksync_p2p.node import LocalNode
from worksync_p2p.ports import WriteOutcome
from worksync_p2p.workspace import init

TEXT = "---\nid: task-one\nstatus: open\n---\nfirst line\n"
KEY, RELPATH = "task-one", "task-one.md"


class NotingStore(SqliteStore):
    """The real store, noting the updates a power cut could still take back."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.unsynced: list[bytes] = []
        self.syncs = 0  # the ones that had updates to make durable

    def append(self, key: str, update: bytes) -> None:
        super().append(key, update)
        self.unsynced.append(update)

    def append_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        rows = list(items)
        super().append_many(rows)
        self.unsynced += [update for _, update in rows]

    def sync(self) -> None:
        super().sync()
        self.syncs += bool(self.unsynced)
        self.unsynced.clear()


class NotingFiles(RealFiles):
    """Real files, noting, when a write's text is about to be put in place, what the
    store could still lose and whether the text could already be seen."""

    def __init__(self, root: Path, store: NotingStore) -> None:
        super().__init__(root)
        self.store = store
        self.at_write: list[list[bytes]] = []
        self.seen_early: list[str] = []  # names that held the text before it was durable

    def write_if(
        self,
        relpath: str,
        text: str,
        expect: str | None,
        durable: Callable[[], object] | None = None,
    ) -> WriteOutcome:
        def noted() -> None:
            self.seen_early += self._holding(relpath, text)
            if durable is not None:
                durable()
            self.at_write.append(list(self.store.unsynced))

        return super().write_if(relpath, text, expect, noted)

    def _holding(self, relpath: str, text: str) -> list[str]:
        """Names in ``relpath``'s folder (temp files included) that hold ``text``."""
        folder = (self.root / relpath).parent
        return [p.name for p in folder.iterdir() if p.is_file() and p.read_bytes() == text.encode()]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[LocalNode]:
    workspace = init(tmp_path / "a").workspace
    (workspace.root / RELPATH).write_text(TEXT)
    with NotingStore(workspace.store_path) as store:
        local = LocalNode(
            workspace, workspace.load_config(), store, fs=NotingFiles(workspace.root, store)
        )
        local.load()
        local.reconcile()
        yield local


def test_a_peers_update_is_durable_before_its_file_is_written(node: LocalNode) -> None:
    assert isinstance(node.fs, NotingFiles)
    update = Remote().send(node, KEY, lambda text: text + "second line\n")
    assert "second line" in (node.root / RELPATH).read_text()
    assert len(node.fs.at_write) == 1
    assert update not in node.fs.at_write[0]
    assert node.fs.at_write[0] == []
    assert node.fs.seen_early == []


def test_a_local_save_is_durable_before_peers_get_it(node: LocalNode) -> None:
    assert isinstance(node.store, NotingStore)
    store = node.store
    sent: list[tuple[bytes, list[bytes]]] = []
    node.on_local_update = lambda _key, update: sent.append((update, list(store.unsynced)))
    (node.root / RELPATH).write_text(TEXT + "my line\n")
    node.feed(RELPATH)
    assert [update for update, _ in sent] != []
    for update, unsynced in sent:
        assert update not in unsynced
        assert unsynced == []


def test_a_sync_inside_a_batch_commits_what_came_before(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with SqliteStore(path) as store:
        with pytest.raises(RuntimeError, match="the rest"):
            half_synced_batch(store, b"\x00\x00", b"\x00\x00")
        # What was synced stays, seen from another connection; the rest rolled back.
        other = sqlite3.connect(path)
        try:
            keys = [row[0] for row in other.execute("SELECT DISTINCT key FROM updates")]
        finally:
            other.close()
        assert keys == ["a"]
        assert store.keys() == ["a"]


def test_updates_stored_before_peering_are_durable_before_it_starts(node: LocalNode) -> None:
    assert isinstance(node.store, NotingStore)
    (node.root / RELPATH).write_text(TEXT + "saved before peering\n")
    node.feed(RELPATH)  # no peers yet: stored, not sent
    assert node.store.unsynced != []
    node.on_local_update = lambda _key, _update: None
    assert node.store.unsynced == []


def test_many_peer_updates_are_synced_once_for_all_their_files(tmp_path: Path) -> None:
    workspace = init(tmp_path / "b").workspace
    names = [f"task-{n}" for n in range(5)]
    for name in names:
        (workspace.root / f"{name}.md").write_text(f"---\nid: {name}\n---\nline\n")
    with NotingStore(workspace.store_path) as store:
        fs = NotingFiles(workspace.root, store)
        node = LocalNode(workspace, workspace.load_config(), store, fs=fs)
        node.load()
        node.reconcile()
        store.sync()
        remote = Remote()
        updates = [(name, remote.edit(node, name, lambda t: t + "theirs\n")) for name in names]
        before = store.syncs
        node.receive_many(updates, remote.name)
        assert store.syncs - before == 1
        assert fs.at_write[-len(names) :] == [[]] * len(names)
        for name in names:
            assert (workspace.root / f"{name}.md").read_text().endswith("theirs\n")


def test_new_items_files_get_their_names_only_once_their_updates_are_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first sync's batch: the store's sync runs beside the files' fsyncs, and
    returns before the first link."""
    workspace = init(tmp_path / "b").workspace
    with NotingStore(workspace.store_path) as store:
        node = LocalNode(
            workspace, workspace.load_config(), store, fs=NotingFiles(workspace.root, store)
        )
        node.load()
        node.reconcile()
        store.sync()
        remote = Remote()
        updates = []
        for n in range(6):
            parsed = codec.parse(f"---\nid: new-{n}\n---\nline {n}\n".encode(), f"new-{n}.md")
            update = remote.repo.ingest(f"new-{n}", f"new-{n}.md", parsed, 1_000).update
            assert update is not None
            updates.append((f"new-{n}", update))
        at_link: list[list[bytes]] = []
        publish = files._publish

        def noted(folder: Any, staged: Any) -> Any:
            at_link.append(list(store.unsynced))
            return publish(folder, staged)

        monkeypatch.setattr(files, "_publish", noted)
        before = store.syncs
        node.receive_many(updates, remote.name)
        assert at_link == [[]] * len(updates)
        assert store.syncs - before == 1
        assert sorted(p.name for p in workspace.root.glob("new-*.md")) == [
            f"new-{n}.md" for n in range(6)
        ]
