"""The canonical JSON spelling: its shortcuts spell exactly what the encoder spells."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from worksync_p2p.core import values

ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(JSON)
def test_dumps_spells_any_json_data_as_the_encoder_does(data: Any) -> None:
    assert values.dumps(data) == ENCODER.encode(data)


@given(st.text(), st.text())
def test_dumps_spells_one_key_mappings_of_text_as_the_encoder_does(key: str, value: str) -> None:
    assert values.dumps({key: value}) == ENCODER.encode({key: value})
