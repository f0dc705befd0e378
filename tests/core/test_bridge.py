"""The bridge state machine, driven directly (the node tests drive it through real files)."""

from __future__ import annotations

from worksync_p2p.core import bridge as b
from worksync_p2p.core import codec
from worksync_p2p.core.hlc import Hlc
from worksync_p2p.core.itemdoc import ItemDoc, Writer
from worksync_p2p.core.repo import Repo

TEXT = "---\nid: t1\nstatus: todo\ntags: [a]\n---\nbody line\n"


def make_bridge(peer: str = "peer-a", client_id: int = 7) -> b.Bridge:
    return b.Bridge(Repo(Writer(peer, Hlc(peer), 0), client_id))


def kinds(effects: list[b.Effect]) -> list[str]:
    return [type(e).__name__ for e in effects]


def events(effects: list[b.Effect]) -> list[b.ItemEvent]:
    return [e.event for e in effects if isinstance(e, b.Emit)]


def test_a_new_file_becomes_an_item_with_a_created_event() -> None:
    bridge = make_bridge()
    effects = bridge.on_file("t1.md", TEXT.encode(), 1000)
    assert kinds(effects) == ["Tracked", "Persist", "Emit"]
    (event,) = events(effects)
    assert (event.kind, event.key, event.path, event.origin) == ("created", "t1", "t1.md", "file")
    assert event.fields == ("id", "status", "tags")


def test_the_same_content_again_does_nothing() -> None:
    bridge = make_bridge()
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    assert bridge.on_file("t1.md", TEXT.encode(), 1001) == []


def test_a_file_shows_its_record_only_while_on_file_would_do_nothing() -> None:
    bridge = make_bridge()
    data = TEXT.encode()
    assert not bridge.shows_its_record("t1.md", data)  # not read yet: no record
    bridge.on_file("t1.md", data, 1000)
    assert bridge.shows_its_record("t1.md", data)
    assert not bridge.shows_its_record("t1.md", TEXT.replace("todo", "done").encode())
    assert not bridge.shows_its_record("t1.md", b"")  # a truncate: the empty-file grace
    bridge.on_file("t1.md", None, 2000)  # vanished: its delete grace runs
    assert not bridge.shows_its_record("t1.md", data)
    assert bridge.on_file("t1.md", data, 2001) == []  # back: the grace is over
    assert bridge.shows_its_record("t1.md", data)


def test_an_edit_names_the_changed_fields() -> None:
    bridge = make_bridge()
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    effects = bridge.on_file("t1.md", TEXT.replace("todo", "done").encode(), 2000)
    (event,) = events(effects)
    assert (event.kind, event.fields) == ("modified", ("status",))


def test_bad_file_is_reported_once_and_the_last_good_state_stays() -> None:
    bridge = make_bridge()
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    broken = b"---\nid: t1\nstatus: [unclosed\n---\n"
    (report,) = bridge.on_file("t1.md", broken, 2000)
    assert isinstance(report, b.Report)
    assert report.relpath == "t1.md"
    assert bridge.on_file("t1.md", broken, 2001) == []
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.render() == TEXT
    fixed = TEXT.replace("todo", "fixed")
    assert "Persist" in kinds(bridge.on_file("t1.md", fixed.encode(), 3000))
    assert bridge.bad == {}


def test_a_bad_file_is_not_overwritten_by_a_remote_change() -> None:
    bridge = make_bridge()
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    bridge.on_file("t1.md", b"---\n: : :\n---\n", 2000)
    assert bridge.on_remote("t1", "peer-b") == []


def test_a_missing_file_is_deleted_only_after_the_grace_period() -> None:
    bridge = make_bridge()
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    assert bridge.on_file("t1.md", None, 2000) == []
    assert bridge.deadline_ms() == 2000 + bridge.delete_grace_ms
    assert bridge.tick(2000 + bridge.delete_grace_ms - 1) == []
    effects = bridge.tick(2000 + bridge.delete_grace_ms)
    assert [e.kind for e in events(effects)] == ["deleted"]
    item = bridge.repo.get("t1")
    assert item is not None
    assert not item.alive()


def test_delete_and_recreate_save_is_one_modification() -> None:
    bridge = make_bridge()
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    bridge.on_file("t1.md", None, 2000)
    effects = bridge.on_file("t1.md", TEXT.replace("todo", "done").encode(), 2010)
    assert [e.kind for e in events(effects)] == ["modified"]
    assert bridge.tick(10_000) == []


def test_an_empty_read_of_a_full_item_is_read_again_before_it_counts() -> None:
    bridge = make_bridge()
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    assert bridge.on_file("t1.md", b"", 2000) == []  # the truncate of an in-place save
    assert bridge.tick(2000 + bridge.empty_grace_ms) == [b.Reread("t1.md")]
    effects = bridge.on_file("t1.md", b"", 2200)  # still empty: the user emptied it
    # with its id gone the file is a new, path-tracked item; the old one is deleted
    assert [(e.kind, e.key) for e in events(effects)] == [
        ("deleted", "t1"),
        ("created", "path:t1.md"),
    ]


def test_an_empty_read_followed_by_the_real_content_ingests_only_the_content() -> None:
    bridge = make_bridge()
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    bridge.on_file("t1.md", b"", 2000)
    new = TEXT.replace("body line", "new body")
    effects = bridge.on_file("t1.md", new.encode(), 2005)
    assert [e.kind for e in events(effects)] == ["modified"]
    assert bridge.tick(10_000) == []
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.render() == new


def test_a_move_keeps_the_item() -> None:
    bridge = make_bridge()
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    bridge.on_file("t1.md", None, 2000)
    effects = bridge.on_file("sub/renamed.md", TEXT.encode(), 2001)
    assert [e.kind for e in events(effects)] == ["renamed"]
    assert bridge.tick(10_000) == []
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.path() == "sub/renamed.md"
    assert item.alive()


def test_a_second_file_with_the_same_id_is_reported_then_taken_when_the_first_goes() -> None:
    bridge = make_bridge()
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    (report,) = bridge.on_file("copy.md", TEXT.encode(), 1001)
    assert isinstance(report, b.Report)
    assert "t1.md" in report.reason
    bridge.on_file("t1.md", None, 2000)
    effects = bridge.tick(5000)
    assert b.Reread("copy.md") in effects


def _moved_by_the_user_during_a_peers_rename(start: str, peers: str, path: str) -> b.Bridge:
    """A peer's edit moved t1.md to ``path``; we wrote ``path``, and the removal
    of t1.md was refused: the user had moved it meanwhile."""
    bridge = make_bridge()
    bridge.on_file("t1.md", start.encode(), 1000)
    bridge.before_remote("t1")
    _remote_edit(bridge, peers, path=path)
    bridge.on_remote("t1", "peer-b")
    bridge.wrote("t1", path)
    assert bridge.on_remove_refused("t1.md", "t1", None, 2000) == []  # the user moved it
    return bridge


def _renamed_twice_with_a_stale_save(bridge: b.Bridge) -> tuple[b.WriteFile, str]:
    """t1.md, renamed by a peer to p.md, then to moved.md (p.md departs holding just
    what moved.md holds, as in soak seed 10451); the write of moved.md, and the text a
    stale editor saves at t1.md (the tests rename it to a.md)."""
    bridge.on_file("t1.md", LINES.encode(), 1000)
    peer = LINES.replace("line 3", "line 3 peer")
    _remote_rename(bridge, "p.md", peer)
    effects = _remote_rename(bridge, "moved.md", peer)
    (write,) = [e for e in effects if isinstance(e, b.WriteFile)]
    return write, LINES.replace("line 0", "line 0 stale")


def _text(bridge: b.Bridge, key: str) -> str:
    """The render of an item that must exist and be alive."""
    item = bridge.repo.get(key)
    assert item is not None
    text = item.render()
    assert text is not None
    return text


def _peer_moves_and_edits(bridge: b.Bridge) -> None:
    """A peer moves t1 to moved.md and edits line 1; the move is written."""
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES.replace("line 1", "line 1 peer"), path="moved.md")
    (write,) = [e for e in bridge.on_remote("t1", "peer-b") if isinstance(e, b.WriteFile)]
    bridge.wrote("t1", write.relpath)


def _remote_edit(bridge: b.Bridge, text: str, path: str = "t1.md") -> None:
    """Another replica edits the item; its update lands in our repo."""
    item = bridge.repo.get("t1")
    assert item is not None
    other = Repo(Writer("peer-b", Hlc("peer-b"), 0), 99)
    other.load("t1", item.doc.get_update())
    update = other.ingest("t1", path, codec.parse(text.encode(), path), 3000).update
    assert update is not None
    item.apply_remote(update)


def test_a_remote_change_writes_the_file_expecting_what_we_saw() -> None:
    bridge = make_bridge()
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    before = bridge.disk.get("t1.md")
    assert before is not None
    new = TEXT.replace("todo", "remote")
    _remote_edit(bridge, new)
    effects = bridge.on_remote("t1", "peer-b")
    (write,) = [e for e in effects if isinstance(e, b.WriteFile)]
    assert write == b.WriteFile("t1.md", new, before.digest, "t1", "peer-b")
    # the watcher reports our own write: nothing happens (no echo)
    assert bridge.on_file("t1.md", new.encode(), 4000) == []
    assert bridge.on_remote("t1", "peer-b") == []


def test_an_unsafe_path_from_a_peer_is_never_written() -> None:
    bridge = make_bridge()
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    _remote_edit(bridge, TEXT, path="../outside.md")
    effects = bridge.on_remote("t1", "peer-b")
    assert [type(e) for e in effects] == [b.Report]


