"""Item documents are Yjs documents: the official ``yjs`` npm package reads and edits them.

Python seeds (and edits) an item, JavaScript reads it with an independent
implementation of the documented schema (``tests/js/schema.mjs``) and must see
the same item; JavaScript then edits it as a Yjs client would (random client
id, body index in UTF-16 units, the register protocol of ``fields.py``) and
Python must render exactly those edits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.jsyjs import JsYjs, js_yjs  # the fixture
from worksync_p2p.core import codec, values
from worksync_p2p.core.hlc import Hlc
from worksync_p2p.core.itemdoc import ItemDoc, Writer, genesis_update

__all__ = ["js_yjs"]

pytestmark = pytest.mark.js

CORPUS = sorted((Path(__file__).parent / "fixtures" / "corpus").glob("*.md"))
PY_PEER = "pypeer0000000000"
JS_PEER = "jspeer0000000000"
PY_MS = 1_700_000_000_000
JS_MS = PY_MS + 60_000

PY_FIELDS = """\
py_count: 7
py_ratio: 0.25
py_due: 2025-02-03
py_seen: 2025-02-03T04:05:06Z
py_tags: [alpha, beta]
review:
  by: py
  round: 2
  scores: {speed: 1.5, size: 10}
"""
PY_LINE = "Python was here: 🚀 naïve — 東京\n"


# -- helpers -----------------------------------------------------------


def strict(data: Any, *, ordered: bool = True) -> str:
    """JSON text that tells 1 from 1.0 and True (and, if ordered, key order)."""
    return json.dumps(data, ensure_ascii=False, sort_keys=not ordered)


def seeded(path: Path, client_id: int = 4242) -> ItemDoc:
    parsed = codec.parse(path.read_bytes(), path.name)
    item = ItemDoc.new(client_id)
    item.apply_remote(genesis_update(path.stem, parsed, path.name))
    return item


def with_fields(text: str, lines: str) -> str:
    """``text`` with frontmatter ``lines`` added at the end of its frontmatter."""
    if text.startswith("---\n"):
        end = text.index("\n---\n", 3) + 1
        return text[:end] + lines + text[end:]
    return "---\n" + lines + "---\n" + text


def python_edited(path: Path) -> ItemDoc:
    """A seeded item after a Python edit adding typed fields and a line of text."""
    item = seeded(path)
    text = path.read_text(encoding="utf-8")
    text = with_fields(text, PY_FIELDS)
    text += ("" if text.endswith("\n") else "\n") + PY_LINE
    writer = Writer(PY_PEER, Hlc(PY_PEER), PY_MS)
    assert item.ingest(codec.parse(text.encode(), path.name), path.name, writer) is not None
    assert item.render() == text
    return item


def utf16_index(text: str, index: int) -> int:
    """The UTF-16 code unit offset (what JavaScript and Yjs count) of a str index."""
    return len(text[:index].encode("utf-16-le")) // 2


def assert_same_item(js: dict[str, Any], item: ItemDoc) -> None:
    texts = item.head_body()
    assert texts is not None
    assert js["key"] == item.key
    assert js["genesis"] == item.active_genesis()
    assert js["path"] == item.path()
    assert js["alive"] is item.alive()
    assert (js["head"], js["body"]) == texts
    assert strict(js["fields"]) == strict(values.to_json(item.frontmatter()))


def rendered(item: ItemDoc) -> codec.ParsedItem:
    text = item.render()
    assert text is not None
    return codec.parse(text.encode(), "rendered.md")


def js_set(path: list[str], value: Any, counter: int = 0) -> dict[str, Any]:
    return {
        "op": "set",
        "path": path,
        "value": value,
        "writer": JS_PEER,
        "ms": JS_MS,
        "counter": counter,
    }


# -- JavaScript reads what Python wrote ----------------------------------


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_js_reads_the_seeded_item(js_yjs: JsYjs, path: Path) -> None:
    item = seeded(path)
    js = js_yjs.read(item.doc.get_update())
    assert_same_item(js, item)
    assert js["key"] == path.stem
    assert js["path"] == path.name
    assert item.render() == path.read_text(encoding="utf-8")


def test_js_reads_the_winning_genesis_of_two_seeds(js_yjs: JsYjs) -> None:
    (path,) = (p for p in CORPUS if p.name == "task-fsnotify-research.md")
    text = path.read_text(encoding="utf-8")
    other = text.replace("priority: 2", "priority: 1").replace("- [ ] FSEvents", "- [x] FSEvents")
    item = ItemDoc.new(4242)
    for seed_text in (text, other):
        parsed = codec.parse(seed_text.encode(), path.name)
        item.apply_remote(genesis_update(path.stem, parsed, path.name))
    assert len(item.geneses()) == 2

    js = js_yjs.read(item.doc.get_update())

    assert_same_item(js, item)
    assert js["head"] + js["body"] in {text, other}
    assert len(item.seed_conflicts()) == 1


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_js_reads_a_python_edit(js_yjs: JsYjs, path: Path) -> None:
    item = python_edited(path)
    js = js_yjs.read(item.doc.get_update())
    assert_same_item(js, item)
    assert js["body"].endswith(PY_LINE)
    fields = js["fields"]
    assert strict([fields["py_count"], fields["py_ratio"]]) == "[7, 0.25]"
    assert fields["py_due"] == {"$date": "2025-02-03"}
    assert fields["py_seen"] == {"$datetime": "2025-02-03T04:05:06+00:00"}
    assert fields["py_tags"] == ["alpha", "beta"]
    assert strict(fields["review"]) == strict(
        {"by": "py", "round": 2, "scores": {"speed": 1.5, "size": 10}}
    )


# -- Python renders what JavaScript wrote --------------------------------


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_python_renders_js_edits(js_yjs: JsYjs, path: Path) -> None:
    item = python_edited(path)
    texts = item.head_body()
    assert texts is not None
    body = texts[1]
    after_rocket = body.index("🚀") + 1  # every non-ASCII character of the file is before
    inserted = "[JS ✓ 𝄞]"
    expected_body = body[:after_rocket] + inserted + body[after_rocket:]
    expected_fields = values.to_json(item.frontmatter())
    expected_fields["status"] = "done"
    expected_fields["js_count"] = 3
    expected_fields["js_ratio"] = 0.5
    expected_fields["js_due"] = {"$date": "2025-03-04"}
    expected_fields["py_tags"].append("gamma")
    expected_fields["review"]["by"] = "js"
    expected_fields["review"]["scores"]["speed"] = 2.25
    expected_fields["review"]["extra"] = {"level": 3}

    update = js_yjs.edit(
        item.doc.get_update(),
        [
            {"op": "insert", "index": utf16_index(body, after_rocket), "text": inserted},
            js_set(["status"], "done"),
            js_set(["js_count"], 3),
            js_set(["js_ratio"], 0.5),
            js_set(["js_due"], {"$date": "2025-03-04"}),
            {"op": "append", "path": ["py_tags"], "value": "gamma"},
            js_set(["review", "by"], "js"),
            js_set(["review", "scores", "speed"], 2.25),
            js_set(["review", "extra"], {"$node": "map"}),
            js_set(["review", "extra", "level"], 3),
        ],
    )
    assert item.apply_remote(update) is None

    assert item.head_body() == (texts[0], expected_body)
    assert strict(values.to_json(item.frontmatter()), ordered=False) == strict(
        expected_fields, ordered=False
    )
    assert list(item.field_conflicts()) == []
    again = rendered(item)
    assert again.body == expected_body
    assert strict(values.to_json(again.fields), ordered=False) == strict(
        expected_fields, ordered=False
    )
    assert again.fields is not None
    assert isinstance(again.fields["js_count"], int)
    assert isinstance(again.fields["review"]["extra"]["level"], int)
    assert isinstance(again.fields["js_ratio"], float)
    # The rendered file is what the document stands for: ingesting it changes nothing.
    writer = Writer(PY_PEER, Hlc(PY_PEER), JS_MS + 1)
    assert item.ingest(again, path.name, writer) is None
    # ...and JavaScript, reading Python's merged state, agrees with Python.
    assert_same_item(js_yjs.read(item.doc.get_update()), item)


def test_js_insert_after_unicode_in_a_seeded_plan(js_yjs: JsYjs) -> None:
    (path,) = (p for p in CORPUS if p.name == "plan-multi-session.md")
    item = seeded(path)
    texts = item.head_body()
    assert texts is not None
    head, body = texts
    anchor = "naïve café — 東京 ✅"
    at = body.index(anchor) + len(anchor)
    assert utf16_index(body, at) != len(body[:at].encode())  # UTF-8 would be wrong
    milestone = {"name": "wan sync", "done": False}

    update = js_yjs.edit(
        item.doc.get_update(),
        [
            {"op": "insert", "index": utf16_index(body, at), "text": " (edited in JS)"},
            {"op": "append", "path": ["tags"], "value": "interop"},
            {"op": "append", "path": ["milestones"], "value": milestone},
            js_set(["schedule"], "later"),
            js_set(["empty_field"], 0),
        ],
    )
    item.apply_remote(update)

    again = rendered(item)
    assert again.body == body.replace(anchor, anchor + " (edited in JS)", 1)
    assert again.fields is not None
    assert again.fields["tags"] == ["interop"]
    assert again.fields["milestones"][-1] == milestone
    assert len(again.fields["milestones"]) == 3
    assert again.fields["schedule"] == "later"
    assert strict(again.fields["empty_field"]) == "0"
    original = codec.parse(path.read_bytes(), path.name).fields
    assert original is not None
    unchanged = {k: v for k, v in original.items() if k not in {"tags", "milestones", "schedule"}}
    unchanged.pop("empty_field")
    for name, value in unchanged.items():
        assert values.same(again.fields[name], value), name
    assert item.head_body() == (head, again.body)


def test_concurrent_js_and_python_sets_agree_on_the_winner(js_yjs: JsYjs) -> None:
    (path,) = (p for p in CORPUS if p.name == "task-fsnotify-research.md")
    item = seeded(path)
    base = item.doc.get_update()
    js_update = js_yjs.edit(base, [js_set(["status"], "blocked")])  # later stamp
    text = path.read_text(encoding="utf-8").replace("status: in_progress", "status: done")
    writer = Writer(PY_PEER, Hlc(PY_PEER), PY_MS)
    assert item.ingest(codec.parse(text.encode(), path.name), path.name, writer) is not None

    item.apply_remote(js_update)

    assert item.frontmatter()["status"] == "blocked"
    (conflict,) = item.field_conflicts()
    assert conflict.path == ("status",)
    assert [values.decode(c.value) for c in conflict.losers] == ["done"]
    js = js_yjs.read(item.doc.get_update())
    assert_same_item(js, item)
    assert js["fields"]["status"] == "blocked"
