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
