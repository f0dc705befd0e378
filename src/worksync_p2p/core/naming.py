"""Item keys and new item ids.

An item with an ``id:`` in its frontmatter is tracked by that id, so a move or
rename keeps its history; a file without one is tracked by its path.

New ids must not collide across clones that create items while apart, so a
sequence number is out; a short random suffix (from the caller's
``random.Random``, so simulations stay reproducible) makes a collision among
a team's items vanishingly unlikely while keeping ids readable.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

PATH_KEY_PREFIX = "path:"
ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i: ids get read aloud
ID_SUFFIX_LEN = 6
SLUG_MAX = 40
_SLUG_DROP = re.compile(r"[^a-z0-9]+")


def item_key(fields: Mapping[str, Any] | None, relpath: str) -> str:
    """The key a file's item is tracked by."""
    item_id = (fields or {}).get("id")
    if isinstance(item_id, str) and item_id.strip():
        return item_id.strip()
    return PATH_KEY_PREFIX + relpath


def slug(text: str) -> str:
    words = _SLUG_DROP.sub("-", text.lower()).strip("-")
    return words[:SLUG_MAX].rstrip("-") or "item"


def new_item_id(item_type: str, summary: str, rng: random.Random) -> str:
    """``<type>-<slug of summary>-<random suffix>``, e.g. ``task-fix-login-7kq2mx``."""
    suffix = "".join(rng.choice(ID_ALPHABET) for _ in range(ID_SUFFIX_LEN))
    return f"{slug(item_type)}-{slug(summary)}-{suffix}"
