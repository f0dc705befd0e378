"""A writer's second edit reaching the node before its first (LocalNode.receive,
receive_many): while that makes the item read deleted, the file keeps what it showed
and no event is told until the first edit completes it. Real files, real SQLite (the core side:
tests/core/test_out_of_order.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.nodehelpers import EventTap, Remote
from worksync_p2p.adapters.sqlite_store import SqliteStore
from worksync_p2p.core import codec
from worksync_p2p.core import syncproto as sp
from worksync_p2p.node import LocalNode
from worksync_p2p.workspace import init

KEY, NAME = "t1", "t1.md"
TEXT = "---\nid: t1\nstatus: todo\n---\nbody line\n"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[LocalNode]:
    workspace = init(tmp_path / "b").workspace
    (workspace.root / NAME).write_text(TEXT)
    with SqliteStore(workspace.store_path) as store:
        local = LocalNode(workspace, workspace.load_config(), store)
        local.load()
        local.reconcile()
        yield local


def two_edits(node: LocalNode) -> tuple[bytes, bytes, str]:
    """A peer's two edits of the item, one after the other: (u1, u2, the text after u2)."""
    remote = Remote()
    u1 = remote.edit(node, KEY, lambda t: t.replace("todo", "doing") + "first edit\n")
    u2 = remote.edit(node, KEY, lambda t: t + "second edit\n")
    final = remote.repo.get(KEY)
    assert final is not None
    text = final.render()
    assert text is not None
    return u1, u2, text


def test_the_second_edit_first_leaves_the_file_alone_until_the_first(node: LocalNode) -> None:
    path = node.root / NAME
    u1, u2, final = two_edits(node)
    tap = EventTap(node.bus)
    node.receive(KEY, u2, "peer-b")
    assert path.read_text() == TEXT  # not removed, no half-applied state written
    assert tap.drain() == []
    assert KEY in node.items.waiting_keys()
    node.receive(KEY, u1, "peer-b")
    assert path.read_text() == final
    assert [(e["event"], e["fields"]) for e in tap.drain()] == [("modified", ["status"])]
    assert not node.items.waiting_keys()


def test_receive_many_holds_the_item_back_too(node: LocalNode) -> None:
    path = node.root / NAME
    u1, u2, final = two_edits(node)
    node.receive_many([(KEY, u2)], "peer-b")
    assert path.read_text() == TEXT
    node.receive_many([(KEY, u2), (KEY, u1)], "peer-b")  # a forwarded copy, then the edit
    assert path.read_text() == final
    assert not node.items.waiting_keys()


def test_what_waits_outlives_the_document_leaving_memory(node: LocalNode) -> None:
    # Repo keeps few documents live; the rest are encoded, which drops pending structs.
    path = node.root / NAME
    u1, u2, final = two_edits(node)
    node.receive(KEY, u2, "peer-b")
    node.repo.load(KEY, node.repo.encoded(KEY) or b"")
    node.receive(KEY, u1, "peer-b")
    assert path.read_text() == final


def test_the_session_asks_its_peer_for_what_the_item_waits_for(node: LocalNode) -> None:
    # The first edit never comes by itself (a lost frame): the heartbeat asks for it.
    path = node.root / NAME
    remote = Remote()
    u1 = remote.edit(node, KEY, lambda t: t + "first edit\n")
    u2 = remote.edit(node, KEY, lambda t: t + "second edit\n")
    node.receive(KEY, u2, "peer-b")
    theirs = sp.RepoItems(remote.repo)
    theirs.refresh_all()
    ours = sp.PeerSync(node.items, 0)
    peer = sp.PeerSync(theirs, 0)
    (ask,) = ours.tick(10)
    assert sp.decode(ask)[0] is sp.Kind.SYNC1
    assert ours.tick(20) == []  # asked once per session while it waits
    (answer,) = peer.receive(ask, 30)[0]
    _, received = ours.receive(answer, 40)
    for got in received:
        node.receive(got.key, got.update, "peer-b")
    final = remote.repo.get(KEY)
    assert final is not None
    assert path.read_text() == final.render()
    assert u1  # the edit the node never got on its own
    assert not node.items.waiting_keys()


def test_a_partial_state_that_reads_alive_is_written_as_before(node: LocalNode) -> None:
    # The node's own edit, unseen by the peer, keeps a live rev cell: the item reads
    # alive while the peer's second edit waits, so the bridge writes what it has.
    path = node.root / NAME
    remote = Remote()
    remote.pull(node, KEY)
    path.write_text(TEXT + "our line\n")
    node.feed(NAME)
    doing = TEXT.replace("todo", "doing")
    u1 = remote.repo.ingest(KEY, NAME, codec.parse(doing.encode(), NAME), 2_000).update
    u2 = remote.repo.ingest(
        KEY, NAME, codec.parse((doing + "their line\n").encode(), NAME), 3_000
    ).update
    assert u1 is not None
    assert u2 is not None
    node.receive(KEY, u2, "peer-b")
    assert KEY in node.items.waiting_keys()
    assert path.exists()
    node.receive(KEY, u1, "peer-b")
    assert not node.items.waiting_keys()
    text = path.read_text()
    assert "status: doing" in text
    assert "our line\n" in text
    assert "their line\n" in text


def test_what_waits_is_known_again_after_a_restart(tmp_path: Path) -> None:
    """The second edit is stored as it came; after a restart the item, brought back
    from the store, still waits: the session asks for it, and the first edit,
    arriving after the document left memory (which drops pending structs), still
    completes it."""
    workspace = init(tmp_path / "b").workspace
    path = workspace.root / NAME
    path.write_text(TEXT)
    with SqliteStore(workspace.store_path) as store:
        first = LocalNode(workspace, workspace.load_config(), store)
        first.load()
        first.reconcile()
        u1, u2, final = two_edits(first)
        first.receive(KEY, u2, "peer-b")
        assert KEY in first.items.waiting_keys()
    with SqliteStore(workspace.store_path) as store:
        node = LocalNode(workspace, workspace.load_config(), store)
        node.load()
        node.reconcile()
        assert node.repo.get(KEY) is not None
        assert KEY in node.items.waiting_keys()
        node.repo.load(KEY, node.repo.encoded(KEY) or b"")  # out of memory: pending dropped
        node.receive(KEY, u1, "peer-b")
        assert path.read_text() == final
        assert not node.items.waiting_keys()