def test_a_refused_write_is_tried_again_not_taken_as_done() -> None:
    """B9: the record kept the render's digest, so the retry wrote nothing and dropped the base."""
    bridge = make_bridge()
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    record = bridge.disk.get("t1.md")
    assert record is not None
    peer = make_bridge("peer-b", 8)
    state = bridge.repo.encoded("t1")
    assert state is not None
    peer.repo.load("t1", state)
    peer.on_file("t1.md", TEXT.replace("todo", "done").encode(), 2000)
    update = peer.repo.encoded("t1")
    assert update is not None
    bridge.before_remote("t1")
    item = bridge.repo.get("t1")
    assert item is not None
    item.apply_remote(update)
    (write,) = [e for e in bridge.on_remote("t1", "peer-b") if isinstance(e, b.WriteFile)]
    bridge.write_refused(write.relpath, write.key, write.expect)
    assert bridge.disk.get("t1.md") == record
    assert "t1" in bridge.base  # the user's save, when it lands, merges from what they saw
    again = [e for e in bridge.on_remote("t1", "peer-b") if isinstance(e, b.WriteFile)]
    assert [(e.relpath, e.expect) for e in again] == [("t1.md", record.digest)]


LINES = "---\nid: t1\nstatus: todo\n---\nline 0\nline 1\nline 2\nline 3\n"


def test_a_save_on_top_of_a_merge_not_yet_written_keeps_the_peer_change() -> None:
    """Process chaos seed 12: a save merged with a peer's change; the user saved again
    before the merge was written. The file still held the first save, but the second
    one was diffed against the merged document, and undid the peer's change."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES.replace("line 3", "line 3 peer"))
    (write,) = [e for e in bridge.on_remote("t1", "peer-b") if isinstance(e, b.WriteFile)]
    bridge.write_refused(write.relpath, write.key, write.expect)  # the user saved first
    first = LINES.replace("line 0", "line 0 user")
    merged = [
        e for e in bridge.on_file("t1.md", first.encode(), 2000) if isinstance(e, b.WriteFile)
    ]
    assert len(merged) == 1
    assert "line 3 peer" in merged[0].text
    bridge.write_refused(merged[0].relpath, merged[0].key, merged[0].expect)  # saved again
    second = first.replace("line 1", "line 1 again")
    bridge.on_file("t1.md", second.encode(), 3000)
    text = _text(bridge, "t1")
    assert (
        text == "---\nid: t1\nstatus: todo\n---\nline 0 user\nline 1 again\nline 2\nline 3 peer\n"
    )


def _remote_rename(bridge: b.Bridge, new_path: str, text: str = TEXT) -> list[b.Effect]:
    """A peer's rename of t1 lands; the node carries out the write and the removal."""
    bridge.before_remote("t1")
    _remote_edit(bridge, text, path=new_path)
    effects = bridge.on_remote("t1", "peer-b")
    bridge.wrote("t1")
    for effect in effects:
        if isinstance(effect, b.RemoveFile):
            bridge.removed(effect.relpath, effect.key)
    return effects


def test_a_stale_editor_saving_the_old_path_of_a_peer_rename_edits_the_item() -> None:
    """Process chaos seed 2: a peer's rename won and the old file was removed; the
    user's editor, still open on it, saved it back. That save was taken for a second
    file claiming the id (reported, never synced): the user's edit was lost."""
    bridge = make_bridge()
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    effects = _remote_rename(bridge, "moved.md", TEXT.replace("todo", "peer"))
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["t1.md"]
    stale = TEXT.replace("body line", "body line\nuser line")
    effects = bridge.on_file("t1.md", stale.encode(), 4000)
    assert not [e for e in effects if isinstance(e, b.Report)]
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["t1.md"]
    (write,) = [e for e in effects if isinstance(e, b.WriteFile)]
    assert write.relpath == "moved.md"
    assert write.text == TEXT.replace("todo", "peer").replace("body line", "body line\nuser line")


def test_a_stale_editor_saving_in_place_is_merged_once_the_save_lands() -> None:
    bridge = make_bridge()
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    _remote_rename(bridge, "moved.md")
    assert bridge.on_file("t1.md", b"", 4000) == []  # the truncate of an in-place save
    stale = TEXT.replace("body line", "user line")
    effects = bridge.on_file("t1.md", stale.encode(), 4010)
    (write,) = [e for e in effects if isinstance(e, b.WriteFile)]
    assert (write.relpath, write.text) == ("moved.md", stale)


def test_a_new_item_at_the_old_path_of_a_rename_is_just_a_new_item() -> None:
    bridge = make_bridge()
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    _remote_rename(bridge, "moved.md")
    other = TEXT.replace("id: t1", "id: t2")
    effects = bridge.on_file("t1.md", other.encode(), 4000)
    assert [e.kind for e in events(effects)] == ["created"]
    assert bridge.path_of("t2") == "t1.md"
    assert bridge.path_of("t1") == "moved.md"


def _an_older_value_applied(bridge: b.Bridge, peer: str, client_id: int) -> tuple[ItemDoc, str]:
    """t1.md read, then saved as "mine"; a peer's older "theirs", made before the save,
    applied to the item (it loses, and changes nothing in the file). Returns the item
    and the saved text."""
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    state = bridge.repo.encoded("t1")
    assert state is not None
    other = Repo(Writer(peer, Hlc(peer), 0), client_id)
    other.load("t1", state)
    theirs = TEXT.replace("todo", "theirs")
    older = other.ingest("t1", "t1.md", codec.parse(theirs.encode(), "t1.md"), 3000).update
    assert older is not None
    mine = TEXT.replace("todo", "mine")
    bridge.on_file("t1.md", mine.encode(), 5000)
    bridge.before_remote("t1")
    item = bridge.repo.get("t1")
    assert item is not None
    item.apply_remote(older)
    return item, mine


def test_a_value_that_lost_without_a_write_stays_a_conflict_after_the_next_save() -> None:
    """B14: a peer's older value changed nothing in the file, so no write and no base;
    the user's next save, from a file that never showed it, deleted it as if replaced."""
    bridge = make_bridge()
    item, _ = _an_older_value_applied(bridge, "peer-b", 99)
    # "mine" is later: the file reads as it; what is left to say is the conflict
    conflict_event = b.ItemEvent("conflict", "t1", "t1.md", ("status",), "peer-b")
    assert bridge.on_remote("t1", "peer-b") == [b.Emit(conflict_event)]
    bridge.on_file("t1.md", TEXT.replace("todo", "again").encode(), 6000)
    (conflict,) = item.field_conflicts()
    assert conflict.winner.value == '"again"'
    assert [c.value for c in conflict.losers] == ['"theirs"']


def test_the_old_file_of_a_peer_rename_back_from_a_recreate_save_is_merged_then_removed() -> None:
    """CI seed 21 (5 x 46): a delete-and-recreate save of t1.md was half-way when a peer's
    rename landed, so removing t1.md found it missing; the file we wrote at the new path
    was then being saved in place. The recreated t1.md was taken for the user's moved
    copy: the new file gave way to it, the in-place save landed after, and the item
    ended with two files, t1.md never removed."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    bridge.on_file("t1.md", None, 2000)  # the delete of the user's save
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES, path="moved.md")
    effects = bridge.on_remote("t1", "peer-b")
    assert [e.relpath for e in effects if isinstance(e, b.WriteFile)] == ["moved.md"]
    bridge.wrote("t1", "moved.md")
    assert bridge.on_remove_refused("t1.md", "t1", None, 2010) == []  # found missing
    assert bridge.on_file("moved.md", b"", 2020) == []  # the truncate of an in-place save
    recreated = LINES.replace("line 0", "line 0 recreated")
    effects = bridge.on_file("t1.md", recreated.encode(), 2030)
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["t1.md"]
    assert not [e for e in effects if isinstance(e, b.WriteFile)]  # moved.md is mid-save
    bridge.removed("t1.md", "t1")
    in_place = LINES.replace("line 3", "line 3 in place")
    effects = bridge.on_file("moved.md", in_place.encode(), 2040)
    (write,) = [e for e in effects if isinstance(e, b.WriteFile)]
    assert write.relpath == "moved.md"
    assert write.text == recreated.replace("line 3", "line 3 in place")
    assert [relpath for relpath, _ in bridge.disk.items()] == ["moved.md"]


def _rename_during_in_place_save(bridge: b.Bridge) -> None:
    """t1.md is half-way through an in-place save (empty) when a peer renames the item:
    the new file is written, the removal of t1.md is refused, t1.md is a leftover."""
    bridge.on_file("t1.md", LINES.encode(), 1000)
    assert bridge.on_file("t1.md", b"", 2000) == []
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES, path="moved.md")
    effects = bridge.on_remote("t1", "peer-b")
    assert [e.relpath for e in effects if isinstance(e, b.WriteFile)] == ["moved.md"]
    bridge.wrote("t1", "moved.md")
    assert bridge.on_remove_refused("t1.md", "t1", b"", 2010) == []


def test_the_half_saved_old_file_of_a_rename_keeps_its_base_past_writes_of_the_new_one() -> None:
    """CI seed 21 (5 x 49): after a peer's rename, the old file was half-way through an
    in-place save; a later peer edit written to the new file dropped the item's base,
    the next update took a newer one, and the save, landing, was merged from a state it
    never showed: it deleted the line that peer had added."""
    bridge = make_bridge()
    _rename_during_in_place_save(bridge)
    _peer_moves_and_edits(bridge)
    bridge.before_remote("t1")  # a third update: the item's base is now the newer state
    _remote_edit(bridge, LINES.replace("line 1", "line 1 peer").replace("line 2", "line 2 b"))
    saved = LINES.replace("line 0", "line 0 user")
    bridge.on_file("t1.md", saved.encode(), 2050)
    text = _text(bridge, "t1")
    assert "line 0 user\nline 1 peer\nline 2 b\n" in text


def test_a_half_saved_old_file_where_the_item_moved_back_takes_the_item_from_the_new_one() -> None:
    """CI seed 21 (5 x 49): while the old file of a peer's rename was half-saved, a
    concurrent rename back to its path won; the landed save made the old path the item's
    file, and the file at the new path stayed, tracked, never removed: two files."""
    bridge = make_bridge()
    _rename_during_in_place_save(bridge)
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES, path="t1.md")  # the path wins back (an older state: t1.md)
    assert [e for e in bridge.on_remote("t1", "peer-b") if isinstance(e, b.WriteFile)] == []
    saved = LINES.replace("line 0", "line 0 user")
    effects = bridge.on_file("t1.md", saved.encode(), 2050)
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["moved.md"]
    bridge.removed("moved.md", "t1")
    assert [relpath for relpath, _ in bridge.disk.items()] == ["t1.md"]


def test_a_save_that_re_creates_a_file_its_delete_grace_missed_merges_from_its_base() -> None:
    """CI seed 151 (5 x 47): saves by delete-and-recreate in a row, each seen missing by
    the watcher; the grace ran out and the delete, made from the base, lost to a peer's
    edit, so the file was written back, refused: the last save had re-created it. That
    save was ingested against the document and replaced the peer's claim (no conflict)."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    assert bridge.on_file("t1.md", None, 2000) == []
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES.replace("status: todo", "status: peer"))
    assert bridge.on_remote("t1", "peer-b") == []  # awaits the grace
    effects = bridge.tick(2000 + bridge.delete_grace_ms)
    (write,) = [e for e in effects if isinstance(e, b.WriteFile)]
    assert (write.relpath, write.expect) == ("t1.md", None)
    bridge.write_refused(write.relpath, write.key, write.expect)  # the save re-created it
    saved = LINES.replace("status: todo", "status: mine").replace("line 0", "line 0 mine")
    bridge.on_file("t1.md", saved.encode(), 4000)
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.alive()
    (conflict,) = item.field_conflicts()
    assert conflict.winner.value == '"mine"'
    assert [c.value for c in conflict.losers] == ['"peer"']


