"""render_head: local edits of real frontmatter, and the emitter behind it."""

from __future__ import annotations

import copy
import datetime as dt
import difflib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from worksync_p2p.core import values, yamlemit
from worksync_p2p.core.codec import fields_equal, parse, parse_head, render_head

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "corpus"
HEADS = {
    p.name: parse(p.read_bytes(), p.name).head
    for p in sorted(CORPUS.glob("*.md"))
    if p.read_bytes().startswith(b"---")
}
PROPOSAL = HEADS["proposal-real-time-sync-demo.md"]
PLAN = HEADS["plan-multi-session.md"]
TASK = HEADS["task-fsnotify-research.md"]

NEW_VALUES: list[Any] = [
    "a new summary",
    "yes",
    "needs: quoting # here",
    "",
    42,
    -7,
    0.9,
    float("inf"),
    True,
    None,
    dt.date(2025, 2, 1),
    dt.datetime(2025, 2, 1, 8, 30, tzinfo=dt.UTC),
    dt.datetime(2025, 2, 1, 8, 30, 15, 250000),
    [],
    ["x", "y z"],
    [{"name": "Cy", "role": "qa"}],
    {},
    {"k": "v", "nested": {"m": 1}},
    "two\nlines\n",
]


def fields_of(head: str) -> dict[str, Any]:
    fields = parse_head(head)
    assert fields is not None
    return fields


def crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def top_level_span(head: str, key: str) -> tuple[int, int]:
    """Line range [start, end) of a top-level key in a block-style head."""
    lines = head.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{key}:"))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith((" ", "- ")))
    return start, end


def assert_only_lines_changed(old: str, new: str, start: int, end: int) -> None:
    """Lines of ``old`` outside [start, end) are in ``new``, unchanged and in order."""
    old_lines, new_lines = old.splitlines(True), new.splitlines(True)
    tail = len(old_lines) - end
    diff = "".join(difflib.unified_diff(old_lines, new_lines, n=0))
    assert new_lines[:start] == old_lines[:start], diff
    assert new_lines[len(new_lines) - tail :] == old_lines[end:], diff
    assert len(new_lines) >= start + tail, diff


