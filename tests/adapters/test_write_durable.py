"""``write_if``'s ``durable`` step: done before the new text can be seen under any name.

The node passes its store's sync there (B45): a file, or a temp file a
restart would take for a user's save, must never hold text that the store
could still lose in a power cut. Real files in a temp folder; the step looks
at the folder while it runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from worksync_p2p.adapters import files
from worksync_p2p.core.bridge import content_hash
from worksync_p2p.ports import WriteOutcome

OLD = "---\nid: a\n---\nold\n"
OURS = "---\nid: a\n---\nold\npeer line\n"


class Durable:
    """A ``durable`` step noting, when it runs, which names already hold ``OURS``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.runs: list[list[str]] = []

    def __call__(self) -> None:
        self.runs.append(
            sorted(p.name for p in self.folder.iterdir() if p.read_bytes() == OURS.encode())
        )


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("existing", [True, False], ids=["replace", "create"])
def test_durable_runs_once_before_the_text_has_a_name(tmp_path: Path, existing: bool) -> None:
    path = tmp_path / "a.md"
    if existing:
        path.write_text(OLD)
    durable = Durable(tmp_path)
    expect = content_hash(OLD.encode()) if existing else None
    assert files.write_if(tmp_path, "a.md", OURS, expect, durable=durable) is WriteOutcome.WRITTEN
    assert durable.runs == [[]]
    assert path.read_text() == OURS
    assert _leftovers(tmp_path) == []


def test_a_refused_write_does_not_run_durable(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(OLD)
    durable = Durable(tmp_path)
    outcome = files.write_if(tmp_path, "a.md", OURS, content_hash(b"other"), durable=durable)
    assert outcome is WriteOutcome.CHANGED
    assert files.write_if(tmp_path, "../out.md", OURS, None, durable=durable) is (
        WriteOutcome.UNSAFE
    )
    assert durable.runs == []


def test_a_failing_durable_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_text(OLD)

    def fails() -> None:
        raise OSError("the disk is gone")

    with pytest.raises(OSError, match="the disk is gone"):
        files.write_if(tmp_path, "a.md", OURS, content_hash(OLD.encode()), durable=fails)
    assert path.read_text() == OLD
    assert _leftovers(tmp_path) == []