def test_the_half_saved_file_we_wrote_giving_way_to_the_users_copy_merges_from_its_state() -> None:
    """CI seed 166 (5 x 100): the user moved the old file of a peer's rename while we wrote
    the new one, and was saving ours in place when their copy turned up. Ours gave way;
    its removal found it half-saved (a leftover), kept with the user's copy's state, and
    the landed save, diffed from that state, undid the copy's edit and doubled the peer's."""
    bridge = _moved_by_the_user_during_a_peers_rename(
        LINES, LINES.replace("line 1", "line 1 peer"), "moved.md"
    )
    assert bridge.on_file("moved.md", b"", 2010) == []  # and is saving ours in place
    users = LINES.replace("line 0", "line 0 user")
    effects = bridge.on_file("user.md", users.encode(), 2020)
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["moved.md"]
    for effect in effects:
        if isinstance(effect, b.WriteFile):
            bridge.wrote(effect.key, effect.relpath)
    assert bridge.on_remove_refused("moved.md", "t1", b"", 2030) == []  # half-saved
    ours = LINES.replace("line 1", "line 1 peer").replace("line 3", "line 3 ours")
    bridge.on_file("moved.md", ours.encode(), 2040)
    text = _text(bridge, "t1")
    assert text.endswith("---\nline 0 user\nline 1 peer\nline 2\nline 3 ours\n")


def test_a_file_back_at_the_old_path_of_a_move_is_not_deleted_when_its_old_grace_ends() -> None:
    """CI seed 166 (5 x 70): t1.md, missing half-way through a delete-and-recreate save,
    was the old path of a peer's rename; a rename back to it won, and the landed save made
    it the item's file again. Its pending delete, left from before, was still due."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    assert bridge.on_file("t1.md", None, 2000) == []
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES, path="moved.md")
    effects = bridge.on_remote("t1", "peer-b")
    assert [e.relpath for e in effects if isinstance(e, b.WriteFile)] == ["moved.md"]
    bridge.wrote("t1", "moved.md")
    assert bridge.on_remove_refused("t1.md", "t1", None, 2010) == []
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES, path="t1.md")  # a concurrent rename back wins
    assert bridge.on_remote("t1", "peer-b") == []  # t1.md awaits its grace
    saved = LINES.replace("line 0", "line 0 saved")
    effects = bridge.on_file("t1.md", saved.encode(), 2020)
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["moved.md"]
    bridge.removed("moved.md", "t1")
    assert bridge.tick(2000 + bridge.delete_grace_ms) == []
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.alive()
    assert bridge.path_of("t1") == "t1.md"


def test_an_empty_file_confirmed_while_missing_does_not_make_the_next_truncate_emptied() -> None:
    """CI seed 151 (5 x 79): the empty-file grace ended while the file was missing (a
    delete-and-recreate save had followed the in-place one); the reread found it gone,
    but the file stayed "confirmed empty". Saves went on; the truncate of a later
    in-place save was taken for a file the user emptied: the item was deleted, a
    path-keyed one created, and the landed save re-created the item without its edits."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    assert bridge.on_file("t1.md", b"", 2000) == []
    assert bridge.tick(2000 + bridge.empty_grace_ms) == [b.Reread("t1.md")]
    assert bridge.on_file("t1.md", None, 2100) == []  # the reread: missing now
    assert bridge.on_file("t1.md", b"", 2200) == []  # back, and truncated by the next save
    assert bridge.repo.get("t1") is not None
    assert bridge.path_of("t1") == "t1.md"


def test_a_truncate_after_the_file_went_missing_waits_a_grace_of_its_own() -> None:
    """Seed 27 (3 x 52): an in-place save seen at its truncate, then a delete-and-recreate
    save seen missing, then the truncate of a third save: the grace of the first truncate
    was still running and ended at once; the file, still empty, was taken as emptied."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    assert bridge.on_file("t1.md", b"", 2000) == []
    assert bridge.on_file("t1.md", None, 2030) == []
    assert bridge.on_file("t1.md", b"", 2090) == []
    assert bridge.tick(2000 + bridge.empty_grace_ms) == []
    assert bridge.tick(2090 + bridge.empty_grace_ms) == [b.Reread("t1.md")]


def test_the_file_we_wrote_moved_by_the_user_beside_their_own_copy_goes() -> None:
    """Seed 166 (4 x 42): the user moved the old file of a peer's rename, and then the
    file we wrote for the rename too. Their copy took the item; ours, moved unchanged,
    was a second file for the id, never synced. It holds nothing the item lacks."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES, path="moved.md")
    (write,) = [e for e in bridge.on_remote("t1", "peer-b") if isinstance(e, b.WriteFile)]
    bridge.wrote("t1", "moved.md")
    assert bridge.on_remove_refused("t1.md", "t1", None, 2000) == []  # the user moved it
    assert bridge.on_file("moved.md", None, 2010) == []  # and then ours
    users = LINES.replace("line 0", "line 0 user")
    bridge.on_file("user.md", users.encode(), 2020)
    effects = bridge.on_file("mine.md", write.text.encode(), 2020)
    assert not [e for e in effects if isinstance(e, b.Report)]
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["mine.md"]
    assert bridge.path_of("t1") == "user.md"


def test_a_new_file_seen_empty_waits_for_its_content() -> None:
    """Seed 84 (4 x 48): a file created by an in-place save was seen at its truncate and
    ingested at once as an empty item keyed by its path; peers wrote that empty file, and
    one of them, when the real item took the path, removed it and wrote nothing."""
    bridge = make_bridge()
    assert bridge.on_file("t1.md", b"", 1000) == []
    assert "path:t1.md" not in bridge.repo
    effects = bridge.on_file("t1.md", TEXT.encode(), 1010)
    assert [(e.kind, e.key) for e in events(effects)] == [("created", "t1")]
    assert bridge.tick(10_000) == []


def test_a_new_file_that_stays_empty_is_an_item_after_the_grace() -> None:
    bridge = make_bridge()
    assert bridge.on_file("empty.md", b"", 1000) == []
    assert bridge.tick(1000 + bridge.empty_grace_ms) == [b.Reread("empty.md")]
    effects = bridge.on_file("empty.md", b"", 1100)
    assert [(e.kind, e.key) for e in events(effects)] == [("created", "path:empty.md")]


def test_a_half_saved_old_file_saved_again_by_recreate_still_merges_from_its_own_state() -> None:
    """CI seed 152 (5 x 100, with new empty files waiting): the leftover of B26, then
    seen missing (the person saved it again, by delete-and-recreate): the departed entry
    took the item's base instead of the file's own state, and the landed save, diffed
    from a state it never showed, deleted a peer's claim."""
    bridge = make_bridge()
    _rename_during_in_place_save(bridge)
    _peer_moves_and_edits(bridge)
    bridge.before_remote("t1")  # the item's base is now the newer state
    _remote_edit(bridge, LINES.replace("line 1", "line 1 peer").replace("line 2", "line 2 b"))
    assert bridge.on_file("t1.md", None, 2050) == []  # saved again: deleted, re-created
    saved = LINES.replace("line 0", "line 0 user")
    bridge.on_file("t1.md", saved.encode(), 2060)
    text = _text(bridge, "t1")
    assert "line 0 user\nline 1 peer\nline 2 b\n" in text


