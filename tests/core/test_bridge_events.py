"""What a peer's change says on the event bus: the fields it changed, the merges it decided.

Two bridges (two machines) share one item; their updates are handed over the
way ``LocalNode.receive`` does: ``before_remote``, apply, ``on_remote``.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc

from worksync_p2p.core import bridge as b
from worksync_p2p.core.hlc import Hlc
from worksync_p2p.core.itemdoc import Writer
from worksync_p2p.core.repo import Repo

TEXT = "---\nid: t1\nstatus: todo\nassignee: nobody\ntags: [a]\n---\nbody line\n"


def machine(peer: str, client_id: int) -> b.Bridge:
    return b.Bridge(Repo(Writer(peer, Hlc(peer), 0), client_id))


def pair() -> tuple[b.Bridge, b.Bridge]:
    """Machines a and b, both holding the item's file as a wrote it."""
    a, other = machine("peer-a", 7), machine("peer-b", 8)
    a.on_file("t1.md", TEXT.encode(), 1000)
    state = a.repo.encoded("t1")
    assert state is not None
    other.repo.load("t1", state)
    for effect in other.on_remote("t1", "peer-a"):
        if isinstance(effect, b.WriteFile):
            other.wrote(effect.key, effect.relpath)
    return a, other


def save(on: b.Bridge, text: str, now_ms: int) -> bytes:
    """The user saves t1.md on ``on``: the update that sends to the other machine."""
    before = on.repo.encoded("t1")
    on.on_file("t1.md", text.encode(), now_ms)
    return _since(on, before)


def move(on: b.Bridge, to: str, now_ms: int) -> bytes:
    """The user renames t1.md to ``to`` on ``on`` (the old file goes, the new one comes)."""
    before = on.repo.encoded("t1")
    on.on_file("t1.md", None, now_ms)
    on.on_file(to, TEXT.encode(), now_ms + 1)
    assert on.path_of("t1") == to
    return _since(on, before)


def _since(on: b.Bridge, before: bytes | None) -> bytes:
    item = on.repo.get("t1")
    assert item is not None
    assert before is not None
    return item.doc.get_update(_state_vector(before))


def _state_vector(state: bytes) -> bytes:
    doc: Doc[Any] = Doc()
    doc.apply_update(state)
    return doc.get_state()


def deliver(to: b.Bridge, update: bytes, origin: str) -> list[b.ItemEvent]:
    to.before_remote("t1")
    item = to.repo.get("t1")
    assert item is not None
    item.apply_remote(update)
    effects = to.on_remote("t1", origin)
    for effect in effects:
        if isinstance(effect, b.WriteFile):  # the node wrote it: the file shows the merge
            to.wrote(effect.key, effect.relpath)
    return [e.event for e in effects if isinstance(e, b.Emit)]


def test_a_peer_edit_names_the_fields_it_changed() -> None:
    a, other = pair()
    update = save(a, TEXT.replace("todo", "doing").replace("[a]", "[a, b]"), 2000)
    (event,) = deliver(other, update, "peer-a")
    assert (event.kind, event.key, event.path, event.origin) == (
        "modified",
        "t1",
        "t1.md",
        "peer-a",
    )
    assert event.fields == ("status", "tags")


def test_a_peer_edit_of_the_body_only_names_no_field() -> None:
    a, other = pair()
    update = save(a, TEXT + "a second line\n", 2000)
    (event,) = deliver(other, update, "peer-a")
    assert (event.kind, event.fields) == ("modified", ())


def test_concurrent_claims_of_one_field_emit_a_conflict_event_on_both_sides() -> None:
    a, other = pair()
    from_a = save(a, TEXT.replace("nobody", "alice"), 2000)
    from_b = save(other, TEXT.replace("nobody", "bob"), 2001)
    on_b = deliver(other, from_a, "peer-a")
    on_a = deliver(a, from_b, "peer-b")
    for seen, origin in ((on_b, "peer-a"), (on_a, "peer-b")):
        assert [e.kind for e in seen if e.kind == "conflict"] == ["conflict"], seen
        (conflict,) = [e for e in seen if e.kind == "conflict"]
        assert (conflict.key, conflict.path, conflict.fields, conflict.origin) == (
            "t1",
            "t1.md",
            ("assignee",),
            origin,
        )


def test_a_later_edit_of_a_field_is_no_conflict() -> None:
    a, other = pair()
    first = save(a, TEXT.replace("nobody", "alice"), 2000)
    deliver(other, first, "peer-a")
    # b saw alice and then claims it: causally later, so no decision is made
    later = save(other, TEXT.replace("nobody", "bob"), 3000)
    seen = deliver(a, later, "peer-b")
    assert [e.kind for e in seen] == ["modified"]
    assert seen[0].fields == ("assignee",)


def test_concurrent_renames_emit_a_conflict_about_the_path() -> None:
    a, other = pair()
    to_x = move(a, "x.md", 2000)
    to_y = move(other, "y.md", 2001)
    seen = deliver(a, to_y, "peer-b") + deliver(other, to_x, "peer-a")
    conflicts = [e for e in seen if e.kind == "conflict"]
    assert [e.fields for e in conflicts] == [("path",), ("path",)]
