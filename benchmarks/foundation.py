"""The foundation benchmarks of the sync core, in the order they are reported."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.bulk import ingest_case, reconcile_case, reopen_case
from benchmarks.harness import Result
from benchmarks.memory import memory_case
from benchmarks.micro import codec_case, local_edit_case
from benchmarks.session import Session


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[Session], list[Result]]


CASES: tuple[Case, ...] = (
    Case("codec", codec_case),
    Case("ingest", ingest_case),
    Case("reopen", reopen_case),
    Case("memory", memory_case),
    Case("startup", reconcile_case),
    Case("local edit", local_edit_case),
)


def selected(only: str | None) -> list[Case]:
    """Cases whose name contains ``only`` (case-insensitive); all when None."""
    if only is None:
        return list(CASES)
    return [case for case in CASES if only.lower() in case.name.lower()]