def test_a_half_saved_old_file_the_item_moved_back_to_leaves_no_second_file() -> None:
    """B40, the same bug as B27 (CI seed 198): a peer's rename was written while the user
    saved the old file in place (a leftover, merged when the save lands); then a peer
    moved the item back. The landed save took the old path over, and the file written
    for the rename stayed: a second file of the item, on this peer only."""
    bridge = make_bridge()
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    bridge.before_remote("t1")
    _remote_edit(bridge, TEXT, path="moved.md")
    effects = bridge.on_remote("t1", "peer-b")
    bridge.wrote("t1", "moved.md")
    (remove,) = [e for e in effects if isinstance(e, b.RemoveFile)]
    assert bridge.on_remove_refused(remove.relpath, "t1", b"", 2000) == []  # the truncate
    bridge.before_remote("t1")
    _remote_edit(bridge, TEXT, path="t1.md")  # a peer's rename back to the old path
    assert bridge.on_remote("t1", "peer-b") == []  # the save is half-way: its end first
    saved = TEXT.replace("body line", "user line")
    effects = bridge.on_file("t1.md", saved.encode(), 2050)
    # The saved file stays the item's (B27's ``_stays``), already showing the merge.
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["moved.md"]
    assert not [e for e in effects if isinstance(e, b.WriteFile)]
    assert bridge.path_of("t1") == "t1.md"
    assert [relpath for relpath, _ in bridge.disk.items()] == ["t1.md"]
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.render() == saved


def test_a_half_saved_old_file_keeps_its_base_past_an_update_that_writes_nothing() -> None:
    """B40 (B26 here), the same run: while the old file of a rename waited half-saved, a peer update
    that changed nothing in the render ended the move and dropped the base; the save,
    when it landed, was diffed against the document and undid the peer's line."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES.replace("line 3", "line 3 peer"), path="moved.md")
    effects = bridge.on_remote("t1", "peer-b")
    bridge.wrote("t1", "moved.md")
    (remove,) = [e for e in effects if isinstance(e, b.RemoveFile)]
    assert bridge.on_remove_refused(remove.relpath, "t1", b"", 2000) == []  # the truncate
    assert bridge.on_remote("t1", "peer-c") == []  # moved.md already reads as the document
    saved = LINES.replace("line 0", "line 0 user")
    effects = bridge.on_file("t1.md", saved.encode(), 2050)
    (write,) = [e for e in effects if isinstance(e, b.WriteFile)]
    assert write.relpath == "moved.md"
    assert write.text == saved.replace("line 3", "line 3 peer")


def test_a_delete_and_recreate_save_of_the_old_file_of_a_rename_edits_the_item() -> None:
    """B41 (B25 here; CI seed 33): a peer's rename arrived while the user was saving the old file by
    delete and re-create; its removal found it gone and took it for a move by the user.
    The user also saved the new file; when the re-created old file landed, it was a
    second file claiming the id (reported, never synced)."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    assert bridge.on_file("t1.md", None, 2000) == []  # the delete of the save
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES.replace("line 3", "line 3 peer"), path="moved.md")
    effects = bridge.on_remote("t1", "peer-b")
    bridge.wrote("t1", "moved.md")
    (remove,) = [e for e in effects if isinstance(e, b.RemoveFile)]
    assert bridge.on_remove_refused(remove.relpath, "t1", None, 2010) == []  # gone
    moved = LINES.replace("line 3", "line 3 peer").replace("line 1", "line 1 new file")
    bridge.on_file("moved.md", moved.encode(), 2020)  # the user saves the new file too
    saved = LINES.replace("line 0", "line 0 old file")
    effects = bridge.on_file("t1.md", saved.encode(), 2030)  # the re-create lands
    assert not [e for e in effects if isinstance(e, b.Report)]
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["t1.md"]
    (write,) = [e for e in effects if isinstance(e, b.WriteFile)]
    assert write.relpath == "moved.md"
    assert write.text == moved.replace("line 0", "line 0 old file")
    assert bridge.strays == {}


def test_a_save_of_the_new_file_during_the_merge_of_the_old_one_keeps_both() -> None:
    """B41 as first written (CI seed 21 at 5 x 20, ``test_b19``; B25 keeps that base too):
    the old file of a rename came back and was merged into the item, whose file was saved
    before the merge was written there; that save was diffed against the merged document
    and undid the merge."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    _remote_rename(bridge, "moved.md", LINES)
    effects = bridge.on_file("t1.md", LINES.replace("line 0", "line 0 old").encode(), 2000)
    (write,) = [e for e in effects if isinstance(e, b.WriteFile)]
    assert write.relpath == "moved.md"
    bridge.write_refused(write.relpath, write.key, write.expect)  # the user saved it too
    bridge.on_file("moved.md", LINES.replace("line 2", "line 2 new").encode(), 2010)
    text = _text(bridge, "t1")
    assert "line 0 old" in text
    assert "line 2 new" in text


def test_a_stale_editor_saving_the_old_path_of_a_renamed_then_deleted_item_revives_it() -> None:
    """B43 (found by the ``stale_save`` op, CI seed 103): the item was renamed, then
    deleted by a peer; the editor still open on the old path saved it. The save was
    ingested against the deleted document, not the state the file held: the peer's
    line, which the file never showed, was deleted with the revival."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    _remote_rename(bridge, "moved.md", LINES.replace("line 3", "line 3 peer"))
    item = bridge.repo.get("t1")
    assert item is not None
    other = Repo(Writer("peer-b", Hlc("peer-b"), 0), 99)
    other.load("t1", item.doc.get_update())
    deletion = other.delete("t1", 3000)
    assert deletion is not None
    item.apply_remote(deletion)
    for effect in bridge.on_remote("t1", "peer-b"):
        if isinstance(effect, b.RemoveFile):
            bridge.removed(effect.relpath, effect.key)
    assert not item.alive()
    saved = LINES.replace("line 0", "line 0 user")
    effects = bridge.on_file("t1.md", saved.encode(), 4000)
    assert not [e for e in effects if isinstance(e, b.Report)]
    assert item.alive()
    assert item.render() == saved.replace("line 3", "line 3 peer")


def _carry_out(bridge: b.Bridge, effects: list[b.Effect]) -> None:
    """The node's part: every write and removal lands."""
    for effect in effects:
        if isinstance(effect, b.WriteFile):
            bridge.wrote(effect.key, effect.relpath)
        elif isinstance(effect, b.RemoveFile):
            bridge.removed(effect.relpath, effect.key)


def test_a_stale_editor_saving_the_old_path_twice_merges_both_saves() -> None:
    """B46 (CI seed 51, smallest 2 x 22): the editor still open on the old path of a
    peer's rename saved it, was merged and removed, then saved again. The second
    save was a second file claiming the id: reported, never synced."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    _remote_rename(bridge, "moved.md", LINES)
    first = LINES.replace("line 0", "line 0 user")
    _carry_out(bridge, bridge.on_file("t1.md", first.encode(), 2000))
    bridge.before_remote("t1")
    _remote_edit(bridge, first.replace("line 3", "line 3 peer"), path="moved.md")
    _carry_out(bridge, bridge.on_remote("t1", "peer-b"))
    second = first.replace("line 1", "line 1 again")
    effects = bridge.on_file("t1.md", second.encode(), 4000)
    assert not [e for e in effects if isinstance(e, b.Report)]
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["t1.md"]
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.render() == second.replace("line 3", "line 3 peer")
    assert bridge.path_of("t1") == "moved.md"


def _a_delete_and_a_concurrent_rename(item: ItemDoc) -> tuple[bytes, bytes]:
    """Two peers' updates made on ``item`` as it is: one deletes it, the other (not
    having seen the delete) moves it to moved.md and adds a line."""
    before = item.doc.get_update()
    deleter = Repo(Writer("peer-b", Hlc("peer-b"), 0), 99)
    deleter.load("t1", before)
    deletion = deleter.delete("t1", 3000)
    renamer = Repo(Writer("peer-c", Hlc("peer-c"), 0), 98)
    renamer.load("t1", before)
    moved = LINES.replace("line 3", "line 3 peer")
    rename = renamer.ingest("t1", "moved.md", codec.parse(moved.encode(), "moved.md"), 3000)
    assert deletion is not None
    assert rename.update is not None
    return deletion, rename.update


def test_a_stale_editor_saving_a_file_a_peer_deleted_edits_the_item_an_edit_revived() -> None:
    """B47 (CI seeds 11 and 51 at 5 x 50): a peer's delete removed the file while an
    editor was open on it; a concurrent rename revived the item at another path, and
    the editor's save of the old path was a second file claiming the id."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    item = bridge.repo.get("t1")
    assert item is not None
    deletion, renamed = _a_delete_and_a_concurrent_rename(item)
    for update in (deletion, renamed):
        bridge.before_remote("t1")
        item.apply_remote(update)
        _carry_out(bridge, bridge.on_remote("t1", "peer-b"))
    assert item.alive()
    assert bridge.path_of("t1") == "moved.md"
    saved = LINES.replace("line 0", "line 0 user")
    effects = bridge.on_file("t1.md", saved.encode(), 4000)
    assert not [e for e in effects if isinstance(e, b.Report)]
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["t1.md"]
    assert item.render() == saved.replace("line 3", "line 3 peer")


