"""What a person does to a work item's text, as pure functions on strings.

Items are written in the house style the node itself emits (``key: value``
lines, block lists indented by two, or flow lists ``[a, b]``), so an edit
touches exactly the lines a person would. Every value or line a simulated
person adds carries a *marker*, ``m`` + five digits + ``z``: the checkers look
for markers at the end, and a fixed width keeps one marker from being a
substring of another.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

MARKER = re.compile(r"m\d{5}z")
FENCE = "---\n"
WORDS = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
)
SCALAR_FIELDS = ("title", "status", "assignee", "priority")
LIST_FIELD = "tags"


def marker(number: int) -> str:
    return f"m{number:05d}z"


def markers_in(text: str) -> list[str]:
    return MARKER.findall(text)


@dataclass
class Split:
    """A file as head lines (between the fences) and body lines, each with its newline."""

    head: list[str]
    body: list[str]

    @classmethod
    def parse(cls, text: str) -> Split | None:
        """None when the file is not in the house style (then only whole-file ops apply)."""
        if not text.startswith(FENCE):
            return None
        lines = text.splitlines(keepends=True)
        for index in range(1, len(lines)):
            if lines[index] == FENCE:
                return cls(lines[1:index], lines[index + 1 :])
        return None

    def text(self) -> str:
        return FENCE + "".join(self.head) + FENCE + "".join(self.body)

    def field_line(self, name: str) -> int | None:
        prefix = name + ":"
        for index, line in enumerate(self.head):
            if line.startswith(prefix):
                return index
        return None

    def scalar(self, name: str) -> str | None:
        index = self.field_line(name)
        if index is None:
            return None
        return self.head[index][len(name) + 1 :].strip()


@dataclass(frozen=True)
class Edit:
    """A new text, the markers it added, and the markers the person saw go."""

    text: str
    added: tuple[str, ...]
    retracted: tuple[str, ...]


def new_item(item_id: str, mark: str, rng: random.Random, with_id: bool = True) -> str:
    title = " ".join(rng.choice(WORDS) for _ in range(3))
    head = [f"id: {item_id}\n"] if with_id else []
    head += [f"title: {title} {mark}\n", "status: open\n", "assignee: nobody\n"]
    head.append("tags:\n  - " + rng.choice(WORDS) + "\n")
    body = [f"# {title}\n", "\n"]
    body += [
        f"{rng.choice(WORDS)} {rng.choice(WORDS)} line {n}\n" for n in range(rng.randint(1, 6))
    ]
    return Split(head, body).text()


def insert_line(split: Split, mark: str, rng: random.Random, hot: bool) -> Edit:
    lines = list(split.body)
    # ``hot`` picks one of the first lines, so peers often touch the same place.
    where = rng.randint(0, min(2, len(lines))) if hot else rng.randint(0, len(lines))
    lines.insert(where, f"{rng.choice(WORDS)} {mark}\n")
    return Edit(Split(split.head, lines).text(), (mark,), ())


def append_to_line(split: Split, mark: str, rng: random.Random, hot: bool) -> Edit | None:
    candidates = [i for i, line in enumerate(split.body) if line.strip()]
    if not candidates:
        return None
    index = candidates[0] if hot else rng.choice(candidates)
    lines = list(split.body)
    line = lines[index]
    ending = "\n" if line.endswith("\n") else ""
    lines[index] = line[: len(line) - len(ending)] + f" {mark}" + ending
    return Edit(Split(split.head, lines).text(), (mark,), ())


def delete_line(split: Split, rng: random.Random) -> Edit | None:
    if len(split.body) < 2:
        return None
    index = rng.randrange(len(split.body))
    lines = list(split.body)
    gone = lines.pop(index)
    return Edit(Split(split.head, lines).text(), (), tuple(markers_in(gone)))


def set_scalar(split: Split, name: str, value: str) -> Edit:
    head = list(split.head)
    index = split.field_line(name)
    old = ""
    if index is None:
        head.append(f"{name}: {value}\n")
    else:
        old = head[index]
        head[index] = f"{name}: {value}\n"
    return Edit(Split(head, split.body).text(), tuple(markers_in(value)), tuple(markers_in(old)))


def _list_span(split: Split) -> tuple[int, int] | None:
    """Head line range of the block list ``tags:`` (its item lines), None if absent or flow."""
    index = split.field_line(LIST_FIELD)
    if index is None or split.head[index].strip() != LIST_FIELD + ":":
        return None
    end = index + 1
    while end < len(split.head) and split.head[end].lstrip().startswith("- "):
        end += 1
    return index + 1, end


def tags(split: Split) -> list[str]:
    span = _list_span(split)
    if span is not None:
        return [split.head[i].strip()[2:].strip() for i in range(*span)]
    raw = split.scalar(LIST_FIELD)
    if raw is None or not (raw.startswith("[") and raw.endswith("]")):
        return []
    return [t.strip() for t in raw[1:-1].split(",") if t.strip()]


def _with_tags(split: Split, values: list[str]) -> Split:
    head = list(split.head)
    span = _list_span(split)
    if span is not None and values:
        indent = (
            head[span[0]][: len(head[span[0]]) - len(head[span[0]].lstrip())]
            if (span[1] > span[0])
            else "  "
        )
        head[span[0] : span[1]] = [f"{indent}- {v}\n" for v in values]
        return Split(head, split.body)
    line = f"{LIST_FIELD}: [{', '.join(values)}]\n"
    index = split.field_line(LIST_FIELD)
    if index is None:
        head.append(line)
    elif span is not None:
        head[index : span[1]] = [line]
    else:
        head[index] = line
    return Split(head, split.body)


def add_tag(split: Split, mark: str) -> Edit:
    return Edit(_with_tags(split, [*tags(split), mark]).text(), (mark,), ())


def remove_tag(split: Split, rng: random.Random) -> Edit | None:
    current = tags(split)
    if not current:
        return None
    gone = current.pop(rng.randrange(len(current)))
    return Edit(_with_tags(split, current).text(), (), tuple(markers_in(gone)))
