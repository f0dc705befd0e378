"""An item nobody has written to since its genesis renders as its head and body.

The shortcut (``ItemDoc._pristine``) must give what the full render gives:
checked here for the corpus and for heads the full render treats specially.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pycrdt import Doc, Text

from tests.core.replicas import parse
from worksync_p2p.core import yupdate
from worksync_p2p.core.hlc import Hlc
from worksync_p2p.core.itemdoc import ItemDoc, Writer, genesis_client, genesis_update

CORPUS = Path(__file__).parent.parent / "fixtures" / "corpus"

ODD = {
    "crlf": "---\r\nid: odd\r\nstatus: todo\r\n---\r\nbody\r\n",
    "comments": "---\n# a comment\nid: odd  # why\nstatus:   todo\n---\nbody\n",
    "anchors": "---\nid: odd\nbase: &b {x: 1}\nother: *b\n---\nbody\n",
    "merge key": "---\nid: odd\nbase: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n---\nbody\n",
    "no frontmatter": "just a body\n---\nwith a rule\n",
    "empty frontmatter": "---\n---\nbody\n",
    "flow and quotes": "---\nid: 'odd'\ntags: [a, \"b c\"]\nn: 0x1F\nf: 1.0\n---\n",
    "dates": "---\nid: odd\nwhen: 2025-01-02\nat: 2025-01-02T03:04:05+01:00\n---\nb\n",
    "unicode and blanks": "---\nid: odd\ntitle: ça   va \n\n---\n\n  body  \n",
    "block scalar": "---\nid: odd\nnote: |\n  two\n  lines\n---\nbody\n",
    "null and bool": "---\nid: odd\nx: ~\ny: yes\nz: False\n---\n",
}

TEXTS = {p.name: p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.md"))} | ODD


def _seeded(text: str) -> ItemDoc:
    item = ItemDoc.new(7)
    item.doc.apply_update(genesis_update("odd", parse(text, "odd.md"), "odd.md"))
    return item


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_a_seeded_item_renders_as_the_full_render_would(name: str) -> None:
    item = _seeded(TEXTS[name])
    assert item._pristine(item.geneses()[0])
    head_body = item.head_body()
    assert head_body is not None
    full = item._render_fields(*head_body)
    assert item.render() == full
    assert full == TEXTS[name].replace("\r\n", "\n") or full == TEXTS[name]


def test_an_item_written_to_since_its_genesis_is_not_pristine() -> None:
    item = _seeded(ODD["comments"])
    item.ingest(parse(ODD["comments"].replace("todo", "done"), "odd.md"), "odd.md", _writer())
    assert not item._pristine(item.geneses()[0])
    assert "status:   done" in (item.render() or "")


def test_a_deletion_by_the_genesis_writer_itself_ends_the_shortcut() -> None:
    item = _seeded(ODD["comments"])
    genesis = item.geneses()[0]
    # Yjs attributes a deletion to the deleted struct's writer: a delete-only
    # update names no new writer, only the delete set shows it.
    other: Doc[Text] = Doc(client_id=genesis_client(genesis))
    other.apply_update(item.doc.get_update())
    other.get(f"body:{genesis}", type=Text).__delitem__(slice(0, 2))
    item.doc.apply_update(other.get_update(item.doc.get_state()))
    assert yupdate.sole_writer(item.doc) is None
    assert not item._pristine(genesis)
    assert (item.render() or "").endswith("\ndy\n")


def test_the_sole_writer_of_a_document() -> None:
    doc: Doc[Text] = Doc(client_id=300)
    assert yupdate.sole_writer(doc) is None  # no writer at all
    doc.get("t", type=Text).insert(0, "abc")
    assert yupdate.sole_writer(doc) == 300
    later: Doc[Text] = Doc(client_id=5)
    later.apply_update(doc.get_update())
    later.get("t", type=Text).insert(3, "d")
    assert yupdate.sole_writer(later) is None  # two writers


def _writer() -> Writer:
    return Writer("peer-b", Hlc("peer-b"), 2000)