def with_value(fields: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    new = copy.deepcopy(fields)
    new[key] = value
    return new


# -- no-op ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HEADS))
def test_unchanged_fields_give_the_template_back(name: str) -> None:
    head = HEADS[name]
    assert render_head(head, fields_of(head)) is head
    assert render_head(crlf(head), fields_of(head)) == crlf(head)


def test_reordered_fields_are_not_a_change() -> None:
    fields = fields_of(PROPOSAL)
    reordered = dict(reversed(fields.items()))
    reordered["git_context"] = dict(reversed(fields["git_context"].items()))
    assert render_head(PROPOSAL, reordered) == PROPOSAL
    assert fields_equal(reordered, fields)


def test_a_type_change_is_a_change() -> None:
    fields = with_value(fields_of(TASK), "priority", 2.0)
    result = render_head(TASK, fields)
    assert "priority: 2.0\n" in result
    assert values.same(parse_head(result), fields)


# -- one changed key -----------------------------------------------------


@pytest.mark.parametrize("name", sorted(HEADS))
@pytest.mark.parametrize("value", NEW_VALUES, ids=repr)
def test_changing_one_key_changes_only_its_lines(name: str, value: Any) -> None:
    head = HEADS[name]
    fields = fields_of(head)
    for key in fields:
        if values.same(fields[key], value):
            continue
        new_fields = with_value(fields, key, value)
        result = render_head(head, new_fields)
        assert values.same(parse_head(result), new_fields), key
        assert_only_lines_changed(head, result, *top_level_span(head, key))


@pytest.mark.parametrize("name", sorted(HEADS))
def test_removing_one_key_removes_exactly_its_lines(name: str) -> None:
    head = HEADS[name]
    fields = fields_of(head)
    lines = head.splitlines(True)
    for key in fields:
        new_fields = {k: v for k, v in fields.items() if k != key}
        start, end = top_level_span(head, key)
        result = render_head(head, new_fields)
        assert result == "".join(lines[:start] + lines[end:])
        assert values.same(parse_head(result), new_fields)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_changes_keep_crlf(name: str) -> None:
    head = crlf(HEADS[name])
    fields = fields_of(head)
    for key in fields:
        result = render_head(head, with_value(fields, key, {"a": ["b", "c\nd\n"]}))
        assert "\n" not in result.replace("\r\n", "")
        assert result.replace("\r\n", "\n") == render_head(
            HEADS[name], with_value(fields, key, {"a": ["b", "c\nd\n"]})
        )


# -- the cases named in the design --------------------------------------


def test_nested_branch_change_touches_one_line() -> None:
    fields = fields_of(PROPOSAL)
    fields["git_context"]["branch"] = "main"
    result = render_head(PROPOSAL, fields)
    assert result == PROPOSAL.replace("  branch: visualizer\n", "  branch: main\n")


def test_flow_list_stays_flow() -> None:
    fields = fields_of(PROPOSAL)
    fields["metadata"]["dependencies"].append("crdt-core")
    result = render_head(PROPOSAL, fields)
    assert result == PROPOSAL.replace(
        "websocket-infrastructure]\n", "websocket-infrastructure, crdt-core]\n"
    )


def test_spellings_and_comments_elsewhere_stay() -> None:
    template = PROPOSAL.replace(
        "schedule: next\n",
        "# planning\nschedule: next   # aligned comment\nconfidence: 0.90\n"
        "due: 2025-01-12 01:15:00\nhex: 0x1F\nodd: 'single'\n\n",
    )
    fields = fields_of(template)
    assert values.same(fields["confidence"], 0.9)
    assert values.same(fields["hex"], 31)
    fields["schedule"] = "now"
    fields["summary"] = "Shorter"
    result = render_head(template, fields)
    expected = template.replace("schedule: next", "schedule: now").replace(
        "summary: Add real-time synchronization between work tracking instances across "
        "multiple terminals\n",
        "summary: Shorter\n",
    )
    assert result == expected
    assert "created_at: 2025-01-12T01:15:00Z\n" in result


def test_crlf_nested_change() -> None:
    fields = fields_of(PROPOSAL)
    fields["git_context"]["branch"] = "main"
    assert render_head(crlf(PROPOSAL), fields) == crlf(
        PROPOSAL.replace("branch: visualizer", "branch: main")
    )


def test_add_keys_at_the_end_in_fields_order() -> None:
    fields = fields_of(TASK)
    fields["reviewer"] = "Ana"
    fields["checks"] = ["lint", "types"]
    result = render_head(TASK, fields)
    assert result == TASK.replace(
        "\n---\n", "\nreviewer: Ana\nchecks:\n  - lint\n  - types\n---\n", 1
    ).replace("---\nid:", "---\nid:", 1)
    assert values.same(parse_head(result), fields)


def test_add_nested_key_uses_the_mapping_indentation() -> None:
    fields = fields_of(PROPOSAL)
    fields["git_context"]["commit"] = "abc123"
    result = render_head(PROPOSAL, fields)
    assert result == PROPOSAL.replace(
        "claude-work-tracker-ui\nmetadata:", "claude-work-tracker-ui\n  commit: abc123\nmetadata:"
    )


def test_remove_nested_key() -> None:
    fields = fields_of(PROPOSAL)
    del fields["git_context"]["worktree"]
    assert render_head(PROPOSAL, fields) == PROPOSAL.replace(
        "  worktree: claude-work-tracker-ui\n", ""
    )


def test_remove_last_nested_keys_and_add_one() -> None:
    fields = fields_of(TASK)
    fields["links"] = {"parent": "other"}
    result = render_head(TASK, fields)
    assert result == TASK.replace(
        "  parent: proposal-real-time-sync-demo\n  related:\n"
        "    - task-event-bus-design\n    - note-inotify-limits\n",
        "  parent: other\n",
    )


def test_change_block_scalar_keeps_literal_style() -> None:
    fields = fields_of(PLAN)
    fields["notes"] = "Rewritten notes.\nStill two lines.\n"
    result = render_head(PLAN, fields)
    assert result == PLAN.replace(
        "  Multi-line block scalar.\n  Keep the indentation exactly.\n",
        "  Rewritten notes.\n  Still two lines.\n",
    )


def test_block_scalar_chomping_follows_the_value() -> None:
    fields = fields_of(PLAN)
    fields["notes"] = "no final newline\nhere"
    result = render_head(PLAN, fields)
    assert "notes: |-\n  no final newline\n  here\nempty_field:\n" in result
    fields["notes"] = "kept\n\n\n"
    result = render_head(PLAN, fields)
    assert 'notes: "kept\\n\\n\\n"\nempty_field:\n' in result
    assert values.same(parse_head(result), fields)


def test_keep_chomping_scalar_in_a_template_keeps_its_blank_lines() -> None:
    template = "---\na: |+\n  kept\n\n\nb: 1\nc: |+\n  end\n\n---\n"
    fields = fields_of(template)
    assert fields == {"a": "kept\n\n\n", "b": 1, "c": "end\n\n"}
    assert render_head(template, {**fields, "b": 2}) == template.replace("b: 1", "b: 2")
    assert render_head(template, {"b": 1, "c": "end\n\n"}) == "---\nb: 1\nc: |+\n  end\n\n---\n"
    changed = render_head(template, {**fields, "a": "x\n"})
    assert changed == template.replace("a: |+\n  kept\n\n\n", "a: |\n  x\n")
    result = render_head(template, {**fields, "d": 1})
    assert result == template.replace("end\n\n", "end\n\nd: 1\n")


def test_change_one_element_of_a_list_of_maps() -> None:
    fields = fields_of(PLAN)
    fields["owners"][1]["role"] = "sync core"
    assert render_head(PLAN, fields) == PLAN.replace("role: daemon", "role: sync core")


def test_add_a_key_to_an_element_of_a_list_of_maps() -> None:
    fields = fields_of(PLAN)
    fields["owners"][0]["since"] = dt.date(2025, 1, 12)
    assert render_head(PLAN, fields) == PLAN.replace(
        "    role: ui\n", "    role: ui\n    since: 2025-01-12\n"
    )


def test_change_an_element_of_a_list_of_flow_maps() -> None:
    fields = fields_of(PLAN)
    fields["milestones"][1]["done"] = True
    assert render_head(PLAN, fields) == PLAN.replace(
        "{name: lan sync, done: false}", "{name: lan sync, done: true}"
    )


def test_append_to_a_block_list() -> None:
    fields = fields_of(PLAN)
    fields["owners"].append({"name": "Cy", "role": "qa"})
    assert render_head(PLAN, fields) == PLAN.replace(
        "    role: daemon\n", "    role: daemon\n  - name: Cy\n    role: qa\n"
    )


def test_null_to_value_and_back() -> None:
    fields = fields_of(PLAN)
    fields["empty_field"] = "filled"
    filled = render_head(PLAN, fields)
    assert filled == PLAN.replace("empty_field:\n", "empty_field: filled\n")
    fields["empty_field"] = None
    assert render_head(filled, fields) == PLAN


def test_value_to_null_keeps_a_trailing_comment() -> None:
    template = "---\na: 1  # one\nb: 2\n---\n"
    assert render_head(template, {"a": None, "b": 2}) == "---\na:  # one\nb: 2\n---\n"
    assert render_head(template, {"a": 5, "b": 2}) == "---\na: 5  # one\nb: 2\n---\n"


def test_inline_to_block_keeps_the_comment_on_the_key_line() -> None:
    template = "---\ntags: none  # none yet\nnext: 1\n---\n"
    result = render_head(template, {"tags": {"a": 1}, "next": 1})
    assert result == "---\ntags:  # none yet\n  a: 1\nnext: 1\n---\n"


def test_quoting_style_of_a_changed_string_is_kept() -> None:
    template = "---\na: 'single'\nb: \"double\"\nc: plain\n---\n"
    result = render_head(template, {"a": "it's", "b": "x", "c": "yes"})
    assert result == "---\na: 'it''s'\nb: \"x\"\nc: \"yes\"\n---\n"


def test_indentless_list_keeps_its_indentation() -> None:
    template = "---\nlist:\n- a\n- b\nz: 1\n---\n"
    result = render_head(template, {"list": ["a", "c"], "z": 1})
    assert result == "---\nlist:\n- a\n- c\nz: 1\n---\n"
    result = render_head(template, {"list": ["a", "b", {"k": "v"}], "z": 1})
    assert result == "---\nlist:\n- a\n- b\n- k: v\nz: 1\n---\n"


def test_comments_inside_an_unchanged_part_of_a_list_stay() -> None:
    template = "---\nl:\n  # first\n  - a\n  # second\n  - b\nz: 1\n---\n"
    result = render_head(template, {"l": ["a", "c"], "z": 1})
    assert result == template.replace("- b", "- c")


def test_removing_a_block_value_removes_its_inner_comments() -> None:
    template = "---\na:\n  # about x\n  x: 1\n  y: 2\n# about b\nb: 2\n---\n"
    assert render_head(template, {"b": 2}) == "---\n# about b\nb: 2\n---\n"


# -- templates that cannot be patched -----------------------------------


def test_empty_template() -> None:
    assert render_head("", None) == ""
    assert render_head("", {}) == "---\n---\n"
    assert render_head("", {"id": "x", "n": 1}) == "---\nid: x\nn: 1\n---\n"


def test_none_removes_the_frontmatter() -> None:
    assert render_head(PROPOSAL, None) == ""


def test_empty_frontmatter_gets_fields() -> None:
    assert render_head("---\n---\n", {"a": 1}) == "---\na: 1\n---\n"
    assert render_head("---\n# hi\n---\n", {"a": 1}) == "---\n# hi\na: 1\n---\n"
    assert render_head("---\na: 1\n---\n", {}) == "---\n---\n"


def test_bad_template_is_regenerated_between_its_delimiters() -> None:
    assert render_head("---\na: [\n...\n", {"a": 1}) == "---\na: 1\n...\n"
    assert render_head("---\r\na: 1\r\na: 2\r\n---\r\n", {"a": 1}) == "---\r\na: 1\r\n---\r\n"
    assert render_head("not a head", {"a": 1}) == "---\na: 1\n---\n"


def test_bom_crlf_and_final_delimiter_survive_edits_and_regeneration() -> None:
    assert render_head("\ufeff---\r\na: [\r\n---\r\n", {"b": 1}) == "\ufeff---\r\nb: 1\r\n---\r\n"
    assert (
        render_head("\ufeff---\r\na: 1\r\n---\r\n", {"a": 2, "b": "x"})
        == "\ufeff---\r\na: 2\r\nb: x\r\n---\r\n"
    )
    assert render_head("---\na: 1\n---", {"a": 1, "b": "x"}) == "---\na: 1\nb: x\n---"


def test_root_flow_mapping_is_regenerated() -> None:
    assert render_head("---\n{a: 1, b: 2}\n---\n", {"a": 1, "b": 3}) == "---\na: 1\nb: 3\n---\n"


def test_merge_keys_fall_back_to_a_correct_regeneration() -> None:
    template = "---\nbase: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n---\n"
    fields = fields_of(template)
    fields["m"]["y"] = 3
    result = render_head(template, fields)
    assert values.same(parse_head(result), fields)


def test_aliased_value_changes_read_back_exactly() -> None:
    template = "---\nbase: &b {x: 1}\ncopy: *b\nother: 1\n---\n"
    for fields in (
        {"base": {"x": 1}, "copy": {"x": 2}, "other": 1},
        {"base": {"x": 2}, "copy": {"x": 1}, "other": 1},
        {"base": {"x": 1}, "copy": {"x": 1}, "other": 2},
    ):
        assert values.same(parse_head(render_head(template, fields)), fields)


def test_unsupported_field_value_raises() -> None:
    with pytest.raises(values.UnsupportedValue):
        render_head(PLAN, {"a": b"bytes"})
    with pytest.raises(values.UnsupportedValue):
        render_head(PLAN, {"a": dt.datetime(2025, 1, 1, tzinfo=dt.timezone(dt.timedelta(0, 30)))})


def test_rendering_is_deterministic() -> None:
    fields = fields_of(PLAN)
    fields["owners"][0] = {"name": "Zed"}
    fields["new"] = {"b": 1, "a": [1.5, None]}
    first = render_head(PLAN, copy.deepcopy(fields))
    assert render_head(PLAN, copy.deepcopy(fields)) == first
    assert values.same(parse_head(first), fields)


# -- the emitter ----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["yes", "No", "on", "1", "0x1F", "1_000", "1:20", "1.5", ".inf", "null", "~", "", " lead",
     "trail ", "a: b", "a #b", "#c", "- x", "[x", "{x", "*x", "&x", "!x", "|", ">", "'q", '"q',
     "%x", "@x", "`x", "---", "...", "2025-01-12", "2025-01-12T01:15:00Z", "<<", "=", "x:",
     "tab\there", "nel\x85", "bom\ufeff"],
)  # fmt: skip
def test_strings_that_must_not_be_plain(text: str) -> None:
    assert not yamlemit.plain_ok(text)
    loaded = yaml.safe_load("v: " + yamlemit.scalar(text))
    assert loaded == {"v": text}


