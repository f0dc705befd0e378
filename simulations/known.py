"""Print the KNOWN_FAILING table of tests/test_simulations.py for the CI seeds.

    python -m simulations.known [FIRST LAST]      (default: seeds 1..200, 5 peers x 100 ops)

After a fix, paste its output over the table: seeds that now pass would
otherwise show up as unexpected passes (the tests are strict).
"""

from __future__ import annotations

import logging
import sys

from simulations.world import rare_collections, run_seed

PEERS, OPS = 5, 100


def kind(problem: str) -> str:
    if problem.startswith("lost edit"):
        return "lost-edit"
    if "differs" in problem:
        return "diverged"
    if "came back" in problem:
        return "delete-came-back"
    return problem.split(":", maxsplit=1)[0].replace(" ", "-")[:30]


def _as_tuple(kinds: list[str]) -> str:
    """The tuple as ``ruff format`` writes it, so the table pastes in unchanged."""
    quoted = ", ".join(f'"{k}"' for k in kinds)
    return f"({quoted},)" if len(kinds) == 1 else f"({quoted})"


def main(argv: list[str]) -> int:
    first, last = (int(argv[0]), int(argv[1])) if len(argv) == 2 else (1, 200)
    logging.getLogger("worksync_p2p").setLevel(logging.CRITICAL)
    print("KNOWN_FAILING: dict[int, tuple[str, ...]] = {")
    with rare_collections():
        for seed in range(first, last + 1):
            result = run_seed(seed, PEERS, OPS)
            if not result.ok:
                print(f"    {seed}: {_as_tuple(sorted({kind(p) for p in result.problems}))},")
    print("}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
