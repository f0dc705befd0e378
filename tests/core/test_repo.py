"""Repo: the merges it makes from an older state of an item."""

from __future__ import annotations

from worksync_p2p.core import codec
from worksync_p2p.core.hlc import Hlc
from worksync_p2p.core.itemdoc import Writer
from worksync_p2p.core.repo import Repo

TEXT = "---\nid: t1\nstatus: todo\n---\nbody\n"


def _parse(text: str) -> codec.ParsedItem:
    return codec.parse(text.encode(), "t1.md")


def test_two_saves_of_one_field_from_two_files_of_an_item_both_stay_visible() -> None:
    """B42 (CI seed 33): a save merged from an older base (the old file of a move) set a
    field our writer had also set since that base (a save of the new file). Both wrote
    the cell ``["status"]|<us>`` concurrently; Yjs kept one by client id, and the other
    value was gone with no conflict record."""
    repo = Repo(Writer("peer-a", Hlc("peer-a"), 0), 7)
    repo.ingest("t1", "t1.md", _parse(TEXT), 1_000)
    base = repo.encoded("t1")
    assert base is not None
    repo.ingest("t1", "t1.md", _parse(TEXT.replace("todo", "new file")), 2_000)
    result = repo.ingest_from("t1", "t1.md", _parse(TEXT.replace("todo", "old file")), 3_000, base)
    assert result.update is not None
    item = repo.get("t1")
    assert item is not None
    assert item.frontmatter()["status"] == "old file"  # the later stamp
    (conflict,) = item.field_conflicts()
    assert [c.value for c in conflict.losers] == ['"new file"']
    later = repo.ingest("t1", "t1.md", _parse(TEXT.replace("todo", "done")), 4_000)
    assert later.update is not None
    assert list(item.field_conflicts()) == []  # a later save that saw both replaces both


def test_a_merge_from_a_base_uses_our_writer_when_nothing_clashes() -> None:
    repo = Repo(Writer("peer-a", Hlc("peer-a"), 0), 7)
    repo.ingest("t1", "t1.md", _parse(TEXT), 1_000)
    base = repo.encoded("t1")
    assert base is not None
    repo.ingest("t1", "t1.md", _parse(TEXT.replace("body", "body, new file")), 2_000)
    repo.ingest_from("t1", "t1.md", _parse(TEXT.replace("todo", "old file")), 3_000, base)
    item = repo.get("t1")
    assert item is not None
    assert {c.key.rpartition("|")[2] for c in item.field_index().registers[("status",)]} == {
        "peer-a"
    }


def test_a_delete_from_an_older_state_does_not_replace_a_save_made_since() -> None:
    """B44 (CI seed 107 with the ``stale_save`` op): a file deleted by the user, decided
    against the state it showed, while a save merged since (a stale editor's save of the
    old path of a rename) had set our ``rev`` cell. Both set ``rev|<us>``; Yjs kept the
    delete's, and the edit that should have won over the delete was gone."""
    for client_id in range(1, 9):  # which concurrent set Yjs keeps depends on the ids
        repo = Repo(Writer("peer-a", Hlc("peer-a"), 0), client_id)
        repo.ingest("t1", "t1.md", _parse(TEXT), 1_000)
        base = repo.encoded("t1")
        assert base is not None
        repo.ingest("t1", "t1.md", _parse(TEXT.replace("body", "body, saved since")), 2_000)
        assert repo.delete_from("t1", base, 3_000) is not None
        item = repo.get("t1")
        assert item is not None
        assert item.alive(), f"client id {client_id}"
        assert "saved since" in (item.render() or "")
