"""A writer's second edit arriving before its first (reconnects, forwarding through a
third peer, a lost frame): Yjs applies the second edit's delete set at once and holds
its insertions back, so the item reads half-applied until the first edit arrives."""

from __future__ import annotations

from worksync_p2p.core import bridge as b
from worksync_p2p.core import codec, yupdate
from worksync_p2p.core.hlc import Hlc
from worksync_p2p.core.itemdoc import Writer
from worksync_p2p.core.repo import Repo

KEY, PATH = "t1", "t1.md"
TEXT = "---\nid: t1\nstatus: todo\n---\nbody line\n"
ONE = TEXT.replace("todo", "doing") + "first edit\n"
TWO = ONE.replace("doing", "done") + "second edit\n"


def _replicas() -> tuple[Repo, b.Bridge, bytes, bytes]:
    """Writer A edits twice; B holds A's first state and its file (u1, u2 unseen)."""
    writer = Repo(Writer("peer-a", Hlc("peer-a"), 0), 11)
    seed = writer.ingest(KEY, PATH, codec.parse(TEXT.encode(), PATH), 1_000).update
    u1 = writer.ingest(KEY, PATH, codec.parse(ONE.encode(), PATH), 2_000).update
    u2 = writer.ingest(KEY, PATH, codec.parse(TWO.encode(), PATH), 3_000).update
    assert seed is not None
    assert u1 is not None
    assert u2 is not None
    bridge = b.Bridge(Repo(Writer("peer-b", Hlc("peer-b"), 0), 22))
    bridge.repo.adopt(KEY, seed)
    assert isinstance(bridge.on_remote(KEY, "peer-a")[0], b.WriteFile)
    return writer, bridge, u1, u2


def test_the_second_edit_first_leaves_the_item_reading_deleted() -> None:
    _, bridge, _, u2 = _replicas()
    item = bridge.repo.get(KEY)
    assert item is not None
    bridge.before_remote(KEY)
    item.apply_remote(u2)
    # u2's delete set took the old rev cell; its new cell waits for u1.
    assert not item.alive()
    assert item.render() is None
    assert yupdate.waiting(item.doc, u2) is not None
    # What the bridge would do if asked now: remove the user's file. The node must
    # not ask it (LocalNode.receive holds the item back until it is complete).
    effects = bridge.on_remote(KEY, "peer-a")
    assert any(isinstance(e, b.RemoveFile) for e in effects)


def test_the_first_edit_completes_the_item() -> None:
    _, bridge, u1, u2 = _replicas()
    item = bridge.repo.get(KEY)
    assert item is not None
    item.apply_remote(u2)
    item.apply_remote(u1)
    assert yupdate.waiting(item.doc, u2) is None
    assert yupdate.waiting(item.doc, u1) is None
    assert item.alive()
    assert item.render() == TWO


def test_an_update_in_order_does_not_wait() -> None:
    _, bridge, u1, u2 = _replicas()
    item = bridge.repo.get(KEY)
    assert item is not None
    item.apply_remote(u1)
    assert yupdate.waiting(item.doc, u1) is None
    item.apply_remote(u2)
    assert yupdate.waiting(item.doc, u2) is None
    assert item.render() == TWO


def test_what_waits_survives_the_document_being_rebuilt_from_its_encoded_state() -> None:
    # Repo evicts documents to their encoded state, which drops pending structs:
    # the caller keeps what ``waiting`` returned and applies it again.
    _, bridge, u1, u2 = _replicas()
    item = bridge.repo.get(KEY)
    assert item is not None
    item.apply_remote(u2)
    rest = yupdate.waiting(item.doc, u2)
    assert rest is not None
    again = Repo(Writer("peer-b", Hlc("peer-b"), 0), 22).adopt(KEY, item.encoded())
    again.apply_remote(rest)
    again.apply_remote(u1)
    assert again.render() == TWO