@pytest.mark.parametrize(
    "text", ["plain", "session-demo-124", "/Users/x/y", "naïve café", "a:b", "a#b", "x - y"]
)
def test_strings_that_stay_plain(text: str) -> None:
    assert yamlemit.scalar(text) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.9, "0.9"),
        (1e-05, "1.0e-05"),
        (1e16, "1.0e+16"),
        (-0.0, "-0.0"),
        (float("nan"), ".nan"),
        (float("-inf"), "-.inf"),
        (dt.datetime(2025, 1, 12, 1, 15, tzinfo=dt.UTC), "2025-01-12T01:15:00Z"),
        (dt.datetime(2025, 1, 12, 1, 15), "2025-01-12T01:15:00"),
        (
            dt.datetime(2025, 1, 12, 1, 15, tzinfo=dt.timezone(-dt.timedelta(hours=5))),
            "2025-01-12T01:15:00-05:00",
        ),
        (dt.date(2025, 1, 12), "2025-01-12"),
    ],
)
def test_scalar_spellings_reload_equal(value: Any, text: str) -> None:
    assert yamlemit.scalar(value) == text
    assert values.same(yaml.safe_load("v: " + text)["v"], value)


def test_long_keys_use_explicit_form() -> None:
    key = "k" * 1100
    fields = {key: [1, {key: "v"}], "after": {key: None}}
    head = render_head("", fields)
    assert values.same(parse_head(head), fields)
    assert values.same(
        parse_head(render_head("---\nx: []\n---\n", {"x": [{key: 1}]})), {"x": [{key: 1}]}
    )
    flow = render_head("---\nx: {}\n---\n", {"x": {key: 1}})
    assert values.same(parse_head(flow), {"x": {key: 1}})


