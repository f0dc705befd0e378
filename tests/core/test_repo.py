"""Repo: ingesting saves into items, and the forks that merge a save from an older state."""

from __future__ import annotations

import random

from worksync_p2p.core import codec
from worksync_p2p.core.hlc import Hlc
from worksync_p2p.core.itemdoc import ItemDoc, Writer
from worksync_p2p.core.repo import Repo

TEXT = "---\nid: t1\ntitle: old\nstatus: todo\n---\nbody\n"
TRIES = range(1, 13)
"""Yjs settles two concurrent sets of one map key by client id: try several ids."""


def _parsed(text: str) -> codec.ParsedItem:
    return codec.parse(text.encode(), "t1.md")


def _repo(client_id: int) -> Repo:
    return Repo(Writer("peer-a", Hlc("peer-a"), 0), client_id, rng=random.Random(client_id))


def _item(repo: Repo) -> ItemDoc:
    item = repo.get("t1")
    assert item is not None
    return item


def test_a_save_merged_from_an_old_base_keeps_our_own_later_value_as_a_conflict() -> None:
    """CI seed 21: the user's copy of a peer-renamed file, merged from the state it was
    saved on, set the title; we had set it since from a save of the file we wrote. Both
    writes were the cell ``title|peer-a``: Yjs kept one by client id, the other vanished
    without a conflict record."""
    for client_id in TRIES:
        repo = _repo(client_id)
        repo.ingest("t1", "t1.md", _parsed(TEXT), 1000)
        base = repo.encoded("t1")
        assert base is not None
        repo.ingest("t1", "t1.md", _parsed(TEXT.replace("old", "second")), 2000)
        repo.ingest_from("t1", "t1.md", _parsed(TEXT.replace("old", "later")), 3000, base)
        item = _item(repo)
        assert item.frontmatter()["title"] == "later", client_id
        (conflict,) = item.field_conflicts()
        assert [c.value for c in conflict.losers] == ['"second"'], client_id


def test_a_delete_from_an_old_base_loses_to_our_own_later_edit() -> None:
    """The same collision on the ``rev`` register: a delete as of the base must not
    take away an edit we made since (a delete concurrent with an edit loses)."""
    for client_id in TRIES:
        repo = _repo(client_id)
        repo.ingest("t1", "t1.md", _parsed(TEXT), 1000)
        base = repo.encoded("t1")
        assert base is not None
        repo.ingest("t1", "t1.md", _parsed(TEXT.replace("body", "edited")), 2000)
        repo.delete_from("t1", base, 3000)
        assert _item(repo).alive(), client_id


def test_a_fork_writes_as_us_when_we_wrote_nothing_since_its_base() -> None:
    """The usual merge (a peer's change arrived during a save) keeps our own cells."""
    repo = _repo(7)
    repo.ingest("t1", "t1.md", _parsed(TEXT), 1000)
    base = repo.encoded("t1")
    assert base is not None
    repo.ingest_from("t1", "t1.md", _parsed(TEXT.replace("old", "new")), 2000, base)
    (cell,) = _item(repo).field_index().registers[("title",)]
    assert cell.stamp.writer == "peer-a"


def test_two_saves_of_one_field_from_two_files_of_an_item_both_stay_visible() -> None:
    """B42 (B24 here; CI seed 33): a save merged from an older base (the old file of a move) set a
    field our writer had also set since that base (a save of the new file). Both wrote
    the cell ``["status"]|<us>`` concurrently; Yjs kept one by client id, and the other
    value was gone with no conflict record."""
    repo = Repo(Writer("peer-a", Hlc("peer-a"), 0), 7)
    repo.ingest("t1", "t1.md", _parsed(TEXT), 1_000)
    base = repo.encoded("t1")
    assert base is not None
    repo.ingest("t1", "t1.md", _parsed(TEXT.replace("todo", "new file")), 2_000)
    result = repo.ingest_from("t1", "t1.md", _parsed(TEXT.replace("todo", "old file")), 3_000, base)
    assert result.update is not None
    item = repo.get("t1")
    assert item is not None
    assert item.frontmatter()["status"] == "old file"  # the later stamp
    (conflict,) = item.field_conflicts()
    assert [c.value for c in conflict.losers] == ['"new file"']
    later = repo.ingest("t1", "t1.md", _parsed(TEXT.replace("todo", "done")), 4_000)
    assert later.update is not None
    assert list(item.field_conflicts()) == []  # a later save that saw both replaces both


def test_a_delete_from_an_older_state_does_not_replace_a_save_made_since() -> None:
    """B44 (B24's ``rev`` case; CI seed 107 with the ``stale_save`` op): a file deleted by
    the user, decided against the state it showed, while a save merged since (a stale
    editor's save of the old path of a rename) had set our ``rev`` cell. Both set
    ``rev|<us>``; Yjs kept the delete's, and the edit that should have won was gone."""
    for client_id in range(1, 9):  # which concurrent set Yjs keeps depends on the ids
        repo = Repo(Writer("peer-a", Hlc("peer-a"), 0), client_id)
        repo.ingest("t1", "t1.md", _parsed(TEXT), 1_000)
        base = repo.encoded("t1")
        assert base is not None
        repo.ingest("t1", "t1.md", _parsed(TEXT.replace("body", "body, saved since")), 2_000)
        assert repo.delete_from("t1", base, 3_000) is not None
        item = repo.get("t1")
        assert item is not None
        assert item.alive(), f"client id {client_id}"
        assert "saved since" in (item.render() or "")


