"""Merge rules of one item document, each in every delivery order."""

from __future__ import annotations

import datetime as dt
import gc
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest
from pycrdt import Doc, Map, Text, merge_updates

from tests.core.replicas import (
    PATH,
    Replica,
    all_orders,
    flood,
    parse,
    renders,
    seed,
    start,
)
from worksync_p2p.core import codec, fields, itemdoc, values
from worksync_p2p.core.digest import item_hash
from worksync_p2p.core.hlc import Hlc
from worksync_p2p.core.itemdoc import ItemDoc, Writer

CORPUS = Path(__file__).parent.parent / "fixtures" / "corpus"

BASE = """---
id: item-1
status: todo
priority: 2
tags: [sync, crdt]
git_context:
  branch: main
  worktree: wt
---

# Title

line one
line two
line three
"""


def edited(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def two_edits(
    a_text: str, b_text: str, a_ms: int = 2000, b_ms: int = 3000, base: str = BASE
) -> list[list[Replica]]:
    def make() -> tuple[list[Replica], list[tuple[int, bytes]]]:
        reps = start(["peer-a", "peer-b", "peer-c"], seed(base))
        return reps, [(0, reps[0].edit(a_text, a_ms)), (1, reps[1].edit(b_text, b_ms))]

    return all_orders(make)


def only_render(runs: list[list[Replica]]) -> str:
    found = set().union(*(renders(r) for r in runs))
    assert len(found) == 1, found
    (text,) = found
    assert text is not None
    return text


# -- round trip and idempotence ------------------------------------------


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.md")), ids=lambda p: p.name)
def test_corpus_file_renders_byte_identical(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    (replica,) = start(["a"], seed(text, key=path.stem, path=path.name))
    assert replica.item.render() == text


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.md")), ids=lambda p: p.name)
def test_ingesting_the_rendered_file_is_a_no_op(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    (replica,) = start(["a"], seed(text, key=path.stem, path=path.name))
    update = replica.item.ingest(parse(text, path.name), path.name, replica.writer)
    assert update is None


def test_second_ingest_of_the_same_edit_is_a_no_op() -> None:
    (replica,) = start(["a"], seed(BASE))
    new = edited(BASE, "status: todo", "status: done")
    replica.edit(new, 2000)
    assert replica.item.ingest(parse(new), PATH, replica.writer) is None
    assert replica.item.render() == new


# -- fields ----------------------------------------------------------------


def test_different_keys_edited_concurrently_both_survive() -> None:
    a = edited(BASE, "status: todo", "status: doing")
    b = edited(BASE, "priority: 2", "priority: 5")
    text = only_render(two_edits(a, b))
    assert "status: doing" in text
    assert "priority: 5" in text


def test_nested_maps_merge_key_by_key() -> None:
    a = edited(BASE, "branch: main", "branch: feature")
    b = edited(BASE, "worktree: wt", "worktree: other")
    text = only_render(two_edits(a, b))
    assert "branch: feature" in text
    assert "worktree: other" in text


@pytest.mark.parametrize(("a_ms", "b_ms", "winner"), [(2000, 3000, "b"), (3000, 2000, "a")])
def test_same_key_later_edit_wins_and_loser_is_a_conflict(
    a_ms: int, b_ms: int, winner: str
) -> None:
    a = edited(BASE, "status: todo", "status: by-a")
    b = edited(BASE, "status: todo", "status: by-b")
    runs = two_edits(a, b, a_ms, b_ms)
    text = only_render(runs)
    assert f"status: by-{winner}" in text
    loser = "a" if winner == "b" else "b"
    for replicas in runs:
        for replica in replicas:
            (conflict,) = list(replica.item.field_conflicts())
            assert conflict.path == ("status",)
            assert [values.decode(c.value) for c in conflict.losers] == [f"by-{loser}"]


def test_same_key_same_millisecond_tie_is_deterministic() -> None:
    a = edited(BASE, "status: todo", "status: by-a")
    b = edited(BASE, "status: todo", "status: by-b")
    text = only_render(two_edits(a, b, 2000, 2000))
    assert "status: by-b" in text  # ties go to the larger writer id


def test_a_later_edit_of_the_field_clears_the_conflict() -> None:
    a = edited(BASE, "status: todo", "status: by-a")
    b = edited(BASE, "status: todo", "status: by-b")
    (replicas,) = two_edits(a, b)[:1]
    resolved = edited(BASE, "status: todo", "status: agreed")
    flood(replicas, [(2, replicas[2].edit(resolved, 9000))])
    assert renders(replicas) == {resolved}
    assert all(not list(r.item.field_conflicts()) for r in replicas)


def test_causally_later_edit_wins_even_with_a_clock_behind() -> None:
    (a, b) = start(["peer-a", "peer-b"], seed(BASE))
    first = edited(BASE, "status: todo", "status: first")
    flood([a, b], [(0, a.edit(first, 50_000))])
    second = edited(BASE, "status: todo", "status: second")
    flood([a, b], [(1, b.edit(second, 1_000))])  # b's wall clock is far behind
    assert renders([a, b]) == {second}


# -- lists -----------------------------------------------------------------


def test_concurrent_list_additions_both_survive() -> None:
    a = edited(BASE, "tags: [sync, crdt]", "tags: [sync, crdt, a]")
    b = edited(BASE, "tags: [sync, crdt]", "tags: [sync, crdt, b]")
    text = only_render(two_edits(a, b))
    fields = codec.parse(text.encode(), PATH).fields
    assert fields is not None
    assert sorted(fields["tags"]) == ["a", "b", "crdt", "sync"]


def test_removing_one_element_removes_only_it() -> None:
    a = edited(BASE, "tags: [sync, crdt]", "tags: [crdt]")
    b = edited(BASE, "tags: [sync, crdt]", "tags: [sync, crdt, new]")
    text = only_render(two_edits(a, b))
    fields = codec.parse(text.encode(), PATH).fields
    assert fields is not None
    assert fields["tags"] == ["crdt", "new"]


def test_the_same_element_added_twice_concurrently_appears_once() -> None:
    a = edited(BASE, "tags: [sync, crdt]", "tags: [sync, crdt, same]")
    text = only_render(two_edits(a, a))
    fields = codec.parse(text.encode(), PATH).fields
    assert fields is not None
    assert fields["tags"] == ["sync", "crdt", "same"]


# -- body ------------------------------------------------------------------


def test_concurrent_edits_to_different_lines_both_survive() -> None:
    a = edited(BASE, "line one", "line ONE by a")
    b = edited(BASE, "line three", "line THREE by b")
    text = only_render(two_edits(a, b))
    assert "line ONE by a" in text
    assert "line THREE by b" in text
    assert text.count("line two") == 1


def test_body_edit_is_one_small_update() -> None:
    text = (CORPUS / "proposal-real-time-sync-demo.md").read_text(encoding="utf-8")
    (replica,) = start(["a"], seed(text, key="p", path=PATH))
    update = replica.edit(edited(text, "Conflicting work", "Clashing work"), 2000)
    assert len(update) < 200  # the diff, not the document


# -- delete ----------------------------------------------------------------


def test_delete_concurrent_with_an_edit_loses() -> None:
    def make() -> tuple[list[Replica], list[tuple[int, bytes]]]:
        reps = start(["peer-a", "peer-b", "peer-c"], seed(BASE))
        new = edited(BASE, "line two", "line two, edited")
        return reps, [(0, reps[0].delete(5000)), (1, reps[1].edit(new, 2000))]

    text = only_render(all_orders(make))
    assert "line two, edited" in text


def test_delete_with_nothing_concurrent_stays_deleted() -> None:
    (a, b, c) = start(["peer-a", "peer-b", "peer-c"], seed(BASE))
    stale = c.state()
    flood([a, b, c], [(0, a.delete(2000))])
    assert renders([a, b, c]) == {None}
    # a peer that was away comes back with its old state: the item stays deleted
    for replica in (a, b):
        replica.receive(stale)
    assert renders([a, b]) == {None}


# -- rename ----------------------------------------------------------------


def test_rename_keeps_the_document_and_its_edits() -> None:
    def make() -> tuple[list[Replica], list[tuple[int, bytes]]]:
        reps = start(["peer-a", "peer-b"], seed(BASE))
        body = edited(BASE, "line one", "line 1")
        return reps, [
            (0, reps[0].edit(BASE, 2000, path="moved/x.md")),
            (1, reps[1].edit(body, 2000)),
        ]

    for replicas in all_orders(make):
        assert {r.item.path() for r in replicas} == {"moved/x.md"}
        assert "line 1" in (replicas[0].item.render() or "")


def test_concurrent_renames_pick_one_winner() -> None:
    def make() -> tuple[list[Replica], list[tuple[int, bytes]]]:
        reps = start(["peer-a", "peer-b", "peer-c"], seed(BASE))
        return reps, [
            (0, reps[0].edit(BASE, 2000, path="a.md")),
            (1, reps[1].edit(BASE, 3000, path="b.md")),
        ]

    for replicas in all_orders(make):
        assert {r.item.path() for r in replicas} == {"b.md"}
        assert all(len(r.item.path_conflicts()) == 2 for r in replicas)


# -- seeding and duplicate edits --------------------------------------------


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.md")), ids=lambda p: p.name)
def test_two_clones_seeding_the_same_file_converge_to_it(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    a = ItemDoc.new(1)
    b = ItemDoc.new(2)
    a.apply_remote(seed(text, key=path.stem, path=path.name))
    b.apply_remote(seed(text, key=path.stem, path=path.name))
    a.apply_remote(b.doc.get_update())
    b.apply_remote(a.doc.get_update())
    assert a.render() == b.render() == text
    assert a.seed_conflicts() == []


def test_two_clones_with_different_contents_keep_one_and_record_the_other() -> None:
    other = edited(BASE, "line two", "line two, their version")
    a = ItemDoc.new(1)
    b = ItemDoc.new(2)
    a.apply_remote(seed(BASE))
    b.apply_remote(seed(other))
    a.apply_remote(b.doc.get_update())
    b.apply_remote(a.doc.get_update())
    merged = a.render()
    assert merged == b.render()
    assert merged in (BASE, other)  # one version whole, nothing interleaved
    (conflict,) = a.seed_conflicts()
    assert conflict.text in (BASE, other)
    assert conflict.text != merged


def test_the_same_edit_made_on_two_replicas_lands_once() -> None:
    new = edited(BASE, "line two", "line two was rewritten the same way")
    new = edited(new, "status: todo", "status: done")
    runs = two_edits(new, new)
    assert only_render(runs) == new


def test_the_same_field_value_set_on_two_replicas_is_not_a_conflict() -> None:
    new = edited(BASE, "status: todo", "status: done")
    for replicas in two_edits(new, new):
        assert all(list(r.item.field_conflicts()) == [] for r in replicas)


def test_the_same_edit_on_two_replicas_reaches_a_third_once() -> None:
    new = edited(BASE, "# Title", "# Heading")
    (a, b, c) = start(["peer-a", "peer-b", "peer-c"], seed(BASE))
    ua, ub = a.edit(new, 2000), b.edit(new, 2100)
    c.receive(ua)
    flood([a, b, c], [(1, ub), (0, ua)])
    assert renders([a, b, c]) == {new}


# -- types -----------------------------------------------------------------


def test_values_keep_their_types() -> None:
    text = (
        "---\nint: 3\nfloat: 0.90\nbig: 12345678901234567890\nflag: true\nnone: ~\n"
        "day: 2025-01-12\nwhen: 2025-01-12T01:15:00Z\nquoted: '3'\n---\nbody\n"
    )
    (_a, b) = start(["a", "b"], seed(text))
    fields = b.item.frontmatter()
    assert fields["int"] == 3
    assert isinstance(fields["int"], int)
    assert fields["float"] == 0.9
    assert isinstance(fields["float"], float)
    assert fields["big"] == 12345678901234567890
    assert fields["flag"] is True
    assert fields["none"] is None
    assert fields["day"] == dt.date(2025, 1, 12)
    assert fields["when"] == dt.datetime(2025, 1, 12, 1, 15, tzinfo=dt.UTC)
    assert fields["quoted"] == "3"
    assert b.item.render() == text


def test_remote_field_change_touches_only_that_line() -> None:
    text = (CORPUS / "proposal-real-time-sync-demo.md").read_text(encoding="utf-8")
    (a, b) = start(["a", "b"], seed(text, key="p"))
    a.writer = Writer("a", Hlc("a"), 0)
    new = edited(text, "status: draft", "status: approved")
    flood([a, b], [(0, a.edit(new, 2000))])
    assert b.item.render() == new


# -- hostile input -----------------------------------------------------------


def test_cells_that_break_the_schema_are_ignored() -> None:
    """A buggy or hostile client's cells never stop an item from rendering."""
    (a, b) = start(["peer-a", "peer-b"], seed(BASE))
    doc = b.item.doc
    fields_map = doc.get("fields", type=Map)
    meta = doc.get("meta", type=Map)
    before = doc.get_state()
    with doc.transaction():
        fields_map['["status"]|evil'] = "not json"
        fields_map['["status"]|evil2'] = "[1, 2]"
        fields_map["[1]|evil3"] = "[9, 9, 0, 1]"
        fields_map['["day"]|evil4'] = '[9, 9, 0, {"$date": 5}]'
        fields_map['["tags"]#evil5'] = '["x", 1]'
        meta["rev|evil6"] = '[9, 9, "not a dict"]'
        meta["path|evil7"] = "[[], 1]"
    a.receive(doc.get_update(before))
    assert a.item.render() == BASE
    assert a.item.path() == PATH


def test_a_line_replaced_by_an_unrelated_one_arrives_whole_past_a_concurrent_delete() -> None:
    """Simulation seed 103 (4 peers, 25 ops): a heading replaced by a new line was diffed
    character by character, keeping the space, ``m`` and newline the two shared; a peer
    deleting the heading concurrently deleted those too: ``m00013z`` became ``00013z``."""
    text = "---\nid: x\n---\n# charlie papa romeo\ndelta line 0\n"
    (a, b) = start(["peer-a", "peer-b"], seed(text))
    replaced = text.replace("# charlie papa romeo\n", "whiskey m00013z\n")
    deleted = text.replace("# charlie papa romeo\n", "")
    flood([a, b], [(0, a.edit(replaced, 1000)), (1, b.edit(deleted, 1000))])
    assert renders([a, b]) == {replaced}


def test_a_version_that_lost_the_seed_keeps_its_own_values_readable() -> None:
    """Simulation seed 193: a clone claimed the item before its first start; its version
    lost the seed, and its head text had been patched with the winning claim, so the
    claim was in no conflict record. The seed conflict now lists its own values."""
    mine = edited(edited(BASE, "status: todo", "status: mine"), "line one", "line one, mine")
    theirs = edited(edited(BASE, "status: todo", "status: theirs"), "line one", "line one, b")
    a = ItemDoc.new(1)
    a.apply_remote(seed(mine))
    a.apply_remote(seed(theirs))
    (conflict,) = a.seed_conflicts()
    lost = mine if a.render() == theirs else theirs
    assert conflict.text == lost
    assert conflict.values["status"] == ("mine" if lost == mine else "theirs")
    assert conflict.values["tags"] == ["sync", "crdt"]


def test_a_word_replaced_by_a_similar_one_arrives_whole_past_a_concurrent_delete() -> None:
    """Simulation seed 18 (5 peers, 40 ops): ``delta m00004z`` became ``mike m00008z``
    keeping the ``m0000`` both markers share; a peer deleting the line concurrently
    deleted those characters too. Lines are diffed by whole words now."""
    text = "---\nid: x\n---\nkeep this line\ndelta m00004z\nlast line\n"
    (a, b) = start(["peer-a", "peer-b"], seed(text))
    replaced = text.replace("delta m00004z", "mike m00008z")
    deleted = text.replace("delta m00004z\n", "")
    flood([a, b], [(0, a.edit(replaced, 1000)), (1, b.edit(deleted, 1000))])
    assert renders([a, b]) == {replaced}


# -- reads kept until the document changes -------------------------------------


def _uncached(item: ItemDoc) -> tuple[object, ...]:
    """What a document that never read anything before says about ``item``'s state."""
    fresh = ItemDoc.new(0)
    fresh.doc.apply_update(item.doc.get_update())
    return _reads(fresh)


def _reads(item: ItemDoc) -> tuple[object, ...]:
    index = item.field_index()
    return (
        item.render(),
        item.path(),
        item.alive(),
        item.geneses(),
        item.head_body(),
        dict(item.field_cells()),
        dict(item.meta_cells()),
        fields.resolve(index),
        index.malformed,
    )


def test_every_kind_of_change_is_seen_by_the_reads_kept_for_a_state() -> None:
    (a, b) = start(["peer-a", "peer-b"], seed(BASE))
    item = b.item
    steps: list[Callable[[], object]] = [
        lambda: b.edit(edited(BASE, "line two", "line 2"), 2000),  # a local write
        lambda: b.receive(a.edit(edited(BASE, "status: todo", "status: done"), 3000)),
        lambda: b.edit(BASE, 4000, path="moved.md"),  # the path register, read mid-write
        lambda: item.doc.get("meta", type=Map).__setitem__("rev|evil", "[1, 2]"),  # not ours
        lambda: b.delete(5000),
        lambda: b.receive(a.edit(edited(BASE, "line one", "line 1"), 6000)),  # revives it
    ]
    for step in steps:
        _reads(item)  # kept for the state before the step
        step()
        assert item.encoded() == item.doc.get_update()
        assert _reads(item) == _uncached(item)


def _typed(replica: Replica, text: str, at: int) -> bytes:
    """An insertion into the body, as a client typing it (no ``rev`` cell: no deletion)."""
    doc = replica.item.doc
    (genesis,) = replica.item.geneses()
    before = doc.get_state()
    doc.get(f"body:{genesis}", type=Text).insert(at, text)
    return doc.get_update(before)


def test_an_update_still_waiting_for_its_dependencies_changes_nothing_read() -> None:
    (a, b) = start(["peer-a", "peer-b"], seed(BASE))
    first = _typed(a, "x", 0)
    second = _typed(a, "y", 1)  # after the "x": nothing to hang on without ``first``
    before = _reads(b.item)
    b.receive(second)
    assert _reads(b.item) == before == _uncached(b.item)
    b.receive(first)
    assert b.item.render() == BASE.replace("---\n\n# Title", "---\nxy\n# Title")
    assert _reads(b.item) == _uncached(b.item)


def test_an_item_no_longer_used_is_freed() -> None:
    """The change counter must not tie the document to itself (Repo evicts items)."""
    (replica,) = start(["a"], seed(BASE))
    assert replica.item.render() == BASE
    item_ref, doc_ref = weakref.ref(replica.item), weakref.ref(replica.item.doc)
    del replica
    gc.collect()
    assert item_ref() is None
    assert doc_ref() is None


def test_a_value_read_and_changed_by_a_caller_stays_its_own() -> None:
    """Cells are parsed once for every document holding them; what a read hands out
    must still be the caller's to change."""
    (a, b) = start(["peer-a", "peer-b"], seed(BASE))
    mine = a.item.frontmatter()
    mine["tags"].append("mine")
    mine["git_context"]["branch"] = "mine"
    assert a.item.frontmatter()["tags"] == ["sync", "crdt"]
    assert b.item.frontmatter()["git_context"] == {"branch": "main", "worktree": "wt"}
    assert b.item.render() == BASE


def test_renders_kept_by_state_are_bounded_and_never_serve_another_state() -> None:
    (a, b) = start(["peer-a", "peer-b"], seed(BASE))
    assert a.item.render() == BASE
    for n in range(itemdoc.RENDERS_KEPT + 10):
        text = edited(BASE, "line two", f"line two {n}")
        b.receive(a.edit(text, 2000 + n))
        assert b.item.render() == text == a.item.render()
        assert len(itemdoc._RENDERS) <= itemdoc.RENDERS_KEPT
    assert _reads(b.item) == _uncached(b.item)


# -- reads taken from a worker -----------------------------------------------


def test_a_path_read_elsewhere_is_kept_only_for_the_state_it_was_read_from() -> None:
    (rep,) = start(["peer-a"], seed(BASE))
    state = rep.state()
    assert itemdoc.read_new(state) == (rep.item.render(), PATH, True)
    fresh = ItemDoc.new(7)
    fresh.apply_remote(state)
    fresh.take_render(state, "taken text", "taken/path.md")
    assert (fresh.render(), fresh.path()) == ("taken text", "taken/path.md")
    fresh.take_render(b"another state", "x", "x.md")  # not its state: ignored
    assert fresh.path() == "taken/path.md"
    moved = Replica("peer-b", fresh, Writer("peer-b", Hlc("peer-b"), 0))
    moved.edit(BASE, 5_000, path="moved.md")  # a change: read again from the document
    assert fresh.path() == "moved.md"


def test_cells_are_read_in_key_order_whatever_order_the_map_gives() -> None:
    """B79: a pycrdt Map iterates (and prints) its entries in the order of a Rust
    HashMap seeded at random, different between maps and even between two reads of
    one map. Whatever followed that order (the order of a register's cells, compared
    by ``ItemDoc.apply_remote``) made one seed run differently in two processes."""
    keys = [f"k{i:02d}|w{i % 3}" for i in range(40)]
    for _ in range(5):
        doc: Doc[Map[str]] = Doc(client_id=7)
        cells: Map[str] = doc.get("m", type=Map)
        for key in keys:
            cells[key] = "x"
        assert list(fields.map_items(cells)) == sorted(keys)


# -- items asleep: reads known, the document made on first use -------------------


def test_an_item_asleep_answers_its_known_reads_without_making_its_document() -> None:
    (a,) = start(["peer-a"], seed(BASE))
    state = a.state()
    text, path, exact = itemdoc.read_new(state)
    assert exact
    item = ItemDoc.asleep(7, state, text, path, item_hash(state))
    known = (item.render(), item.path(), item.encoded(), item.digest())
    assert known == (a.item.render(), PATH, state, a.item.digest())
    assert item.is_asleep
    assert _reads(item) == _uncached(a.item)  # these need the document: made now
    assert not item.is_asleep
    assert item.doc.client_id == 7


def test_an_item_woken_by_a_change_takes_it_as_one_never_asleep_does() -> None:
    (a, b) = start(["peer-a", "peer-b"], seed(BASE))
    state = a.state()
    text, path, _ = itemdoc.read_new(state)
    item = ItemDoc.asleep(b.item.doc.client_id, state, text, path, item_hash(state))
    changed = edited(BASE, "line two", "line 2")
    update = a.edit(changed, 2000)
    assert item.apply_remote(update) is None
    b.receive(update)
    assert item.render() == b.item.render() == changed
    assert item.encoded() == b.item.encoded()
    sleeper = Replica("peer-b", item, Writer("peer-b", Hlc("peer-b"), 0))
    mine = sleeper.edit(edited(changed, "line 2", "line II"), 3000)
    assert b.item.apply_remote(mine) is None
    assert b.item.render() == item.render()


def test_a_state_that_does_not_encode_back_is_not_exact_and_its_reads_are_dropped() -> None:
    """Part of an update waiting for what it depends on is not in the document's
    encoding: such a state may not sleep (the worker says so), and an item given
    one anyway renders for itself once its document is made."""
    (a,) = start(["peer-a"], seed(BASE))
    genesis = a.state()
    a.edit(edited(BASE, "line two", "line 2"), 2000)
    second = a.edit(edited(BASE, "line two", "line II"), 3000)
    waiting = merge_updates(genesis, second)  # the first edit, which it depends on, missing
    text, path, exact = itemdoc.read_new(waiting)
    assert not exact
    item = ItemDoc.asleep(7, waiting, "not its text", "not/its/path.md", bytes(8))
    assert not item.alive()  # a read the item did not know: it wakes for it
    assert not item.is_asleep
    assert item.render() == text  # what was kept is dropped: the encoding differs
    assert item.path() == path
    assert item.digest() == item_hash(item.doc.get_update())