def test_the_users_move_of_a_file_a_peer_deleted_takes_the_item_an_edit_revived() -> None:
    """B58 (seed 401, smallest 5 x 48, not a CI seed): the user moved the file, then a
    peer's delete found it missing (its removal refused); a concurrent rename revived the
    item at another path. The user's moved copy was a second file of the id, and after a
    restart a later departed state claimed it: merged from that, it undid a title."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    item = bridge.repo.get("t1")
    assert item is not None
    deletion, renamed = _a_delete_and_a_concurrent_rename(item)
    bridge.before_remote("t1")
    item.apply_remote(deletion)
    effects = bridge.on_remote("t1", "peer-b")
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["t1.md"]
    assert bridge.on_remove_refused("t1.md", "t1", None, 3100) == []  # the user moved it
    bridge.before_remote("t1")
    item.apply_remote(renamed)
    _carry_out(bridge, bridge.on_remote("t1", "peer-c"))
    assert item.alive()
    assert bridge.path_of("t1") == "moved.md"
    copy = LINES.replace("line 0", "line 0 user")  # the user's copy, saved since
    effects = bridge.on_file("new.md", copy.encode(), 4000)
    assert not [e for e in effects if isinstance(e, b.Report)]
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["moved.md"]
    assert item.render() == copy.replace("line 3", "line 3 peer")
    assert bridge.path_of("t1") == "new.md"


def test_a_move_seen_only_after_its_delete_grace_takes_the_item_from_the_file_written_back() -> (
    None
):
    """B48 (CI seed 31, smallest 5 x 42): the user moved the file and kept saving the new
    one by delete-and-recreate, so the watcher only ever read it missing; the old path's
    grace ran out, the delete lost to a peer's edit and the file was written back. The
    moved copy, read at last, was a second file claiming the id: never synced."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    assert bridge.on_file("t1.md", None, 2000) == []  # moved; the new path not read yet
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES.replace("line 3", "line 3 peer"))
    assert bridge.on_remote("t1", "peer-b") == []  # the missing file awaits its grace
    back = bridge.tick(2000 + bridge.delete_grace_ms)
    assert [e.relpath for e in back if isinstance(e, b.WriteFile)] == ["t1.md"]
    _carry_out(bridge, back)
    moved = LINES.replace("line 0", "line 0 user")
    effects = bridge.on_file("new.md", moved.encode(), 2400)
    assert not [e for e in effects if isinstance(e, b.Report)]
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["t1.md"]
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.alive()
    assert item.render() == moved.replace("line 3", "line 3 peer")
    assert bridge.path_of("t1") == "new.md"


def test_a_stale_save_of_the_old_path_moved_before_it_was_read_takes_the_item() -> None:
    """B49 (CI seed 94): the editor still open on the old path of a peer's rename saved
    it, and the user renamed that file before the node read it. The moved save was a
    second file claiming the id: never synced."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    _remote_rename(bridge, "moved.md", LINES.replace("line 3", "line 3 peer"))
    assert bridge.on_file("t1.md", None, 4000) == []  # saved back, then renamed: gone
    saved = LINES.replace("line 0", "line 0 user")
    effects = bridge.on_file("user.md", saved.encode(), 4010)
    assert not [e for e in effects if isinstance(e, b.Report)]
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["moved.md"]
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.render() == saved.replace("line 3", "line 3 peer")
    assert bridge.path_of("t1") == "user.md"


def test_a_copy_of_the_item_unlike_its_old_path_is_still_a_second_file() -> None:
    """B49's limit: only a file closer to what the old path held than to the item's file
    is taken for a save of that path; a copy of the item's file stays a duplicate."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    peer = LINES.replace("line 1", "line 1 peer").replace("line 2", "line 2 peer")
    _remote_rename(bridge, "moved.md", peer)
    effects = bridge.on_file("copy.md", peer.replace("line 3", "line 3 copy").encode(), 4010)
    assert [e.relpath for e in effects if isinstance(e, b.Report)] == ["copy.md"]
    assert bridge.path_of("t1") == "moved.md"


def test_a_moved_stale_save_is_not_taken_for_the_users_copy_of_a_stray() -> None:
    """B49, CI seed 85: a stale save of an old path, renamed before it was read, came in
    before the user's copy of a later old path (a stray). Taken for that copy, it was
    merged from the state the copy held and undid a peer's line it never showed."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    # t1.md departs, as the stale editor saw it; a.md holds a state of its own (B76: the
    # user's copy of a.md must be closer to it than to the item's file).
    held = LINES.replace("line 2", "line 2 a")
    _remote_rename(bridge, "a.md", held)
    peer = LINES.replace("line 3", "line 3 peer")
    bridge.before_remote("t1")
    _remote_edit(bridge, peer, path="b.md")
    effects = bridge.on_remote("t1", "peer-b")
    (write,) = [e for e in effects if isinstance(e, b.WriteFile)]
    bridge.wrote("t1", write.relpath)
    assert bridge.on_remove_refused("a.md", "t1", None, 2000) == []  # the user moved a.md
    stale = LINES.replace("line 0", "line 0 stale")
    effects = bridge.on_file("stale.md", stale.encode(), 4000)
    assert not [e for e in effects if isinstance(e, b.Report)]
    _carry_out(bridge, effects)
    users = held.replace("line 1", "line 1 user")  # their copy of a.md
    effects = bridge.on_file("user.md", users.encode(), 4010)
    assert not [e for e in effects if isinstance(e, b.Report)]
    text = _text(bridge, "t1")
    for line in ("line 0 stale", "line 1 user", "line 3 peer"):
        assert line in text


TAGGED = "---\nid: t1\ntags: [a]\n---\nline 0\nline 1\n"


def test_a_users_copy_alike_to_both_by_lines_is_told_by_characters_and_ours_awaited() -> None:
    """B56 (seed 99, 5 x 50): the user tagged the file and moved it while a peer's rename
    (which removed a tag) was written; then they saved the file we wrote by delete and
    re-create. Their copy differed from both candidates in the one tags line: taken for
    ours moved, it was merged from our state (undoing the peer's removal), and the save
    that re-created ours was a second file of the id. Told apart by characters it is the
    user's; and ours, the item's path still, is not written until its save lands."""
    bridge = _moved_by_the_user_during_a_peers_rename(
        TAGGED, TAGGED.replace("[a]", "[]"), "moved.md"
    )
    assert bridge.on_file("moved.md", None, 2010) == []  # and is re-creating ours
    effects = bridge.on_file("user.md", TAGGED.replace("[a]", "[a, b]").encode(), 2020)
    assert not [e for e in effects if isinstance(e, b.Report)]
    assert [e for e in effects if isinstance(e, b.WriteFile)] == []  # the save lands first
    saved = TAGGED.replace("[a]", "[]").replace("line 1", "line 1 ours")
    effects = bridge.on_file("moved.md", saved.encode(), 2040)
    assert not [e for e in effects if isinstance(e, b.Report)]
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.frontmatter()["tags"] == ["b"]
    assert (item.render() or "").endswith("---\nline 0\nline 1 ours\n")
    assert bridge.path_of("t1") == "moved.md"


def test_the_file_awaited_for_its_save_is_written_when_its_grace_ends() -> None:
    """B56: the held write goes out once the grace ends without the save landing."""
    bridge = make_bridge()
    bridge.on_file("t1.md", TAGGED.encode(), 1000)
    bridge.before_remote("t1")
    _remote_edit(bridge, TAGGED.replace("[a]", "[]"), path="moved.md")
    bridge.on_remote("t1", "peer-b")
    bridge.wrote("t1", "moved.md")
    bridge.on_remove_refused("t1.md", "t1", None, 2000)
    bridge.on_file("moved.md", None, 2010)
    bridge.on_file("user.md", TAGGED.replace("[a]", "[a, b]").encode(), 2020)
    due = bridge.deadline_ms()
    assert due == 2010 + bridge.delete_grace_ms
    effects = bridge.tick(due)
    assert [e.relpath for e in effects if isinstance(e, b.WriteFile)] == ["moved.md"]
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["user.md"]
    assert bridge.deadline_ms() is None


def test_a_save_landing_where_the_item_came_back_merges_from_what_the_path_held() -> None:
    """B50 (seed 327, smallest 5 x 81): a peer's rename moved the item while the user was
    saving its file by delete-and-recreate; another rename brought it back, and our write
    landed in the save's gap. The save, diffed against what we wrote, deleted a peer's
    line it never showed."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    _remote_rename(bridge, "a.md")
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES.replace("line 3", "line 3 peer"), path="t1.md")
    back = bridge.on_remote("t1", "peer-b")
    assert [(e.relpath, e.expect) for e in back if isinstance(e, b.WriteFile)] == [("t1.md", None)]
    _carry_out(bridge, back)
    saved = LINES.replace("line 0", "line 0 user")  # the save, made before the item left
    bridge.on_file("t1.md", saved.encode(), 4000)
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.render() == saved.replace("line 3", "line 3 peer")


