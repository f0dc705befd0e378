"""Text diffs applied to a real Y.Text, including non-ASCII text (UTF-8 offsets)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Doc, Text

from worksync_p2p.core import textdiff

LINES = st.lists(
    st.sampled_from(["alpha\n", "beta\n", "naïve café\n", "東京 ✅\n", "😀 emoji\n", "\n", "x"]),
    max_size=12,
).map("".join)
TEXTS = st.one_of(LINES, st.text(max_size=60))


def y_text(content: str) -> tuple[Doc[Any], Text]:
    doc: Doc[Any] = Doc()
    text = doc.get("t", type=Text)
    text += content
    return doc, text


@settings(max_examples=300, deadline=None)
@given(old=TEXTS, new=TEXTS)
def test_set_text_makes_the_ytext_equal_to_the_new_text(old: str, new: str) -> None:
    doc, text = y_text(old)
    with doc.transaction():
        changed = textdiff.set_text(text, old, new)
    assert str(text) == new
    assert changed == (old != new)


def test_equal_text_is_no_edit() -> None:
    assert textdiff.diff("same\ntext\n", "same\ntext\n") == []


def test_a_one_word_change_is_a_small_edit() -> None:
    old = "".join(f"line {i} of a long body\n" for i in range(200))
    new = old.replace("line 100 of", "line 100 OF")
    edits = textdiff.diff(old, new)
    assert sum(e.end - e.start + len(e.insert) for e in edits) <= 4


@settings(max_examples=300, deadline=None)
@given(target=TEXTS, extra=TEXTS, cut=st.integers(min_value=0, max_value=60))
def test_deletions_to_recover_a_subsequence(target: str, extra: str, cut: int) -> None:
    cut = min(cut, len(target))
    merged = target[:cut] + extra + target[cut:]
    edits = textdiff.deletions_to(merged, target)
    assert edits is not None
    assert all(e.insert == "" for e in edits)
    doc, text = y_text(merged)
    with doc.transaction():
        textdiff.apply(text, merged, edits)
    assert str(text) == target


def test_deletions_to_refuses_a_non_subsequence() -> None:
    assert textdiff.deletions_to("abc", "abd") is None


def test_same_edit_twice_then_repaired_converges() -> None:
    """The duplicate-edit repair from FACTS.md, on real documents."""
    a: Doc[Any] = Doc(client_id=1)
    a.get("t", type=Text).insert(0, "hello world")
    b: Doc[Any] = Doc(client_id=2)
    b.apply_update(a.get_update())
    for doc in (a, b):
        text = doc.get("t", type=Text)
        with doc.transaction():
            textdiff.set_text(text, str(text), "hello there")
    a_update, b_update = a.get_update(), b.get_update()
    a.apply_update(b_update)
    b.apply_update(a_update)
    merged = str(a.get("t", type=Text))
    assert merged != "hello there"  # the CRDT applied the edit twice
    for doc in (a, b):
        text = doc.get("t", type=Text)
        edits = textdiff.deletions_to(str(text), "hello there")
        assert edits is not None
        with doc.transaction():
            textdiff.apply(text, str(text), edits)
    a.apply_update(b.get_update())
    b.apply_update(a.get_update())
    assert str(a.get("t", type=Text)) == str(b.get("t", type=Text)) == "hello there"


def _concurrent(base: str, left: str, right: str) -> str:
    """Two replicas edit ``base`` at once by diffing their saves; the merged text."""
    a: Doc[Any] = Doc(client_id=1)
    a.get("t", type=Text).insert(0, base)
    b: Doc[Any] = Doc(client_id=2)
    b.apply_update(a.get_update())
    for doc, target in ((a, left), (b, right)):
        text = doc.get("t", type=Text)
        with doc.transaction():
            textdiff.set_text(text, str(text), target)
    a.apply_update(b.get_update())
    return str(a.get("t", type=Text))


def test_a_new_word_is_not_built_from_letters_a_peer_is_rewriting() -> None:
    """Process chaos seed 104: p0 appended ' m00063z' to one line and removed the next;
    the diff kept ' m000', '3' and 'z' of the removed line to build the new marker.
    p2 was rewriting that line at the same time: the merged marker read 'm00021z6'."""
    base = "# title\n\npapa mike line 1 m00021z\nalpha m00034z\n"
    p0 = "# title\nalpha m00061z\n\npapa mike line 1 m00021z m00063z\n"
    p2 = "# title\n\npapa mike line 1 m00021z\nwhiskey m00064z\n"
    merged = _concurrent(base, p0, p2)
    assert "papa mike line 1 m00021z m00063z\n" in merged
    assert "m00064z" in merged
    assert "alpha m00061z\n" in merged


def test_a_changed_line_is_edited_word_by_word() -> None:
    edits = textdiff.diff("a\nstatus: in review now\nz\n", "a\nstatus: in progress now\nz\n")
    assert edits == [textdiff.Edit(13, 19, "progress")]


def test_unrelated_lines_are_replaced_whole() -> None:
    edits = textdiff.diff("keep\nalpha m00034z\n", "keep\nxyz\n")
    assert edits == [textdiff.Edit(5, 19, "xyz\n")]


def test_concurrent_edits_of_different_words_of_one_line_both_survive() -> None:
    base = "status: open, owner: nobody\n"
    merged = _concurrent(base, "status: closed, owner: nobody\n", "status: open, owner: ana\n")
    assert merged == "status: closed, owner: ana\n"


def test_text_typed_right_after_a_word_keeps_the_word() -> None:
    """Soak seed 10061 (B81): two stale saves each added a line after a last line with no
    newline, so each turned ``m00116z`` into ``m00116z<its line>``. Replaced whole, the word
    was deleted by both and inserted by each: the merge held it twice."""
    base = "# t\n\n a m00041z m00116z"
    assert textdiff.diff(base, base + "alpha m00128z\n") == [
        textdiff.Edit(len(base), len(base), "alpha m00128z\n")
    ]
    merged = _concurrent(base, base + "foxtrot m00149z\n", base + "alpha m00128z\n")
    assert merged.count("m00116z") == 1
    assert "foxtrot m00149z\n" in merged
    assert "alpha m00128z\n" in merged


def test_text_typed_before_a_word_keeps_the_word_but_a_cut_word_is_replaced() -> None:
    assert textdiff.diff("x un\n", "x reun\n") == [textdiff.Edit(2, 2, "re")]
    # Only additions: a word cut short is still replaced whole (see ``textdiff._replace``).
    assert textdiff.diff("x colours\n", "x colour\n") == [textdiff.Edit(2, 9, "colour")]
    # A short line replaced whole (too unlike its old self to pair) keeps a kept start too.
    assert textdiff.diff("m00116z", "m00116zalpha m00128z\n") == [
        textdiff.Edit(7, 7, "alpha m00128z\n")
    ]
