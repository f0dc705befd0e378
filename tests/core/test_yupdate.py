"""yupdate.holds: a forwarded copy is recognised; anything new, or pending, is not."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Text

from worksync_p2p.core import yupdate


def _edit(doc: Doc[Any], change: Any) -> bytes:
    before = doc.get_state()
    change(doc.get("t", type=Text))
    return doc.get_update(before)


def _pair() -> tuple[Doc[Any], Doc[Any], bytes]:
    a: Doc[Any] = Doc(client_id=1)
    seed = _edit(a, lambda t: t.insert(0, "hello world"))
    b: Doc[Any] = Doc(client_id=2)
    b.apply_update(seed)
    return a, b, seed


def test_a_copy_of_what_the_document_has_is_held() -> None:
    a, b, seed = _pair()
    assert yupdate.holds(b, seed)
    assert yupdate.holds(a, a.get_update())
    delete = _edit(a, lambda t: t.__delitem__(slice(0, 2)))
    b.apply_update(delete)
    assert yupdate.holds(b, delete)
    assert yupdate.holds(b, seed)  # an older update: its (smaller) delete set is covered


def test_an_insertion_or_a_deletion_the_document_lacks_is_not_held() -> None:
    a, b, _ = _pair()
    insert = _edit(a, lambda t: t.insert(5, ","))
    assert not yupdate.holds(b, insert)
    b.apply_update(insert)
    delete = _edit(a, lambda t: t.__delitem__(slice(0, 2)))  # only a delete set
    assert not yupdate.holds(b, delete)
    b.apply_update(delete)
    assert yupdate.holds(b, delete)
    assert str(b.get("t", type=Text)) == "llo, world"


def test_a_pending_update_is_not_held() -> None:
    a, _, _ = _pair()
    first = _edit(a, lambda t: t.insert(0, "x"))
    second = _edit(a, lambda t: t.insert(0, "y"))
    c: Doc[Any] = Doc(client_id=3)
    assert not yupdate.holds(c, second)
    c.apply_update(second)  # waits for its dependencies: must still be stored
    assert not yupdate.holds(c, second)
    assert not yupdate.holds(c, first)


def test_garbage_raises_value_error() -> None:
    with pytest.raises(ValueError, match="diff"):
        yupdate.holds(Doc(), b"\xff\xff garbage")
