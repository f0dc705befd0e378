"""The pure half of path safety: which peer-supplied paths may become files."""

from __future__ import annotations

import pytest

from worksync_p2p.core.paths import MAX_NAME_BYTES, MAX_PATH_BYTES, unsafe_reason

UNSAFE = {
    "": "not a relative path",
    "/etc/passwd.md": "not a relative path",
    "\\\\server\\share.md": "not a relative path",
    "C:/x.md": "not a relative path",
    "a\\b.md": "backslash",
    "bell\x07.md": "control character",
    "x.txt": "not a .md file",
    "x.md/": "not a .md file",
    "../x.md": "'..'",
    "a/../../x.md": "'..'",
    "a//x.md": "empty",
    "./x.md": "'.'",
    ".hidden/x.md": "hidden",
    ".x.md": "hidden",
    "CON.md": "reserved",
    "sub/lpt1.md": "reserved",
    "trailing. /x.md": "reserved",
    "n" * (MAX_NAME_BYTES - 2) + ".md": f"longer than {MAX_NAME_BYTES}",
    "é" * 127 + ".md": f"longer than {MAX_NAME_BYTES}",  # 130 characters, 257 bytes
    "/".join(["d" * 200] * 6) + ".md": f"longer than {MAX_PATH_BYTES}",
}

SAFE = [
    "x.md",
    "sub/dir/x.md",
    "tasks/task-fix-login-7kq2mx.md",
    "n" * (MAX_NAME_BYTES - 3) + ".md",  # exactly NAME_MAX
    "console.md",  # only the bare reserved names are refused
    "spaces in name.md",
    "ünïcödé.md",
]


@pytest.mark.parametrize("relpath", list(UNSAFE), ids=repr)
def test_an_unsafe_path_is_refused_with_its_reason(relpath: str) -> None:
    reason = unsafe_reason(relpath)
    assert reason is not None, relpath
    assert UNSAFE[relpath] in reason


@pytest.mark.parametrize("relpath", SAFE, ids=repr)
def test_an_ordinary_item_path_is_safe(relpath: str) -> None:
    assert unsafe_reason(relpath) is None
