"""Start-up's test for a stored base a power cut left stale (``node._shows_the_change``).

Lives beside the bridge tests: it is pure text logic, no node is started.
"""

from __future__ import annotations

from worksync_p2p.node import _shows_the_change

BEFORE = "---\nid: t1\n---\n# heading m1\n\nline 0\nline 1\n"
AFTER = "---\nid: t1\n---\n# heading m1 peer\n\nline 0\nline 1\n"


def test_a_line_the_write_set_and_the_user_extended_shows_the_write() -> None:
    """B59 (seed 315, smallest 5 x 68): the write appended a word to the heading, the
    power cut lost the base's removal, and the user appended another word to the same
    line. Counted as missed, the line made a tie; the stale base was kept and the save,
    merged from it, put the peer's word in twice."""
    extended = AFTER.replace("m1 peer", "m1 peer user")
    assert _shows_the_change(extended, BEFORE, AFTER)


def test_a_line_extended_from_the_old_state_does_not_show_the_write() -> None:
    """The write never landed: the user extended the old line; the base is kept."""
    extended = BEFORE.replace("m1", "m1 user")
    assert not _shows_the_change(extended, BEFORE, AFTER)


def test_a_line_the_user_replaced_is_still_a_tie() -> None:
    """Neither state's line is held in the user's: the base stays (a conflict at worst)."""
    replaced = AFTER.replace("# heading m1 peer", "# another heading")
    assert not _shows_the_change(replaced, BEFORE, AFTER)


def test_a_line_only_the_write_added_shows_it_though_the_user_undid_another() -> None:
    """B68 (seed 10228, smallest 5 x 90): the write added a tag and a line; the user
    removed the tag since. One shown, one missed made a tie: the stale base stayed and
    the save, merged from it, held the line twice. The line came only with the write."""
    before = "---\nid: t1\ntags:\n  - a\n---\nline 0\nline 1\n"
    after = "---\nid: t1\ntags:\n  - a\n  - m3\n---\nline 0\npeer m2\nline 1\n"
    untagged = after.replace("  - m3\n", "")
    assert _shows_the_change(untagged, before, after)
