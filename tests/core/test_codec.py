"""Parsing work item files: byte-exact split, typed fields, one error type."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worksync_p2p.core import codec, values
from worksync_p2p.core.codec import (
    DEFAULT_MAX_BYTES,
    HeadError,
    ItemError,
    ParsedItem,
    parse,
    parse_head,
    render,
)

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "corpus"
FILES = sorted(CORPUS.glob("*.md"))
WITH_FRONTMATTER = [p for p in FILES if p.read_bytes().startswith(b"---")]
NAME = "item.md"


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def fails(text: str | bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> ItemError:
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(ItemError) as caught:
        parse(data, NAME, max_bytes)
    error = caught.value
    assert error.name == NAME
    assert str(error) == f"{NAME}: {error.reason}"
    assert "\n" not in str(error)
    return error


def test_corpus_is_present() -> None:
    assert len(FILES) >= 4
    assert len(WITH_FRONTMATTER) >= 3


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_corpus_round_trips_byte_for_byte(path: Path) -> None:
    data = path.read_bytes()
    item = parse(data, path.name)
    assert render(item).encode() == data
    assert render(item) == item.head + item.body


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_corpus_round_trips_with_crlf(path: Path) -> None:
    data = crlf(path.read_bytes())
    item = parse(data, path.name)
    assert render(item).encode() == data
    lf_item = parse(path.read_bytes(), path.name)
    assert values.same(item.fields, lf_item.fields)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_corpus_round_trips_with_bom_and_without_final_newline(path: Path) -> None:
    data = b"\xef\xbb\xbf" + path.read_bytes().rstrip(b"\n")
    item = parse(data, path.name)
    assert render(item).encode() == data
    assert values.same(item.fields, parse(path.read_bytes(), path.name).fields)


@pytest.mark.parametrize("path", WITH_FRONTMATTER, ids=lambda p: p.name)
def test_head_holds_the_delimiters_and_parses_to_the_fields(path: Path) -> None:
    item = parse(path.read_bytes(), path.name)
    assert item.head.startswith("---\n")
    assert item.head.endswith("\n---\n")
    assert item.head.count("\n---\n") == 1
    assert values.same(parse_head(item.head), item.fields)


def test_file_without_frontmatter_is_all_body() -> None:
    data = (CORPUS / "note-no-frontmatter.md").read_bytes()
    item = parse(data, "note.md")
    assert item == ParsedItem(head="", body=data.decode(), fields=None)


def test_fenced_yaml_in_the_body_stays_in_the_body() -> None:
    item = parse((CORPUS / "plan-multi-session.md").read_bytes(), "plan.md")
    assert item.fields is not None
    assert "not" not in item.fields
    assert "```yaml\n---\nnot: frontmatter" in item.body
    assert item.body.startswith("\nBody with **markdown**")


def test_typed_values_of_the_real_proposal() -> None:
    item = parse((CORPUS / "proposal-real-time-sync-demo.md").read_bytes(), "p.md")
    assert item.fields is not None
    assert item.fields["created_at"] == dt.datetime(2025, 1, 12, 1, 15, tzinfo=dt.UTC)
    assert item.fields["git_context"]["branch"] == "visualizer"
    assert item.fields["metadata"]["dependencies"] == [
        "markdown-system-completion",
        "websocket-infrastructure",
    ]


def test_typed_values_of_the_real_task() -> None:
    item = parse((CORPUS / "task-fsnotify-research.md").read_bytes(), "t.md")
    assert item.fields is not None
    assert values.same(item.fields["priority"], 2)
    assert values.same(item.fields["estimate_hours"], 3.5)
    assert values.same(item.fields["blocked"], False)


def test_empty_frontmatter_has_empty_fields() -> None:
    item = parse(b"---\n---\nbody\n", NAME)
    assert item == ParsedItem(head="---\n---\n", body="body\n", fields={})


def test_comment_only_frontmatter_has_empty_fields() -> None:
    item = parse(b"---\n# nothing yet\n---\n", NAME)
    assert item.fields == {}
    assert item.body == ""


def test_dots_close_the_frontmatter() -> None:
    item = parse(b"---\na: 1\n...\nbody\n", NAME)
    assert item.head == "---\na: 1\n...\n"
    assert item.fields == {"a": 1}


def test_delimiters_may_carry_trailing_blanks() -> None:
    item = parse(b"---  \na: 1\n--- \t\nbody", NAME)
    assert item.head == "---  \na: 1\n--- \t\n"
    assert item.body == "body"


def test_closing_delimiter_at_end_of_file() -> None:
    item = parse(b"---\na: 1\n---", NAME)
    assert item == ParsedItem(head="---\na: 1\n---", body="", fields={"a": 1})


def test_leading_whitespace_of_the_body_is_kept() -> None:
    item = parse(b"---\na: 1\n---\n\n  \n  indented\n", NAME)
    assert item.body == "\n  \n  indented\n"


def test_bom_belongs_to_the_head() -> None:
    item = parse("\ufeff---\r\na: 1\r\n---\r\nbody\r\n".encode(), NAME)
    assert item.head == "\ufeff---\r\na: 1\r\n---\r\n"
    assert item.body == "body\r\n"
    assert item.fields == {"a": 1}


@pytest.mark.parametrize(
    "text",
    [
        "---\na: 1\n",  # never closed
        "---",
        "\n---\na: 1\n---\n",  # first line is not a delimiter
        " ---\na: 1\n---\n",
        "----\na: 1\n---\n",
        "--- a: 1\n---\n",
        "# title\n---\na: 1\n---\n",
        "",
    ],
)
def test_no_frontmatter_means_all_body(text: str) -> None:
    item = parse(text.encode(), NAME)
    assert item == ParsedItem(head="", body=text, fields=None)


def test_indented_delimiter_inside_frontmatter_does_not_close_it() -> None:
    item = parse(b"---\na: |\n  ---\n  x\n---\nbody\n", NAME)
    assert item.fields == {"a": "---\nx\n"}
    assert item.body == "body\n"


def test_invalid_yaml_names_the_line() -> None:
    error = fails("---\nid: x\ntype: task\nsummary: [unclosed\n---\n")
    # The list is still open when the closing delimiter line ends the YAML.
    assert error.reason.startswith("invalid YAML at line 5: ")


def test_invalid_yaml_mapping_in_scalar_names_its_line() -> None:
    error = fails("---\nid: x\nsummary: a: b\n---\n")
    assert "line 3" in error.reason


def test_tab_indentation_is_invalid_yaml() -> None:
    error = fails("---\na:\n\tb: 1\n---\n")
    assert "invalid YAML at line 3" in error.reason


@pytest.mark.parametrize("yaml_text", ["- a\n- b\n", "just text\n", "42\n", "null\n"])
def test_frontmatter_that_is_not_a_mapping(yaml_text: str) -> None:
    error = fails(f"---\n{yaml_text}---\n")
    assert "not a mapping" in error.reason


def test_duplicate_key_is_named_with_its_line() -> None:
    error = fails("---\nid: x\ntype: task\nid: y\n---\n")
    assert error.reason == "duplicate key 'id' at line 4"


def test_duplicate_nested_key_is_named_with_its_line() -> None:
    error = fails("---\nlinks:\n  parent: a\n  parent: b\n---\n")
    assert error.reason == "duplicate key 'parent' at line 4"


def test_duplicate_key_in_flow_mapping() -> None:
    error = fails("---\nm: {a: 1, a: 2}\n---\n")
    assert "duplicate key 'a'" in error.reason


@pytest.mark.parametrize("key", ["1", "null", "true", "2025-01-12", "[a, b]", "{a: 1}"])
def test_non_string_key(key: str) -> None:
    error = fails(f"---\n{key}: v\n---\n")
    assert "non-string key" in error.reason
    assert "line 2" in error.reason


def test_quoted_numeric_key_is_a_string() -> None:
    assert parse(b'---\n"1": v\n---\n', NAME).fields == {"1": "v"}


@pytest.mark.parametrize(
    ("value", "word"),
    [
        ("!!binary aGVsbG8=", "binary"),
        ("!!set {a, b}", "set"),
        ("!!omap [a: 1]", "omap"),
        ("!!pairs [a: 1]", "pairs"),
        ("!custom thing", "!custom"),
        ("!!python/object:os.system x", "python"),
    ],
)
def test_unsupported_tag(value: str, word: str) -> None:
    error = fails(f"---\nid: x\ndata: {value}\n---\n")
    assert "unsupported" in error.reason
    assert word in error.reason


def test_impossible_date_is_unsupported() -> None:
    error = fails("---\ndue: 2025-02-30\n---\n")
    assert "unsupported value" in error.reason


def test_huge_integer_is_unsupported() -> None:
    error = fails("---\na: " + "9" * 5000 + "\n---\n")
    assert error.reason.startswith("unsupported value: ")


def test_not_utf8() -> None:
    error = fails(b"---\nsummary: caf\xe9\n---\n")
    assert "not UTF-8" in error.reason


def test_nul_byte_is_binary() -> None:
    error = fails(b"---\na: 1\n---\nbody\x00more\n")
    assert "binary" in error.reason


def test_png_is_binary() -> None:
    error = fails(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert "binary" in error.reason


def test_over_the_size_limit() -> None:
    error = fails(b"x" * 101, max_bytes=100)
    assert "over the limit of 100" in error.reason


def test_exactly_the_size_limit_is_fine() -> None:
    assert parse(b"x" * 100, NAME, max_bytes=100).body == "x" * 100


def test_deep_flow_nesting_is_refused_without_crashing() -> None:
    depth = 50_000
    error = fails("---\na: " + "[" * depth + "]" * depth + "\n---\n")
    # Our own depth check, or libyaml's (newer builds stop deep flow nesting
    # themselves, with "exceeded maximum nesting depth"): both a one-line refusal.
    assert "nested deeper" in error.reason or "maximum nesting depth" in error.reason


def test_deep_compact_sequences_are_refused_without_crashing() -> None:
    error = fails("---\na:\n" + "- " * 50_000 + "x\n---\n")
    assert "nested deeper" in error.reason


def test_moderate_nesting_is_fine() -> None:
    item = parse(("---\na: " + "[" * 50 + "]" * 50 + "\n---\n").encode(), NAME)
    assert item.fields is not None


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    error = fails("---\n" + "\n".join(lines) + "\n---\n")
    assert "aliases expand" in error.reason


def test_recursive_alias_is_refused() -> None:
    error = fails("---\na: &a [1, *a]\n---\n")
    assert "recursive alias" in error.reason


def test_small_aliases_are_fine() -> None:
    item = parse(b"---\nbase: &b {x: 1}\ncopy: *b\n---\n", NAME)
    assert item.fields == {"base": {"x": 1}, "copy": {"x": 1}}


def test_merge_keys_are_fine() -> None:
    item = parse(b"---\nbase: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n---\n", NAME)
    assert item.fields == {"base": {"x": 1, "y": 2}, "m": {"x": 1, "y": 3}}


def test_control_character_is_invalid_yaml() -> None:
    error = fails("---\nsummary: caf\u00e9 \u00e9t\u00e9\nb: x\x07y\n---\n")
    assert error.reason == "invalid YAML at line 3: unacceptable character #x0007"


def test_parse_head_of_empty_string_is_none() -> None:
    assert parse_head("") is None


def test_parse_head_raises_a_value_error() -> None:
    with pytest.raises(ValueError, match="duplicate key 'a' at line 3"):
        parse_head("---\na: 1\na: 2\n---\n")
    assert issubclass(HeadError, ValueError)


def test_parse_head_refuses_what_is_not_a_head() -> None:
    with pytest.raises(HeadError):
        parse_head("a: 1\n")
    with pytest.raises(HeadError):
        parse_head("---\na: 1\n---\nbody\n")


def test_item_error_carries_name_and_reason() -> None:
    error = ItemError("dir/x.md", "bad thing")
    assert (error.name, error.reason, str(error)) == (
        "dir/x.md",
        "bad thing",
        "dir/x.md: bad thing",
    )


def parse_or_error(data: bytes, name: str) -> ParsedItem | ItemError:
    try:
        return parse(data, name)
    except ItemError as error:
        return error


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_give_an_item_or_an_item_error(data: bytes) -> None:
    outcome = parse_or_error(data, NAME)
    if isinstance(outcome, ItemError):
        assert "\n" not in outcome.reason
    else:
        assert render(outcome).encode() == data


@settings(max_examples=300, deadline=None)
@given(
    path=st.sampled_from(WITH_FRONTMATTER),
    position=st.integers(min_value=0, max_value=600),
    junk=st.text(alphabet="-:[]{}#&*!|>'\"%@` \n\tab1", max_size=6),
)
def test_corrupted_corpus_gives_an_item_or_an_item_error(
    path: Path, position: int, junk: str
) -> None:
    text = path.read_text()
    data = (text[:position] + junk + text[position:]).encode()
    outcome = parse_or_error(data, path.name)
    if isinstance(outcome, ItemError):
        assert outcome.name == path.name
        assert "\n" not in outcome.reason
    else:
        assert render(outcome).encode() == data
        values.check(outcome.fields)


# -- the direct construction agrees with PyYAML's ------------------------------------

PLAIN_CASES = [
    "a: 1\nb: 1.5\nc: true\nd: ~\ne: 2025-01-02\nf: 2025-01-02T03:04:05Z\n",
    "list: [1, two, 3.0, null, [nested]]\nmap: {x: {y: [z]}}\n",
    "'=': value key quoted\n",
    "=: value key plain\n",
    "k: !!str 12\nn: !!int '7'\nf: !!float '1'\n",
    "k: !custom x\n",
    "1: non-string key\n",
    "a: 1\na: 2\n",
    "outer:\n  a: 1\n  a: 2\n",
    "s: !!set {a, b}\n",
    "big: 123456789012345678901234567890\n",
    "empty_map: {}\nempty_list: []\nblank:\n",
    "octal: 0o17\nhex: 0x1F\nsexagesimal: 1:30\ninf: .inf\nnan_is_float: .nan\n",
]


def construct_both(text: str) -> tuple[object, object]:
    """(direct, generic) construction of one YAML text, or the error each raised."""
    results: list[object] = []
    for direct in (True, False):
        loader = codec._Loader(text)
        try:
            root = loader.get_single_node()
            assert root is not None
            build = loader.construct_plain if direct else loader.construct_document
            results.append(values.encode(build(root)))
        except Exception as error:  # the error, its type and message, is what is compared
            results.append((type(error), str(error)))
        finally:
            loader.dispose()
    return results[0], results[1]


@pytest.mark.parametrize("text", PLAIN_CASES)
def test_direct_construction_gives_what_pyyaml_gives(text: str) -> None:
    direct, generic = construct_both(text)
    assert direct == generic


@pytest.mark.parametrize("path", WITH_FRONTMATTER, ids=lambda p: p.name)
def test_direct_construction_of_the_corpus_heads(path: Path) -> None:
    item = parse(path.read_bytes(), path.name)
    yaml_text = item.head.split("\n", 1)[1].rsplit("---", 1)[0]
    direct, generic = construct_both(yaml_text)
    assert direct == generic


def _corpus_heads() -> list[tuple[str, dict[str, Any] | None]]:
    out = []
    for path in sorted(CORPUS.glob("*.md")):
        item = parse(path.read_bytes(), path.name)
        out.append((item.head, item.fields))
    return out


def test_a_head_rendered_once_is_the_head_the_cache_renders() -> None:
    """render_head_once (a worker's new documents) skips the cache, nothing else:
    unchanged, changed, added, removed and unreadable fields alike."""
    cases = _corpus_heads()
    assert cases
    for head, fields in cases:
        variants: list[dict[str, Any] | None] = [fields, None]
        if fields:
            first = next(iter(fields))
            variants += [
                {**fields, first: "changed"},
                {**fields, "added_key": [1, 2.5, True]},
                {k: v for k, v in fields.items() if k != first},
            ]
        for wanted in variants:
            assert codec.render_head_once(head, wanted) == codec.render_head(head, wanted)
    broken = "---\nstatus: open\nstatus: done\n---\n"  # the key twice, as a merge can leave
    assert codec.render_head_once(broken, {"status": "x"}) == codec.render_head(
        broken, {"status": "x"}
    )