def test_a_fork_keeps_its_value_of_a_cell_of_ours_that_a_peer_replaced_since_its_base() -> None:
    """B78 (soak seed 10496 on a schedule a first B72 fix made; no seed fails on the code
    of the fix): our value of a field (a save merged in a fork, writing as us) was
    replaced by a peer that had seen it, which deleted our cell. A save merged later from
    a base older than our value found our cells as at that base (none), wrote as us, and
    set the same key again: concurrent with the deleted set, which Yjs kept by client id
    in some runs. The latest value vanished with no conflict record."""
    for client_id in TRIES:
        repo = _repo(client_id)
        repo.ingest("t1", "t1.md", _parsed(TEXT), 1000)
        base = repo.encoded("t1")
        assert base is not None
        repo.ingest_from("t1", "t1.md", _parsed(TEXT.replace("old", "second")), 2000, base)
        state = repo.encoded("t1")
        assert state is not None
        peer = Repo(Writer("peer-b", Hlc("peer-b"), 0), 1000 + client_id)
        peer.load("t1", state)
        theirs = _parsed(TEXT.replace("old", "third").replace("body", "body b"))
        update = peer.ingest("t1", "t1.md", theirs, 2500).update
        assert update is not None
        _item(repo).apply_remote(update)
        repo.ingest_from("t1", "t1.md", _parsed(TEXT.replace("old", "later")), 3000, base)
        item = _item(repo)
        assert item.frontmatter()["title"] == "later", client_id
        (conflict,) = item.field_conflicts()
        assert [c.value for c in conflict.losers] == ['"third"'], client_id


def test_no_duplicate_repair_while_part_of_an_update_waits() -> None:
    """B78's second case (soak seed 10237 at 5 x 200 on B72's code): a fork's update
    (a stale save merged from an old state) reached a peer before the update it depended
    on. Its body line went in, its ``rev`` cell waited; every live ``rev`` still told of
    the text held before, so the duplicate repair took the new line for a seed applied
    twice and deleted it, for good."""
    repo = _repo(1)
    repo.ingest("t1", "t1.md", _parsed(TEXT), 1000)
    start = repo.encoded("t1")
    assert start is not None
    for client_id, peer in ((2, "peer-b"), (3, "peer-d")):  # two revs, one body hash
        other = Repo(Writer(peer, Hlc(peer), 0), client_id)
        other.load("t1", start)
        update = other.ingest("t1", "t1.md", _parsed(TEXT.replace("old", peer)), 2000).update
        assert update is not None
        assert _item(repo).apply_remote(update) is None
    first = Repo(Writer("peer-c", Hlc("peer-c"), 0), 5)
    first.load("t1", start)
    earlier = first.ingest("t1", "t1.md", _parsed(TEXT.replace("old", "c")), 3000).update
    state = first.encoded("t1")
    assert earlier is not None
    assert state is not None
    fork = Repo(Writer("peer-c", Hlc("peer-c"), 0), 6)  # another client id, as a fork's
    fork.load("t1", state)
    line = TEXT.replace("old", "c").replace("body", "body\nnew line")
    later = fork.ingest("t1", "t1.md", _parsed(line), 4000).update
    assert later is not None
    assert _item(repo).apply_remote(later) is None  # its rev cell waits for ``earlier``
    _item(repo).apply_remote(earlier)
    assert "new line" in (_item(repo).render() or "")


# -- items restored from a store, read when first used ------------------------------


def _stored(count: int) -> dict[str, bytes]:
    source = _repo(1)
    states = {}
    for n in range(count):
        key = f"t{n}"
        source.ingest(key, f"{key}.md", codec.parse(TEXT.replace("t1", key).encode(), "x.md"), 1000)
        state = source.encoded(key)
        assert state is not None
        states[key] = state
    return states


def test_items_restored_from_a_store_are_read_only_when_used() -> None:
    states = _stored(4)
    fetched: list[str] = []

    def fetch(key: str) -> bytes | None:
        fetched.append(key)
        return states.get(key)

    repo = _repo(2)
    repo.load_from(list(states), fetch)
    assert len(repo) == 4
    assert "t2" in repo
    assert "t9" not in repo
    assert list(repo.item_keys()) == sorted(states)
    assert fetched == []
    assert repo.encoded("t1") == states["t1"]
    assert repo.digest("t1") is not None
    item = repo.get("t1")
    assert item is not None
    assert item.frontmatter()["id"] == "t1"
    assert repo.get("t3") is not None
    assert fetched == ["t1", "t3"]  # once each, kept from then on
    assert repo.encoded("t0") == states["t0"]
    assert fetched == ["t1", "t3", "t0"]


def test_an_item_loaded_or_changed_after_the_restore_is_not_read_from_the_store() -> None:
    states = _stored(3)
    repo = _repo(2)
    repo.load_from(list(states), lambda key: b"must not be read: " + key.encode())
    repo.load("t0", states["t0"])
    assert repo.encoded("t0") == states["t0"]
    assert len(repo) == 3
    repo.load_from(["t0"], lambda _key: None)  # known already: not taken as stored again
    assert repo.encoded("t0") == states["t0"]
