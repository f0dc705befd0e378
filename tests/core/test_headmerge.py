"""Concurrent edits of one field leave its key twice in the head template: the render
must keep every line nobody changed (comments, quoting, flow lists) all the same."""

from __future__ import annotations

import re

import pytest

from tests.core.replicas import Replica, seed
from worksync_p2p.core import codec
from worksync_p2p.core.headmerge import drop_duplicate_keys, drop_unreadable_entries

HEAD = """id: t1
# who works on it
status: open  # one of open, doing, done
assignee: nobody
tags: [a, "b c"]
links:
  parent: p1
  related:
    - r1
notes: |
  status: this is text, not a key
  status: neither is this
"""


def test_the_second_line_of_a_repeated_key_is_dropped() -> None:
    merged = HEAD.replace("assignee: nobody\n", "assignee: alice\nassignee: bob\n")
    assert drop_duplicate_keys(merged) == HEAD.replace("nobody", "alice")


def test_a_repeated_nested_key_is_dropped_with_its_lines() -> None:
    merged = HEAD.replace(
        "  related:\n    - r1\n", "  related:\n    - r1\n  related:\n    - r2\n    - r3\n"
    )
    assert drop_duplicate_keys(merged) == HEAD


def test_the_same_key_in_other_mappings_is_no_duplicate() -> None:
    text = "a:\n  x: 1\nb:\n  x: 2\nitems:\n  - name: n1\n    x: 3\n  - name: n2\n    x: 4\n"
    assert drop_duplicate_keys(text) == text


def test_lines_inside_a_block_scalar_are_text() -> None:
    assert drop_duplicate_keys(HEAD) == HEAD


TEXT = "---\n" + HEAD + "---\nbody\n"


def claim(text: str, field: str, value: str) -> str:
    new, count = re.subn(rf"(?m)^{field}: .*$", f"{field}: {value}", text)
    assert count == 1
    return new


@pytest.mark.parametrize("field", ["assignee", "status"])
def test_concurrent_claims_render_only_the_claimed_line_changed(field: str) -> None:
    genesis = seed(TEXT)
    a = Replica.from_state("peer-a", genesis, 1)
    b = Replica.from_state("peer-b", genesis, 2)
    from_b = b.edit(claim(TEXT, field, "bob"), 1000)
    from_a = a.edit(claim(TEXT, field, "alice"), 2000)  # later: wins
    a.receive(from_b)
    b.receive(from_a)
    expected = claim(TEXT, field, "alice")
    assert a.item.render() == expected
    assert b.item.render() == expected


def test_concurrent_edits_of_a_nested_field_keep_the_rest() -> None:
    genesis = seed(TEXT)
    a = Replica.from_state("peer-a", genesis, 1)
    b = Replica.from_state("peer-b", genesis, 2)
    from_b = b.edit(TEXT.replace("parent: p1", "parent: p2"), 1000)
    from_a = a.edit(TEXT.replace("parent: p1", "parent: p3"), 2000)
    a.receive(from_b)
    b.receive(from_a)
    assert a.item.render() == b.item.render() == TEXT.replace("parent: p1", "parent: p3")


def test_an_entry_that_no_longer_reads_is_dropped_with_stray_lines() -> None:
    merged = HEAD.replace('tags: [a, "b c"]\n', "tags: [] [x]\n").replace(
        "    - r1\n", "    - r1\nr2  - r3\n"
    )
    assert drop_unreadable_entries(merged) == HEAD.replace('tags: [a, "b c"]\n', "")


@pytest.mark.parametrize(
    ("merged", "tags"),
    [
        # the same key twice: the first line stays, in its own style
        ('tags: [a, "b c"]\ntags: [a]\n', "tags: [a, z]\n"),
        # two flow-list edits interleaved, or a block item under a flow list: the
        # entry is written again, in the default style, where it stood
        ("tags: [] [x]\n", "tags:\n  - a\n  - z\n"),
        ('tags: [a, "b c"]\n  - stray\n', "tags:\n  - a\n  - z\n"),
    ],
    ids=["duplicate", "interleaved", "stray"],
)
def test_a_mended_template_keeps_every_other_line_and_the_key_in_place(
    merged: str, tags: str
) -> None:
    template = "---\n" + HEAD.replace('tags: [a, "b c"]\n', merged) + "---\n"
    fields = codec.parse(TEXT.encode(), "t1.md").fields
    assert fields is not None
    rendered = codec.render_head(template, {**fields, "tags": ["a", "z"]})
    assert rendered == "---\n" + HEAD.replace('tags: [a, "b c"]\n', tags) + "---\n"


def test_a_key_missing_from_the_template_goes_back_where_its_order_puts_it() -> None:
    template = "---\nid: x\n# about the status\nstatus: open  # c\nassignee: nobody\n---\n"
    fields = {"id": "x", "status": "open", "tags": ["a"], "assignee": "nobody", "last": 1}
    assert codec.render_head(template, fields) == (
        "---\nid: x\n# about the status\nstatus: open  # c\ntags:\n  - a\n"
        "assignee: nobody\nlast: 1\n---\n"
    )


@pytest.mark.parametrize(
    "damaged",
    [
        "---\nid: x\n# kept\ntags:\n  - a\nb---\n",  # the last line ran into the closing line
        "---\nid: x\n# kept\ntags:\n  - a\n  - b\n--",  # the closing line lost a character
        "---\nid: x\n# kept\ntags:\n  - a\n  - b\n---\nstray text\n",  # text after it
    ],
    ids=["run-into", "short", "trailing"],
)
def test_a_head_damaged_at_its_closing_line_keeps_its_lines(damaged: str) -> None:
    fields = {"id": "x", "tags": ["a", "b"]}
    assert codec.render_head(damaged, fields) == "---\nid: x\n# kept\ntags:\n  - a\n  - b\n---\n"
