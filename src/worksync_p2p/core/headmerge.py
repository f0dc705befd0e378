"""Undo the one thing a character merge does to a YAML head that YAML refuses.

Two peers that set one field at once each rewrite its line of the head
template (the frontmatter as written, a Y.Text). The merge keeps both new
lines, so the template names the key twice; YAML refuses a duplicate key, and
without this the render would regenerate the whole frontmatter, dropping
comments, quoting and list styles nobody changed. The field's value is decided
by the merge rules, not by the template; the template only lends the line its
spelling, so all but the first line of a duplicated key are dropped, and the
patcher then writes the winning value into the line that stays. Every peer
holds the same merged template, so every peer drops the same lines.

Line-based and conservative: a line dropped by mistake (a look-alike inside a
multi-line scalar) makes the render read back wrong, and the caller then
regenerates, as it would have without this.
"""

from __future__ import annotations

import re

# A block-mapping key at the start of a line: plain, or single/double quoted.
_KEY = re.compile(
    r"(?P<indent> *)(?P<key>\"(?:[^\"\\]|\\.)*\"|'(?:[^']|'')*'|[^\s#'\"?:\-{\[][^#]*?)"
    r"[ \t]*:(?:[ \t]+(?P<value>[^\n]*)|[ \t]*\r?\n|$)"
)
_BLOCK_SCALAR = re.compile(r"[|>][-+0-9]*[ \t]*(#.*)?\r?\n?$")


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
