"""Which relative paths a document may be written to.

A path arrives from a peer: it must never lead out of the workspace or onto
something that is not a work item. The symlink half of the rule needs the
file system and lives in the node; this is the pure half.
"""

from __future__ import annotations

import re

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 1024
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?$", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def unsafe_reason(relpath: str) -> str | None:
    """Why ``relpath`` may not be written, or None when it is a safe item path."""
    if not relpath or relpath.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", relpath):
        return "not a relative path"
    if "\\" in relpath or _CONTROL.search(relpath):
        return "backslash or control character in path"
    if len(relpath.encode()) > MAX_PATH_BYTES:
        return f"path longer than {MAX_PATH_BYTES} bytes"
    if not relpath.endswith(".md"):
        return "not a .md file"
    for part in relpath.split("/"):
        reason = _part_reason(part)
        if reason is not None:
            return reason
    return None


def _part_reason(part: str) -> str | None:
    if part in ("", ".", ".."):
        return "empty, '.' or '..' path component"
    if part.startswith("."):
        return "hidden path component"
    if len(part.encode()) > MAX_NAME_BYTES:
        return f"name longer than {MAX_NAME_BYTES} bytes"
    if _WINDOWS_RESERVED.match(part) or part.endswith((" ", ".")):
        return "reserved file name"
    return None