def test_a_save_of_what_we_wrote_where_the_item_came_back_is_a_plain_save() -> None:
    """B50's limit: a save made on what we wrote there (closer to it) is merged as usual."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    _remote_rename(bridge, "a.md")
    bridge.before_remote("t1")
    peer = LINES.replace("line 1", "line 1 peer").replace("line 3", "line 3 peer")
    _remote_edit(bridge, peer, path="t1.md")
    _carry_out(bridge, bridge.on_remote("t1", "peer-b"))
    saved = peer.replace("line 3 peer", "line 3")  # the user took the peer's line back
    bridge.on_file("t1.md", saved.encode(), 4000)
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.render() == saved


def _came_back_and_written_twice(bridge: b.Bridge, second_ms: int) -> str:
    """The item leaves t1.md and comes back with a peer's edit (our write lands at 2000),
    then another peer's edit is written over ours at ``second_ms``; returns that text."""
    bridge.on_file("t1.md", LINES.encode(), 1000)
    _remote_rename(bridge, "a.md")
    bridge.before_remote("t1")
    back = LINES.replace("line 1", "line 1 peer").replace("line 3", "line 3 peer")
    _remote_edit(bridge, back, path="t1.md")
    for effect in bridge.on_remote("t1", "peer-b"):
        if isinstance(effect, b.WriteFile):
            bridge.wrote(effect.key, effect.relpath, 2000)
    bridge.before_remote("t1")
    ours = back.replace("line 2\n", "line 2\nadded m1\n")
    _remote_edit(bridge, ours)
    (write,) = [e for e in bridge.on_remote("t1", "peer-b") if isinstance(e, b.WriteFile)]
    assert write.expect is not None  # over our first write
    bridge.wrote(write.key, write.relpath, second_ms)
    return ours


def test_a_save_after_our_second_write_where_the_item_came_back_is_a_plain_save() -> None:
    """B86 (seed 124 at 5 x 200): the item came back to a path it had left and we wrote
    it there, then wrote it again for a peer's edit, after the delete grace. B50's entry
    outlived both writes: a save made on our second write, which took two peer's line
    changes back, read (by lines) as closer to what the path held before the item left,
    was merged from that state, and the line our second write had brought came twice."""
    bridge = make_bridge()
    ours = _came_back_and_written_twice(bridge, 2000 + bridge.delete_grace_ms)
    saved = ours.replace("line 1 peer", "line 1").replace("line 3 peer", "line 3")
    bridge.on_file("t1.md", saved.encode(), 4000)  # made on what write 2 put there
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.render() == saved


def test_a_save_half_way_when_the_item_came_back_outlives_two_writes_in_its_gap() -> None:
    """B86's limit (soak seed 10577): both writes landed in one delete-and-recreate
    save's gap, made on what the path held before the item left: merged from that, as
    B50, or the save undid every change it never showed."""
    bridge = make_bridge()
    ours = _came_back_and_written_twice(bridge, 2000 + bridge.delete_grace_ms - 1)
    saved = LINES.replace("line 0", "line 0 user")
    bridge.on_file("t1.md", saved.encode(), 2100)
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.render() == ours.replace("line 0", "line 0 user")


def test_a_file_written_back_then_renamed_by_a_peer_gives_way_to_the_users_move() -> None:
    """B51 (seed 271, smallest 5 x 41): as B48, but a peer's rename moved the file we
    wrote back before the user's copy was read; the copy was a second file of the id."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    assert bridge.on_file("t1.md", None, 2000) == []
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES.replace("line 3", "line 3 peer"))
    assert bridge.on_remote("t1", "peer-b") == []
    _carry_out(bridge, bridge.tick(2000 + bridge.delete_grace_ms))
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES.replace("line 3", "line 3 peer"), path="other.md")
    _carry_out(bridge, bridge.on_remote("t1", "peer-b"))
    assert bridge.path_of("t1") == "other.md"
    moved = LINES.replace("line 0", "line 0 user")
    effects = bridge.on_file("new.md", moved.encode(), 4000)
    assert not [e for e in effects if isinstance(e, b.Report)]
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["other.md"]
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.render() == moved.replace("line 3", "line 3 peer")


def test_a_file_written_at_start_up_gives_way_to_the_users_move_of_it() -> None:
    """B52 (seed 291 at 5 x 100, not a CI seed): a power cut took the file's record; while
    the node was down the user moved the file, and was re-creating the moved copy as it
    started. The item, with no file on record, was written at its path; the copy, read a
    moment later, was a second file of the id: never synced."""
    before = make_bridge()
    before.on_file("t1.md", LINES.encode(), 1000)
    bridge = b.Bridge(before.repo)  # started again: no file on record
    written = bridge.restore("t1", "store")
    assert [e.relpath for e in written if isinstance(e, b.WriteFile)] == ["t1.md"]
    _carry_out(bridge, written)
    moved = LINES.replace("line 0", "line 0 user")
    effects = bridge.on_file("moved.md", moved.encode(), 5000)
    assert not [e for e in effects if isinstance(e, b.Report)]
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["t1.md"]
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.render() == moved
    assert bridge.path_of("t1") == "moved.md"


def test_a_peers_delete_refused_for_a_save_leaves_no_departed_entry() -> None:
    """B53 (seed 340 at 5 x 100, not a CI seed): B47 recorded the path as departed when a
    peer's delete asked for the removal, before it ran; refused for a save, the file was
    merged and stayed the item's, and after a restart that lost its record the stale entry
    merged the same save a second time (a line doubled)."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    item = bridge.repo.get("t1")
    assert item is not None
    deleter = Repo(Writer("peer-b", Hlc("peer-b"), 0), 99)
    deleter.load("t1", item.doc.get_update())
    deletion = deleter.delete("t1", 3000)
    assert deletion is not None
    assert bridge.on_file("t1.md", None, 2000) == []  # a delete-and-recreate save, half-way
    bridge.before_remote("t1")
    item.apply_remote(deletion)
    effects = bridge.on_remote("t1", "peer-b")
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["t1.md"]
    saved = LINES.replace("line 0", "line 0 user")  # the removal is refused: saved
    bridge.on_remove_refused("t1.md", "t1", saved.encode(), 3100)
    assert bridge.path_of("t1") == "t1.md"
    assert "t1.md" not in bridge.departed


def test_a_stale_editor_saving_the_users_copy_removed_as_ours_edits_the_item() -> None:
    """B75 (soak seed 10102): the user moved the item's file as a peer's rename was being
    written; their copy held exactly what we wrote, so it was taken for our file moved and
    removed. An editor opened on that copy saved it later: a second file of the id,
    reported and never synced, with the user's line."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES, path="moved.md")
    effects = bridge.on_remote("t1", "peer-b")
    assert [e.relpath for e in effects if isinstance(e, b.WriteFile)] == ["moved.md"]
    bridge.wrote("t1", "moved.md")
    assert bridge.on_remove_refused("t1.md", "t1", None, 2010) == []  # the user moved it
    effects = bridge.on_file("user.md", LINES.encode(), 2020)  # exactly what we wrote
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["user.md"]
    bridge.removed("user.md", "t1")
    stale = LINES.replace("line 2", "line 2\nuser line")
    effects = bridge.on_file("user.md", stale.encode(), 2300)  # the editor's save
    assert not [e for e in effects if isinstance(e, b.Report)]
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["user.md"]
    (write,) = [e for e in effects if isinstance(e, b.WriteFile)]
    assert (write.relpath, write.text) == ("moved.md", stale)


def test_a_save_of_the_new_file_of_a_rename_is_not_merged_from_the_half_saved_old_ones_base() -> (
    None
):
    """Seed 326 (5 x 100), B64: a peer's line arrived while t1.md was half-way through an
    in-place save (base: the state before it); a peer's rename then wrote the new file with
    the line, and the old file, still empty, was a leftover. The base stayed with the item
    past the leftover's merge, and the user's save of the new file, merged from it, added
    the peer's line a second time."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    assert bridge.on_file("t1.md", b"", 2000) == []  # an in-place save, at its truncate
    bridge.before_remote("t1")
    peer = LINES.replace("line 1", "line 1 peer")
    _remote_edit(bridge, peer)
    assert bridge.on_remote("t1", "peer-b") == []  # awaits the save
    bridge.before_remote("t1")
    _remote_edit(bridge, peer, path="moved.md")
    effects = bridge.on_remote("t1", "peer-b")
    (write,) = [e for e in effects if isinstance(e, b.WriteFile)]
    assert write.relpath == "moved.md"
    assert "line 1 peer" in write.text
    bridge.wrote("t1", "moved.md")
    assert bridge.on_remove_refused("t1.md", "t1", b"", 2010) == []
    # The old file's save lands and merges from its own state.
    bridge.on_file("t1.md", LINES.replace("status: todo", "status: old").encode(), 2050)
    # The user saves the new file, as we wrote it, with a line of their own.
    bridge.on_file("moved.md", write.text.replace("line 3", "line 3 user").encode(), 2100)
    text = _text(bridge, "t1")
    assert text.count("peer") == 1
    assert "line 3 user" in text
    assert "status: old" in text


