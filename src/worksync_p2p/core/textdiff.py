"""Turning a new full text into minimal edits of a Y.Text.

A character-level diff of a whole 2 KB body costs about 45 ms; diffing lines
first and words only inside the changed lines costs about 0.1 ms and gives the
same small edits for the usual save (a few lines touched).

The edits must also merge well with a peer's concurrent edits, and a diff that
reuses characters does not: a new word assembled from letters of an old one,
or of another line, is garbled when a peer concurrently edits the text those
letters came from (process chaos seed 104: an appended marker was built from
the digits of the line below, which a peer was rewriting). So a changed line
is only ever diffed against the old line most like it (by their words), word
by word; a line with no counterpart is replaced whole (process chaos seed 104,
simulation seeds 18 and 103).

pycrdt indexes Y.Text by UTF-8 bytes, so every edit position is converted
from str indices to byte offsets before it touches the document.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import NamedTuple

from pycrdt import Text

CHAR_DIFF_MAX = 4096
"""Above this many characters in one changed block, replace the block whole."""
PAIR_MAX = 400
"""Above this many line pairs in one changed block, do not look for similar lines."""
PAIR_CUTOFF = 0.5
"""How alike (difflib ratio of their words) two lines must be to count as one line edited."""
TOKEN = re.compile(r"\w+|\s+|[^\w\s]+")
"""Words, runs of white space, runs of punctuation: the units a line's edit keeps or replaces."""


class Edit(NamedTuple):
    """Replace ``old[start:end]`` (str indices) by ``insert``."""

    start: int
    end: int
    insert: str


def diff(old: str, new: str) -> list[Edit]:
    """Small edits turning ``old`` into ``new``, in ascending order."""
    if old == new:
        return []
    old_lines = old.splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    old_starts = _starts(old_lines)
    edits: list[Edit] = []
    matcher = SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        edits.extend(_block_edits(old_lines[i1:i2], new_lines[j1:j2], old_starts[i1]))
    return edits


def _starts(parts: list[str]) -> list[int]:
    starts = [0]
    for part in parts:
        starts.append(starts[-1] + len(part))
    return starts


def _block_edits(old: list[str], new: list[str], offset: int) -> list[Edit]:
    """Edits for a run of changed lines: similar lines word by word, the rest whole."""
    old_text, new_text = "".join(old), "".join(new)
    if old_text == new_text:
        return []
    if not old or not new or len(old_text) + len(new_text) > CHAR_DIFF_MAX:
        return [_replace(offset, old_text, new_text)]
    pair = _most_alike(old, new)
    if pair is None:
        return [_replace(offset, old_text, new_text)]
    i, j = pair
    starts = _starts(old)
    return [
        *_block_edits(old[:i], new[:j], offset),
        *_token_edits(old[i], new[j], offset + starts[i]),
        *_block_edits(old[i + 1 :], new[j + 1 :], offset + starts[i + 1]),
    ]


def _most_alike(old: list[str], new: list[str]) -> tuple[int, int] | None:
    """The pair of lines most alike (the first one on ties), if any is alike enough.

    Likeness counts words, not characters (two markers share ``m0000``) and not
    white space (lines always share it): ``delta m00004z`` and ``mike m00008z``
    are unrelated lines, whose edit would keep only a space and a newline.
    """
    if len(old) * len(new) > PAIR_MAX:
        return None
    old_words = [_solid(line) for line in old]
    best: tuple[float, int, int] | None = None
    matcher: SequenceMatcher[str] = SequenceMatcher(autojunk=False)
    for j, line in enumerate(new):
        matcher.set_seq2(_solid(line))
        for i, words in enumerate(old_words):
            matcher.set_seq1(words)
            if best is not None and matcher.real_quick_ratio() <= best[0]:
                continue
            ratio = matcher.ratio()
            if ratio >= PAIR_CUTOFF and (best is None or ratio > best[0]):
                best = (ratio, i, j)
    return None if best is None else (best[1], best[2])


def _solid(line: str) -> list[str]:
    return [token for token in TOKEN.findall(line) if not token.isspace()]


def _token_edits(old: str, new: str, offset: int) -> list[Edit]:
    old_tokens, new_tokens = TOKEN.findall(old), TOKEN.findall(new)
    old_starts, new_starts = _starts(old_tokens), _starts(new_tokens)
    out: list[Edit] = []
    matcher = SequenceMatcher(None, old_tokens, new_tokens, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            old_part = old[old_starts[i1] : old_starts[i2]]
            out.append(
                _replace(offset + old_starts[i1], old_part, new[new_starts[j1] : new_starts[j2]])
            )
    return out


def _replace(start: int, old: str, new: str) -> Edit:
    """The edit replacing ``old`` (at ``start``) by ``new``: only the addition when
    ``new`` is ``old`` with text added at one end.

    Text typed right after a word (a line added below a last line that has no newline:
    ``m00116z`` becomes ``m00116zfoxtrot m00149z``) is one token changed. Replaced
    whole, it deletes the word and inserts it again with the addition; two peers doing
    that concurrently delete the one word and each insert their copy, so the merge holds
    it twice (soak seed 10061, B81). Kept, the word is the CRDT's and each insertion
    lands next to it. No letters are reused: the whole of ``old`` is kept.

    Not the other way round (a word cut short), though the same reasoning holds: in the
    head template, where glued values of concurrent sets are cut so, trimming those cuts
    moved soak seed 10159's schedule (``test_b70``, 5 x 191) into a lost assignee not
    traced yet.
    """
    if old and new.startswith(old):
        return Edit(start + len(old), start + len(old), new[len(old) :])
    if old and new.endswith(old):
        return Edit(start, start, new[: len(new) - len(old)])
    return Edit(start, start + len(old), new)


def apply(text: Text, old: str, edits: list[Edit]) -> None:
    """Apply ``edits`` (computed against ``old``, the text's content) to a Y.Text.

    Must run inside a transaction so the whole save is one update.
    """
    for edit in reversed(edits):
        start = len(old[: edit.start].encode())
        end = start + len(old[edit.start : edit.end].encode())
        if end > start:
            del text[start:end]
        if edit.insert:
            text.insert(start, edit.insert)


def set_text(text: Text, old: str, new: str) -> bool:
    """Make the Y.Text hold ``new``; returns whether anything changed."""
    edits = diff(old, new)
    apply(text, old, edits)
    return bool(edits)


def deletions_to(merged: str, target: str) -> list[Edit] | None:
    """Deletions that turn ``merged`` into ``target``, or None if impossible.

    Used to undo an edit that two replicas made independently and that the
    merge therefore applied twice: the target is then a subsequence of the
    merged text. The leftmost match is deterministic, so every replica that
    holds the same merged state deletes the same CRDT items, and the repairs
    are idempotent when they meet.
    """
    edits: list[Edit] = []
    j = 0
    run_start = -1
    for i, ch in enumerate(merged):
        if j < len(target) and ch == target[j]:
            j += 1
            if run_start >= 0:
                edits.append(Edit(run_start, i, ""))
                run_start = -1
        elif run_start < 0:
            run_start = i
    if j < len(target):
        return None
    if run_start >= 0:
        edits.append(Edit(run_start, len(merged), ""))
    return edits