# -- property tests ----------------------------------------------------------

KEYS = st.text(max_size=8) | st.sampled_from(
    ["id", "yes", "1", "null", "a: b", "#x", " lead", "-", "x:", "[a]", "?", "<<", "=", "a\nb"]
)
OFFSETS = st.integers(min_value=-1439, max_value=1439).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m))
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.text(alphabet="ab \n", max_size=12),
    st.dates(),
    st.datetimes(timezones=st.none() | st.just(dt.UTC) | OFFSETS),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
FIELDS = st.dictionaries(KEYS, VALUES, max_size=6)


def styled_entry(draw: st.DrawFn, key: str, value: Any) -> list[str]:
    """One top-level entry, written in one of several styles people use."""
    key_text = yamlemit.key_scalar(key)
    comment = draw(st.sampled_from(["", "  # note"]))
    if isinstance(value, dict) and value and draw(st.booleans()):
        indent = draw(st.sampled_from([2, 4]))
        return [f"{key_text}:{comment}", *yamlemit.mapping_lines(value, indent)]
    if isinstance(value, list) and value and draw(st.booleans()):
        indent = draw(st.sampled_from([0, 2, 4]))
        return [f"{key_text}:{comment}", *yamlemit.sequence_lines(value, indent)]
    if isinstance(value, str) and yamlemit.literal_ok(value) and draw(st.booleans()):
        header, below = yamlemit.literal(value, draw(st.sampled_from([2, 4])))
        return [f"{key_text}: {header}{comment}", *below]
    if value is None:
        text = draw(st.sampled_from(["", "null", "~"]))
    else:
        text = yamlemit.scalar(value, quote=draw(st.sampled_from(["", "'", '"'])))
    if not text:
        return [f"{key_text}:{comment}"]
    return [f"{key_text}:{draw(st.sampled_from([' ', '   ']))}{text}{comment}"]


