"""The README's first lines are the commands a newcomer runs; CI runs the same test command."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines[:12] if line.startswith("    ")]


def test_readme_opens_with_the_two_commands() -> None:
    start, test = _readme_commands()[:2]
    assert "worksync-p2p up" in start
    assert "pytest" in test


def test_ci_runs_exactly_the_readme_test_command() -> None:
    test = _readme_commands()[1]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test in ci_lines
