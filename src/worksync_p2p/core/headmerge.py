"""Mend a YAML head template that a character merge left unreadable.

The head template is the frontmatter as written (a Y.Text): it lends each
field its spelling, while the values come from the merge rules. Two peers
editing one field at once each rewrite its line, and the character merge keeps
both: the key appears twice (YAML refuses that), or two edits of one flow list
interleave into something that is not YAML at all (``tags: [] []``), or a
line loses its line break to a neighbour's. Without this, the render would
regenerate the whole frontmatter, dropping comments, quoting and list styles
nobody changed. Instead:

1. all but the first entry of a duplicated key are dropped (at any depth);
2. a top-level entry that does not read as one mapping entry on its own is
   dropped, with any stray line at column 0;

and the patcher then writes the wanted value of every dropped key back in
its own style, leaving every other line alone. Every peer holds the same
merged template, so every peer drops the same lines.

Line-based and conservative: a line dropped by mistake (a look-alike inside a
multi-line scalar) makes the render read back wrong, and the caller then
regenerates, as it would have without this.
"""

from __future__ import annotations

import re

import yaml as pyyaml

# A block-mapping key at the start of a line: plain, or single/double quoted.
_KEY = re.compile(
    r"(?P<indent> *)(?P<key>\"(?:[^\"\\]|\\.)*\"|'(?:[^']|'')*'|[^\s#'\"?:\-{\[][^#]*?)"
    r"[ \t]*:(?:[ \t]+(?P<value>[^\n]*)|[ \t]*\r?\n|$)"
)
_BLOCK_SCALAR = re.compile(r"[|>][-+0-9]*[ \t]*(#.*)?\r?\n?$")


def mend(yaml: str) -> str:
    """``yaml`` without duplicate keys and without top-level entries that do not read."""
    return drop_unreadable_entries(drop_duplicate_keys(yaml))


def drop_unreadable_entries(yaml: str) -> str:
    """Only the top-level entries (with their lines below) that read on their own."""
    kept: list[str] = []
    for chunk in _top_level_chunks(yaml):
        first = chunk[0]
        if not first.strip() or first.startswith("#") or _reads_as_one_entry("".join(chunk)):
            kept += chunk
    return "".join(kept)


def _top_level_chunks(yaml: str) -> list[list[str]]:
    """Lines grouped by the column-0 line they follow (blank and comment lines alone)."""
    chunks: list[list[str]] = []
    for line in yaml.splitlines(keepends=True):
        lone = not line.strip() or line.startswith("#")
        if chunks and not lone and line[:1] in (" ", "\t"):
            chunks[-1].append(line)
        else:
            chunks.append([line])
    return chunks


def _reads_as_one_entry(text: str) -> bool:
    try:
        data = pyyaml.load(text, Loader=_LOADER)
    except pyyaml.YAMLError:
        return False
    return isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data)), str)


_LOADER = getattr(pyyaml, "CSafeLoader", pyyaml.SafeLoader)


def drop_duplicate_keys(yaml: str) -> str:
    """``yaml`` without the second and later entries of a key repeated in one mapping."""
    scan = _Scan()
    return "".join(line for line in yaml.splitlines(keepends=True) if scan.keeps(line))


class _Scan:
    def __init__(self) -> None:
        self.levels: list[tuple[int, set[str]]] = []  # open block mappings: (indent, keys)
        self.inside: int | None = None  # deeper lines belong to the entry at this indent
        self.dropping = False

    def keeps(self, line: str) -> bool:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if self.inside is not None and (not stripped or indent > self.inside):
            return not self.dropping
        self.inside, self.dropping = None, False
        match = _KEY.match(line)
        if match is None or stripped.startswith("#"):
            if stripped and not stripped.startswith("#"):
                self._close(indent - 1)  # a sequence item or flow line ends deeper mappings
            return True
        return self._entry(indent, match["key"], match["value"] or "")

    def _entry(self, indent: int, key: str, value: str) -> bool:
        self._close(indent)
        if not self.levels or self.levels[-1][0] < indent:
            self.levels.append((indent, set()))
        seen = self.levels[-1][1]
        if _BLOCK_SCALAR.match(value):
            self.inside = indent  # its text may hold lines that look like keys
        if key in seen:
            self.inside, self.dropping = indent, True
            return False
        seen.add(key)
        return True

    def _close(self, indent: int) -> None:
        """End the mappings deeper than ``indent``."""
        while self.levels and self.levels[-1][0] > indent:
            self.levels.pop()