@st.composite
def styled_heads(draw: st.DrawFn) -> tuple[str, dict[str, Any], list[tuple[int, int]]]:
    """A head in varied styles, its fields, and each entry's line span in the head."""
    fields = draw(FIELDS)
    lines: list[str] = []
    spans: list[tuple[int, int]] = []
    for key, value in fields.items():
        if draw(st.integers(0, 3)) == 0:
            lines.append(draw(st.sampled_from(["", "# c", "#"])))
        start = len(lines)
        lines.extend(styled_entry(draw, key, value))
        spans.append((start + 1, len(lines) + 1))  # +1: the opening delimiter line
    if draw(st.booleans()):
        lines.append("# the end")
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    head = "".join(line + newline for line in ["---", *lines, "---"])
    return head, fields, spans


@settings(max_examples=300, deadline=None)
@given(fields=FIELDS)
def test_fresh_heads_read_back_exactly(fields: dict[str, Any]) -> None:
    head = render_head("", fields)
    assert values.same(parse_head(head), fields)
    assert render_head(head, fields) is head


@settings(max_examples=300, deadline=None)
@given(case=styled_heads())
def test_styled_heads_are_left_alone(case: tuple[str, dict[str, Any], Any]) -> None:
    head, fields, _ = case
    assert values.same(parse_head(head), fields)
    assert render_head(head, fields) is head
    assert render_head(head, parse_head(head)) == head