def test_a_moved_stale_save_of_a_path_that_held_the_items_state_is_not_a_strays_copy() -> None:
    """B66 (soak seed 10117, 5 x 200): the user deleted t1.md as a peer's rename landed,
    so its removal left a stray (the user's copy that never came) with the old state. Much
    later a stale editor's save of a path the item left since, holding just what the
    item's file held, was renamed before it was read: as alike to the item's file as to
    that path, it went to the stray, merged from the old state: a peer's line twice."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES, path="a.md")
    _carry_out(bridge, [e for e in bridge.on_remote("t1", "peer-b") if isinstance(e, b.WriteFile)])
    assert bridge.on_remove_refused("t1.md", "t1", None, 2000) == []  # the user deleted it
    assert "t1" in bridge.strays
    peer = LINES.replace("line 3", "line 3 peer")
    bridge.before_remote("t1")
    _remote_edit(bridge, peer, path="a.md")
    _carry_out(bridge, bridge.on_remote("t1", "peer-b"))
    _remote_rename(bridge, "b.md", peer)  # a.md departs, holding what b.md holds
    stale = peer.replace("line 0", "line 0 stale")  # the stale editor's save of a.md, moved
    effects = bridge.on_file("stale.md", stale.encode(), 4000)
    assert not [e for e in effects if isinstance(e, b.Report)]
    text = _text(bridge, "t1")
    assert text.count("peer") == 1
    assert "line 0 stale" in text


def test_a_file_unlike_the_state_a_strays_copy_held_is_not_that_copy() -> None:
    """B76 (soak seed 10577, 5 x 200): the user deleted t1.md as a peer's rename landed,
    so its removal left a stray (the user's copy that never came) with the old state,
    which followed our writes for good. Much later a file claiming the id, made on what
    the item's file shows, was taken for that copy and merged from the old state: every
    line added since went in twice. Unlike that state, it is no copy of it."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES, path="a.md")
    _carry_out(bridge, [e for e in bridge.on_remote("t1", "peer-b") if isinstance(e, b.WriteFile)])
    assert bridge.on_remove_refused("t1.md", "t1", None, 2000) == []  # the user deleted it
    assert "t1" in bridge.strays
    peer = LINES + "line 4 peer\nline 5 peer\n"
    bridge.before_remote("t1")
    _remote_edit(bridge, peer, path="a.md")
    _carry_out(bridge, bridge.on_remote("t1", "peer-b"))
    record = bridge.disk.get("a.md")
    assert record is not None
    assert bridge.strays["t1"][0] == record.digest  # still following our writes (B15)
    later = peer.replace("line 0", "line 0 later")
    effects = bridge.on_file("later.md", later.encode(), 4000)
    text = _text(bridge, "t1")
    assert text.count("line 4 peer") == 1
    assert [e.relpath for e in effects if isinstance(e, b.Report)] == ["later.md"]
    assert bridge.path_of("t1") == "a.md"


def test_a_users_copy_of_a_stray_saved_on_its_state_still_takes_the_item() -> None:
    """B76's likeness test keeps B11's case: the user's moved copy, saved on the state the
    file held, takes the item although a peer's edit was written since."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES, path="a.md")
    _carry_out(bridge, [e for e in bridge.on_remote("t1", "peer-b") if isinstance(e, b.WriteFile)])
    assert bridge.on_remove_refused("t1.md", "t1", None, 2000) == []  # the user moved it
    peer = LINES.replace("line 3", "line 3 peer")
    bridge.before_remote("t1")
    _remote_edit(bridge, peer, path="a.md")
    _carry_out(bridge, bridge.on_remote("t1", "peer-b"))
    mine = LINES.replace("line 0", "line 0 mine")
    effects = bridge.on_file("mine.md", mine.encode(), 4000)
    assert not [e for e in effects if isinstance(e, b.Report)]
    assert bridge.path_of("t1") == "mine.md"
    text = _text(bridge, "t1")
    assert "line 0 mine" in text
    assert text.count("line 3 peer") == 1


def test_a_users_copy_of_a_stray_that_changed_the_line_a_peer_changed_is_still_its_copy() -> None:
    """B76, soak seed 10512: the user's copy set the value a peer's write had set too.
    By lines it is as alike to the stray's state as to ours; by characters nearer ours.
    A line tie leaves it the stray's copy: merged from that state, the two values are a
    conflict (taken for no copy, it was a second file of the id, never synced)."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES, path="a.md")
    _carry_out(bridge, [e for e in bridge.on_remote("t1", "peer-b") if isinstance(e, b.WriteFile)])
    assert bridge.on_remove_refused("t1.md", "t1", None, 2000) == []  # the user moved it
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES.replace("todo", "doing 1"), path="a.md")
    _carry_out(bridge, bridge.on_remote("t1", "peer-b"))
    mine = LINES.replace("todo", "doing 2").replace("line 1", "line 1\nline 1 mine")
    effects = bridge.on_file("mine.md", mine.encode(), 4000)
    assert not [e for e in effects if isinstance(e, b.Report)]
    assert bridge.path_of("t1") == "mine.md"
    item = bridge.repo.get("t1")
    assert item is not None
    text = item.render()
    assert text is not None
    assert "line 1 mine" in text
    (conflict,) = item.field_conflicts()
    assert sorted([conflict.winner.value, *(c.value for c in conflict.losers)]) == [
        '"doing 1"',
        '"doing 2"',
    ]


def _a_delete_and_a_concurrent_status(item: ItemDoc, status: str) -> tuple[bytes, bytes]:
    """Two peers' updates made on ``item`` as it is: one deletes it, the other (not
    having seen the delete) sets its status."""
    before = item.doc.get_update()
    deleter = Repo(Writer("peer-b", Hlc("peer-b"), 0), 99)
    deleter.load("t1", before)
    deletion = deleter.delete("t1", 3000)
    setter = Repo(Writer("peer-c", Hlc("peer-c"), 0), 98)
    setter.load("t1", before)
    text = TEXT.replace("todo", status)
    edit = setter.ingest("t1", "t1.md", codec.parse(text.encode(), "t1.md"), 3000)
    assert deletion is not None
    assert edit.update is not None
    return deletion, edit.update


def _deleted_half_way_through_a_save_then_revived(bridge: b.Bridge) -> list[b.Effect]:
    """Our user is saving t1.md by delete-and-recreate; a peer's delete finds it gone,
    then a concurrent edit revives the item: the effects of that edit."""
    bridge.on_file("t1.md", TEXT.encode(), 1000)
    item = bridge.repo.get("t1")
    assert item is not None
    deletion, edit = _a_delete_and_a_concurrent_status(item, "theirs")
    bridge.before_remote("t1")
    item.apply_remote(deletion)
    effects = bridge.on_remote("t1", "peer-b")
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["t1.md"]
    assert bridge.on_remove_refused("t1.md", "t1", None, 3100) == []  # half-way: missing
    bridge.before_remote("t1")
    item.apply_remote(edit)
    assert item.alive()
    return bridge.on_remote("t1", "peer-c")


def test_an_item_revived_where_a_save_is_half_way_is_not_written_into_its_gap() -> None:
    """B69 (soak seed 10049, smallest 5 x 91): the revived item was written into the
    gap of the save; the save replaced our file and was diffed against it (its likeness
    to what the path held and to ours was a tie), so it deleted the peer's value it
    never showed, without a conflict."""
    bridge = make_bridge()
    held = _deleted_half_way_through_a_save_then_revived(bridge)
    assert not [e for e in held if isinstance(e, b.WriteFile)]
    saved = TEXT.replace("todo", "mine")  # the save lands, made on what the file showed
    _carry_out(bridge, bridge.on_file("t1.md", saved.encode(), 3200))
    item = bridge.repo.get("t1")
    assert item is not None
    (conflict,) = item.field_conflicts()
    assert sorted([conflict.winner.value, *(c.value for c in conflict.losers)]) == [
        '"mine"',
        '"theirs"',
    ]
    assert bridge.path_of("t1") == "t1.md"


def test_an_item_revived_where_no_save_lands_is_written_when_the_grace_ends() -> None:
    """B69's other side: the file was really gone (moved or deleted by the user): the
    item is written back once the grace ends, as it was at once before."""
    bridge = make_bridge()
    _deleted_half_way_through_a_save_then_revived(bridge)
    assert bridge.deadline_ms() == 3100 + bridge.delete_grace_ms
    back = bridge.tick(3100 + bridge.delete_grace_ms)
    assert [(e.relpath, e.expect) for e in back if isinstance(e, b.WriteFile)] == [("t1.md", None)]


def test_a_value_that_lost_unseen_stays_a_conflict_when_the_users_copy_of_a_rename_lands() -> None:
    """B70 (soak seed 10159, smallest 5 x 191): a peer's older value changed nothing in
    the file (B14: kept as ``seen``); the user moved the file, a peer's rename found it
    gone (a stray), and a second rename removed the file we wrote for the first. That
    removal dropped ``seen``: the user's copy, merged from the stray's base, replaced the
    loser it never showed, with no conflict left."""
    bridge = make_bridge()
    item, mine = _an_older_value_applied(bridge, "peer-c", 98)
    assert not [e for e in bridge.on_remote("t1", "peer-c") if isinstance(e, b.WriteFile)]
    # The user moves t1.md to copy.md (not read yet); a peer renames the item twice.
    bridge.before_remote("t1")
    _remote_edit(bridge, mine, path="a.md")
    effects = bridge.on_remote("t1", "peer-b")
    bridge.wrote("t1", "a.md")
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["t1.md"]
    assert bridge.on_remove_refused("t1.md", "t1", None, 5100) == []  # gone: moved
    bridge.before_remote("t1")
    _remote_edit(bridge, mine, path="b.md")
    _carry_out(bridge, bridge.on_remote("t1", "peer-b"))
    assert bridge.path_of("t1") == "b.md"
    again = TEXT.replace("todo", "again")  # saved on the file that showed "mine"
    _carry_out(bridge, bridge.on_file("copy.md", again.encode(), 6000))
    (conflict,) = item.field_conflicts()
    assert conflict.winner.value == '"again"'
    assert [c.value for c in conflict.losers] == ['"theirs"']