@settings(max_examples=400, deadline=None)
@given(case=styled_heads(), data=st.data())
def test_styled_heads_change_one_entry_locally(
    case: tuple[str, dict[str, Any], list[tuple[int, int]]], data: st.DataObject
) -> None:
    head, fields, spans = case
    if not fields:
        return
    index = data.draw(st.integers(0, len(fields) - 1))
    key = list(fields)[index]
    new_fields = with_value(fields, key, data.draw(VALUES))
    result = render_head(head, new_fields)
    # Keys new to a nested mapping follow the keys it had: equal up to order.
    assert fields_equal(parse_head(result), new_fields)
    assert_only_lines_changed(head, result, *spans[index])


@settings(max_examples=200, deadline=None)
@given(case=styled_heads(), data=st.data())
def test_styled_heads_remove_and_add_entries_locally(
    case: tuple[str, dict[str, Any], list[tuple[int, int]]], data: st.DataObject
) -> None:
    head, fields, spans = case
    lines = head.splitlines(True)
    if fields:
        index = data.draw(st.integers(0, len(fields) - 1))
        key = list(fields)[index]
        smaller = {k: v for k, v in fields.items() if k != key}
        start, end = spans[index]
        result = render_head(head, smaller)
        assert result == "".join(lines[:start] + lines[end:])
    extra = data.draw(st.dictionaries(KEYS, VALUES, max_size=2))
    bigger = {**fields, **{k: v for k, v in extra.items() if k not in fields}}
    result = render_head(head, bigger)
    assert values.same(parse_head(result), bigger)
    # With no entries the new ones follow whatever comments are there.
    last = spans[-1][1] if spans else len(lines) - 1
    assert_only_lines_changed(head, result, last, last)


def key_sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: key_sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [key_sorted(v) for v in value]
    return value


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, 1.0),
        (1, True),
        (0, False),
        (0.0, -0.0),
        (None, ""),
        ("1", 1),
        (dt.date(2025, 1, 12), dt.datetime(2025, 1, 12)),
        (
            dt.datetime(2025, 1, 12, 1, tzinfo=dt.UTC),
            dt.datetime(2025, 1, 12, 2, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        ),
        (dt.datetime(2025, 1, 12, 1, tzinfo=dt.UTC), dt.datetime(2025, 1, 12, 1)),
        ([1], [1, 1]),
        ({"a": 1}, {"a": 1, "b": 1}),
        ({"a": 1}, [("a", 1)]),
    ],
)
def test_strictly_different_values(a: Any, b: Any) -> None:
    assert not fields_equal({"v": a}, {"v": b})
    assert not fields_equal({"v": b}, {"v": a})


@settings(max_examples=500, deadline=None)
@given(a=VALUES, b=VALUES)
def test_fields_equal_is_same_up_to_key_order(a: Any, b: Any) -> None:
    assert fields_equal({"v": a}, {"v": b}) == values.same(key_sorted(a), key_sorted(b))
    assert fields_equal({"v": a}, {"v": copy.deepcopy(a)})
    assert fields_equal({"v": a}, {"v": key_sorted(a)})