def test_a_delete_keeps_an_edit_it_saw_only_the_successor_of() -> None:
    """B71 (soak seed 10434 at 5 x 200 before B69): a peer's second edit reached us
    before its first (Yjs orders one client's operations, not two clients'; each merge
    from a base writes through a fork of its own client id). The second edit's rev cell
    replaced the first's; our user, who never saw the first edit, deleted the file, and
    the delete, made as of a state that held the second edit, deleted the item with the
    first edit's line in it."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    item = bridge.repo.get("t1")
    assert item is not None
    first_writer = Repo(Writer("peer-b", Hlc("peer-b"), 0), 99)
    first_writer.load("t1", item.doc.get_update())
    added = LINES.replace("line 3", "line 3 peer")
    first = first_writer.ingest("t1", "t1.md", codec.parse(added.encode(), "t1.md"), 2000)
    assert first.update is not None
    second_writer = Repo(Writer("peer-c", Hlc("peer-c"), 0), 98)
    second_writer.load("t1", first_writer.encoded("t1") or b"")
    cut = added.replace("line 0\n", "")
    second = second_writer.ingest("t1", "t1.md", codec.parse(cut.encode(), "t1.md"), 2100)
    assert second.update is not None
    bridge.before_remote("t1")
    item.apply_remote(second.update)  # the second edit, without the first
    assert "line 3 peer" not in (item.render() or "")
    _carry_out(bridge, bridge.on_remote("t1", "peer-c"))
    assert bridge.on_file("t1.md", None, 3000) == []  # the user deletes the file
    bridge.before_remote("t1")
    item.apply_remote(first.update)  # the first edit arrives within the delete grace
    assert bridge.on_remote("t1", "peer-b") == []  # the missing file awaits its grace
    back = bridge.tick(3000 + bridge.delete_grace_ms)
    assert item.alive()
    assert [e.relpath for e in back if isinstance(e, b.WriteFile)] == ["t1.md"]
    assert item.render() == cut


def test_a_path_reported_again_while_its_delete_is_pending_waits_its_grace_again() -> None:
    """Soak seed 10482 (5 x 110): the user saved by delete-and-recreate again and again,
    and every watcher batch read the file in a save's gap. The grace, counted from the
    first gap, ran out between two saves: the delete lost to a peer's edit and the file
    was written back into the last save's gap. The save landed on our write and, diffed
    against it, deleted the peer's line it never showed. Each report of the missing path
    means the file came back and went: the saves are still running."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    assert bridge.on_file("t1.md", None, 2000, reported=True) == []  # a save's gap
    bridge.before_remote("t1")
    _remote_edit(bridge, LINES.replace("line 3", "line 3 peer"))
    assert bridge.on_remote("t1", "peer-b") == []  # awaits the grace
    assert bridge.on_file("t1.md", None, 2100, reported=True) == []  # back and gone again
    effects = bridge.tick(2000 + bridge.delete_grace_ms)
    writes = [e for e in effects if isinstance(e, b.WriteFile)]
    for write in writes:
        bridge.wrote(write.key, write.relpath)  # landed in the save's gap
    assert writes == []
    assert bridge.pending_delete == {"t1.md": 2100 + bridge.delete_grace_ms}
    saved = LINES.replace("line 0", "line 0 mine")
    effects = bridge.on_file("t1.md", saved.encode(), 2200, reported=True)
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.alive()
    text = item.render()
    assert text is not None
    assert text.endswith("---\nline 0 mine\nline 1\nline 2\nline 3 peer\n")
    (write,) = [e for e in effects if isinstance(e, b.WriteFile)]
    assert write.text == text  # the merge is written back


def test_a_missing_file_seen_again_unreported_does_not_postpone_its_delete() -> None:
    """B1: a reread (a refused write, say) that finds the file still gone is no news;
    only a report from the watcher says the file came back meanwhile."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    assert bridge.on_file("t1.md", None, 2000, reported=True) == []
    assert bridge.on_file("t1.md", None, 2100) == []  # a reread, not a report
    effects = bridge.tick(2000 + bridge.delete_grace_ms)
    assert [e.event.kind for e in effects if isinstance(e, b.Emit)] == ["deleted"]
    item = bridge.repo.get("t1")
    assert item is not None
    assert not item.alive()


def test_a_save_of_the_file_that_gave_way_to_the_users_copy_edits_the_item() -> None:
    """B77 (soak seed 10102 with B73's first version): a peer's rename wrote p.md while the
    user moved t1.md; their copy took the item and p.md, which held what we wrote, was
    removed. An editor still open on p.md saved it back: an edit made on what p.md showed.
    With no departed entry it was a second file of the id, never synced (or, in the seed,
    taken for a save of another departed path and merged from a state it never showed,
    which deleted a line)."""
    bridge = _moved_by_the_user_during_a_peers_rename(
        LINES, LINES.replace("line 1", "line 1 peer"), "p.md"
    )
    users = LINES.replace("line 0", "line 0 user")
    effects = bridge.on_file("user.md", users.encode(), 4000)  # later than the peer's path
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["p.md"]
    bridge.removed("p.md", "t1")  # ours gave way
    for effect in effects:
        if isinstance(effect, b.WriteFile):
            bridge.wrote(effect.key, effect.relpath)
    stale = LINES.replace("line 1", "line 1 peer").replace("line 3", "line 3 stale")
    effects = bridge.on_file("p.md", stale.encode(), 4100)
    assert not [e for e in effects if isinstance(e, b.Report)]
    assert [e.relpath for e in effects if isinstance(e, b.RemoveFile)] == ["p.md"]
    item = bridge.repo.get("t1")
    assert item is not None
    assert item.path() == "user.md"
    text = item.render()
    assert text is not None
    assert text.endswith("---\nline 0 user\nline 1 peer\nline 2\nline 3 stale\n")


def test_the_move_of_the_items_missing_file_is_read_before_a_moved_stale_save() -> None:
    """B72 (soak seed 10451, smallest 5 x 103): a stale editor saved the old path of a
    peer's rename and the person renamed that file (B49's case), and moved the item's
    own file too; the watcher reported all four paths in one batch. Read first, the
    stale save was taken for the missing file's move, merged from what that file
    showed, and undid the peer's line it never showed. The file holding exactly what
    the missing file held is its move: it is read first."""
    bridge = make_bridge()
    write, stale = _renamed_twice_with_a_stale_save(bridge)
    assert bridge.on_file("t1.md", None, 4000) == []
    assert bridge.on_file("moved.md", None, 4000) == []  # moved to z.md: its grace runs
    found = [("a.md", stale.encode()), ("z.md", write.text.encode())]
    assert bridge.reading_order(found) == ["z.md", "a.md"]
    for relpath, data in [("z.md", write.text.encode()), ("a.md", stale.encode())]:
        effects = bridge.on_file(relpath, data, 4010)
        assert not [e for e in effects if isinstance(e, b.Report)]
        _carry_out(bridge, effects)
    text = _text(bridge, "t1")
    assert "line 0 stale" in text
    assert "line 3 peer" in text


def test_the_likeliest_of_two_files_claiming_a_missing_files_item_is_its_move() -> None:
    """B85 (CI seed 21 at 5 x 200): as B72's case, but the item's own file was edited as well
    as moved before the watcher's batch (a rename, then a delete-and-recreate save), so no
    file holds the missing file's bytes. The stale save sorted first and was taken for the
    move, and its old text undid three lines it never showed. Of the files claiming the
    missing file's item, the one most like what that file showed is read first."""
    bridge = make_bridge()
    write, stale = _renamed_twice_with_a_stale_save(bridge)
    moved = write.text.replace("line 1", "line 1 moved")  # moved to z.md, then saved
    assert bridge.on_file("t1.md", None, 4000) == []
    assert bridge.on_file("moved.md", None, 4000) == []  # its grace runs
    found = [("a.md", stale.encode()), ("z.md", moved.encode())]
    assert bridge.reading_order(found) == ["z.md", "a.md"]
    for relpath, data in [("z.md", moved.encode()), ("a.md", stale.encode())]:
        effects = bridge.on_file(relpath, data, 4010)
        assert not [e for e in effects if isinstance(e, b.Report)]
        _carry_out(bridge, effects)
    text = _text(bridge, "t1")
    for line in ("line 0 stale", "line 1 moved", "line 3 peer"):
        assert line in text


def test_only_the_move_of_a_missing_file_goes_before_the_files_claiming_its_id() -> None:
    """B72's reading order: unless a missing file's bytes turned up, and for files that
    claim another id, the batch's order stands."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    other = TEXT.replace("id: t1", "id: t2").encode()
    copy = LINES.replace("line 0", "line 0 copy").encode()
    found = [("u.md", other), ("b.md", copy), ("a.md", LINES.encode()), ("c.md", None)]
    assert bridge.reading_order(found) == ["u.md", "b.md", "a.md", "c.md"]
    bridge.on_file("t1.md", None, 2000)
    assert bridge.reading_order(found) == ["u.md", "a.md", "b.md", "c.md"]


def test_the_items_missing_file_back_in_the_batch_is_read_before_other_files_claiming_its_id() -> (
    None
):
    """Soak seed 10061 at 5 x 208: the item's file was seen missing in a delete-and-recreate
    save's gap (its delete grace running), and the next batch had it back, saved, with a
    stale editor's save of an old path renamed to a new one. Read first (its path sorts
    first), the stale save was taken for the missing file's move, merged from what that
    file showed, and undid three edits it never had. The file that is back goes first."""
    bridge = make_bridge()
    bridge.on_file("t1.md", LINES.encode(), 1000)
    assert bridge.on_file("t1.md", None, 2000) == []  # the save's gap: its grace runs
    saved = LINES.replace("line 3", "line 3 saved").encode()
    stale = LINES.replace("line 0", "line 0 stale").encode()
    found = [("a.md", stale), ("t1.md", saved)]
    assert bridge.reading_order(found) == ["t1.md", "a.md"]
    effects = bridge.on_file("t1.md", saved, 2050)
    assert not [e for e in effects if isinstance(e, b.RemoveFile)]
    assert bridge.path_of("t1") == "t1.md"
    assert "t1.md" not in bridge.pending_delete
