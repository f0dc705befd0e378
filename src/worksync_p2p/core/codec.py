"""Work item files <-> (head, body, fields), without I/O.

A work item is a markdown file that may start with YAML frontmatter. The file
is kept as two raw strings, ``head`` (the frontmatter with its delimiters) and
``body`` (everything after), so ``head + body`` is always the original text
byte for byte; ``fields`` is the typed reading of the head.

Rules this module keeps:

- frontmatter exists only when the first line is ``---`` (after an optional
  BOM, trailing blanks allowed) and a later line is ``---`` or ``...``; the
  first such line closes it, so ``---`` lines further down belong to the body;
- bad input (not UTF-8, NUL bytes, too big, invalid YAML, duplicate or
  non-string keys, values :mod:`values` cannot carry) raises :class:`ItemError`
  with a one-line reason, never anything else and never a partial item;
- :func:`render_head` changes only the lines of the fields that changed, and
  whatever it returns parses back to exactly the fields it was given.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from worksync_p2p.core import headmerge, values, yamlemit, yamlpatch

try:
    from yaml import CSafeLoader as _FastLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _FastLoader  # type: ignore[assignment]

_C_LOADER = _FastLoader.__name__ == "CSafeLoader"

DEFAULT_MAX_BYTES = 1024 * 1024

# Frontmatter is a small record; anything nested deeper is hostile or broken,
# and libyaml's composer recurses in C (a few ten thousand levels crash it).
_MAX_DEPTH = 100
# Expanded size limit when aliases share nodes (a "billion laughs" head).
_MAX_EXPANDED_NODES = 100_000
# Rendered heads kept (see render_head): a few per item being worked on.
_HEADS_KEPT = 1024
_HEADS: OrderedDict[tuple[str, str], str] = OrderedDict()
_PLAIN_TAGS_KEPT = 4096
_PLAIN_TAGS: dict[str, str] = {}

_OPEN = re.compile(r"\ufeff?---[ \t]*(\r?\n)")
_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.MULTILINE)
_DAMAGED_CLOSE = re.compile(r"-{1,3}[ \t]*(?:\r?\n)?\Z")
_BLOCK_PREFIX = re.compile(r"^[ \-?:]*", re.MULTILINE)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"


class ItemError(Exception):
    """Bad input: carries the file name and a one-line reason."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class HeadError(ValueError):
    """A head whose YAML cannot be read as frontmatter fields."""


@dataclass(frozen=True)
class ParsedItem:
    head: str
    body: str
    fields: dict[str, Any] | None


@dataclass(frozen=True)
class _Split:
    opening: str
    yaml: str
    closing: str

    @property
    def newline(self) -> str:
        return "\r\n" if self.opening.endswith("\r\n") else "\n"


@dataclass(frozen=True)
class _Loaded:
    root: Node | None
    fields: dict[str, Any]
    patchable: bool


_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_PLAIN_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "timestamp")
)


class _NotPlain(Exception):
    """A node the direct construction leaves to PyYAML's: a tag other than the
    core ones, a key that is not a plain string, a duplicate key. Anchors,
    aliases and merge keys never get there (see ``_load``)."""


class _Loader(_FastLoader):
    """Safe loader that refuses what a frontmatter field cannot be."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        """PyYAML's tag resolution, remembered for plain scalars.

        Without path resolvers (this loader has none) a plain scalar's tag
        depends on its text alone; resolving it matched regular expressions
        for each of the thirty-odd scalars of an item, on every read.
        """
        if kind is not ScalarNode or not implicit[0] or self.yaml_path_resolvers:
            return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        tag = _PLAIN_TAGS.get(value)
        if tag is None:
            tag = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
            if len(_PLAIN_TAGS) >= _PLAIN_TAGS_KEPT:
                _PLAIN_TAGS.clear()
            _PLAIN_TAGS[value] = tag
        return tag

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            if key_node.tag == _STR_TAG and isinstance(key_node, ScalarNode):
                key: Any = key_node.value  # what the constructor would make, minus its cost
            else:
                key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 2
            if not isinstance(key, str):
                raise HeadError(f"non-string key {_short(repr(key))} at line {line}")
            if key in seen:
                raise HeadError(f"duplicate key {_short(key)!r} at line {line}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_plain(self, root: Node) -> Any:
        """The document, built directly where it is plain (see :class:`_NotPlain`).

        PyYAML's generic construction (recursion bookkeeping, a generator per
        collection) was about a fifth of rendering an item; the values are
        made by the same constructors, so both ways give equal data.
        """
        try:
            return self._plain(root)
        except _NotPlain:
            return self.construct_document(root)

    def _plain(self, node: Node) -> Any:
        if isinstance(node, ScalarNode):
            if node.tag == _STR_TAG:
                return node.value
            if node.tag not in _PLAIN_SCALAR_TAGS:
                raise _NotPlain
            return self.yaml_constructors[node.tag](self, node)
        if isinstance(node, SequenceNode) and node.tag == _SEQ_TAG:
            return [self._plain(item) for item in node.value]
        if not isinstance(node, MappingNode) or node.tag != _MAP_TAG:
            raise _NotPlain
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag != _STR_TAG or not isinstance(key_node, ScalarNode):
                raise _NotPlain
            if key_node.value in mapping:
                raise _NotPlain  # the generic way names the duplicate
            mapping[key_node.value] = self._plain(value_node)
        return mapping

    def _refuse(self, node: Node) -> None:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise HeadError(f"unsupported tag {tag} at line {node.start_mark.line + 2}")


for _tag in ("omap", "pairs", "set", "binary"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _Loader._refuse)


def parse(data: bytes, name: str, max_bytes: int = DEFAULT_MAX_BYTES) -> ParsedItem:
    """Split and read a work item file; raises :class:`ItemError` on bad input."""
    if len(data) > max_bytes:
        raise ItemError(name, f"file is {len(data)} bytes, over the limit of {max_bytes}")
    if b"\x00" in data:
        raise ItemError(name, "binary content (NUL byte)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ItemError(name, f"not UTF-8 (invalid byte at offset {exc.start})") from None
    split = _split(text)
    if split is None:
        return ParsedItem(head="", body=text, fields=None)
    try:
        fields = _load(split.yaml).fields
    except HeadError as exc:
        raise ItemError(name, str(exc)) from None
    head = split.opening + split.yaml + split.closing
    return ParsedItem(head=head, body=text[len(head) :], fields=fields)


def parse_head(head: str) -> dict[str, Any] | None:
    """Fields of a head as :func:`parse` produces it; ``""`` gives None."""
    if not head:
        return None
    return _load(_split_head(head).yaml).fields


def render(item: ParsedItem) -> str:
    return item.head + item.body


def fields_equal(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Strict equality of fields, ignoring the order of mapping keys.

    Key order is a formatting matter that the template keeps; the types and
    values of the fields are not (``1``, ``1.0`` and ``true`` differ).
    """
    return yamlpatch.equal(a, b)


def render_head(template: str, fields: dict[str, Any] | None) -> str:
    """A head reading exactly ``fields``, changing only what differs from ``template``.

    A pure function, and a costly one (the template is parsed, patched and the
    result parsed again to check it), called with the same arguments again and
    again as an item is compared with its file: the last results are kept.
    ``repr`` tells apart what the head must (``1``, ``1.0``, ``True``; key order).
    """
    if fields is None:
        return ""
    key = (template, repr(fields))
    head = _HEADS.get(key)
    if head is None:
        head = _render_head(template, fields)
        _HEADS[key] = head
        if len(_HEADS) > _HEADS_KEPT:
            _HEADS.popitem(last=False)
    else:
        _HEADS.move_to_end(key)
    return template if head == template else head  # unchanged: the template itself


def render_head_once(template: str, fields: dict[str, Any] | None) -> str:
    """:func:`render_head` for a template seen once (a new item from a peer): the
    same result, without the cache (its key alone, a ``repr`` of the fields,
    cost a tenth of the work, and each entry would push out a useful one)."""
    if fields is None:
        return ""
    head = _render_head(template, fields)
    return template if head == template else head


def _render_head(template: str, fields: dict[str, Any]) -> str:
    split = _split(template) if template else None
    if split is None or split.opening + split.yaml + split.closing != template:
        split = _salvaged(template)
        if split is None:
            values.check(fields)
            return _regenerate(_Split("---\n", "", "---\n"), fields)
    try:
        loaded = _load(split.yaml)
    except HeadError:
        merged = _merged(split)
        if merged is None:
            values.check(fields)
            return _regenerate(split, fields)
        split, loaded = merged
    if fields_equal(loaded.fields, fields):
        # Strictly equal to fields that passed values.check, so they pass too.
        return split.opening + split.yaml + split.closing
    values.check(fields)
    if loaded.patchable:
        patched = yamlpatch.patch(split.yaml, loaded.root, loaded.fields, fields, split.newline)
        if patched is not None:
            head = split.opening + patched + split.closing
            if _reads_as(head, fields):
                return head
    return _regenerate(split, fields)


def _salvaged(template: str) -> _Split | None:
    """The head a merge damaged at its closing line, as well as it can be told.

    A file's head always splits cleanly (it was read that way), so a template
    that does not comes from concurrent edits near its end: the last line ran
    into the closing ``---`` (``m9---``), the closing line lost characters
    (``--``), or text follows it. The YAML part is kept and a closing line
    put back; :func:`_merged` then mends what does not read.
    """
    opening = _OPEN.match(template)
    if opening is None:
        return None
    newline = opening.group(1)
    rest = template[opening.end() :]
    closing = _CLOSE.search(rest)
    if closing is not None:
        return _Split(opening.group(0), rest[: closing.start()], "---" + newline)
    yaml_text = _DAMAGED_CLOSE.sub("", rest)
    if yaml_text and not yaml_text.endswith("\n"):
        yaml_text += newline
    return _Split(opening.group(0), yaml_text, "---" + newline)


def _merged(split: _Split) -> tuple[_Split, _Loaded] | None:
    """The template without what a concurrent edit left unreadable, if that is
    what made it unreadable (see :mod:`headmerge`)."""
    yaml_text = headmerge.mend(split.yaml)
    if yaml_text == split.yaml:
        return None
    try:
        return _Split(split.opening, yaml_text, split.closing), _load(yaml_text)
    except HeadError:
        return None


def _regenerate(split: _Split, fields: dict[str, Any]) -> str:
    nl = split.newline
    head = split.opening + "".join(line + nl for line in yamlemit.document(fields)) + split.closing
    if not _reads_as(head, fields):
        raise RuntimeError(
            f"emitter bug: fields do not survive a round trip: {_short(repr(fields))}"
        )
    return head


def _reads_as(head: str, fields: dict[str, Any]) -> bool:
    # The whole head is re-split too: a line of the new YAML must not close it.
    try:
        return fields_equal(_load(_split_head(head).yaml).fields, fields)
    except HeadError:
        return False


def _split(text: str) -> _Split | None:
    opening = _OPEN.match(text)
    if opening is None:
        return None
    closing = _CLOSE.search(text, opening.end())
    if closing is None:
        return None
    return _Split(
        opening=text[: opening.end()],
        yaml=text[opening.end() : closing.start()],
        closing=text[closing.start() : closing.end()],
    )


def _split_head(head: str) -> _Split:
    split = _split(head)
    if split is None or split.opening + split.yaml + split.closing != head:
        raise HeadError("not a frontmatter head (--- line, YAML, --- line)")
    return split


def _load(text: str) -> _Loaded:
    """Compose (for the marks) and construct (for the values) one YAML text."""
    _check_depth(text)
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        # Without anchors, aliases or merge keys every node is used once.
        shared = root is not None and ("&" in text or "*" in text or "<<" in text)
        patchable = _inspect(root) if shared else True
        if root is None:
            data: Any = {}
        elif shared:
            data = loader.construct_document(root)
        else:
            data = loader.construct_plain(root)
    except HeadError:
        raise
    except yaml.YAMLError as exc:
        raise HeadError(_yaml_reason(text, exc)) from None
    except (ValueError, OverflowError) as exc:
        # Values that match a YAML pattern but not the calendar: 2025-02-30.
        raise HeadError(f"unsupported value: {_short(str(exc))}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise HeadError(f"frontmatter is not a mapping but a {_kind(data)}")
    try:
        values.check(data)
    except values.UnsupportedValue as exc:
        raise HeadError(_short(str(exc))) from None
    return _Loaded(root=root, fields=data, patchable=patchable)


def _yaml_reason(text: str, exc: yaml.YAMLError) -> str:
    # Line numbers count from the opening delimiter, which is line 1 of the file.
    if isinstance(exc, yaml.reader.ReaderError):
        # libyaml reports a byte offset into the UTF-8 text, PyYAML a character one.
        if _C_LOADER:
            line = text.encode()[: exc.position].count(b"\n") + 2
        else:
            line = text.count("\n", 0, exc.position) + 2
        return f"invalid YAML at line {line}: unacceptable character #x{exc.character:04x}"
    if not isinstance(exc, yaml.MarkedYAMLError):
        return _short(f"invalid YAML: {exc}")
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 2}" if mark is not None else ""
    problem = exc.problem or exc.context or "unreadable"
    if isinstance(exc, yaml.constructor.ConstructorError):
        return _short(f"unsupported value{where}: {problem}")
    return _short(f"invalid YAML{where}: {problem}")


def _check_depth(text: str) -> None:
    # Each nesting level opens with a bracket, a dash, a colon, a question mark
    # or a new line, and in block style with a deeper column: two cheap bounds
    # that clear ordinary heads without a scan.
    flow = text.count("[") + text.count("{")
    starts = text.count("\n") + text.count("-") + text.count(":") + text.count("?")
    if flow + starts < _MAX_DEPTH:
        return
    block = max((len(m.group()) for m in _BLOCK_PREFIX.finditer(text)), default=0)
    if flow + block < _MAX_DEPTH:
        return
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_FastLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > _MAX_DEPTH:
                    raise HeadError(f"nested deeper than {_MAX_DEPTH} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        raise HeadError(_yaml_reason(text, exc)) from None


def _inspect(root: Node | None) -> bool:
    """Refuse alias bombs and cycles; say whether the marks can guide a patch.

    Merge keys (``<<``) are rewritten in place by the constructor, after which
    the nodes no longer match the text, so such heads are regenerated instead.
    """
    if root is None:
        return True
    seen: set[int] = set()
    aliased = merged = False
    for node in _walk(root):
        if id(node) in seen:
            aliased = True
            break
        seen.add(id(node))
        if isinstance(node, MappingNode):
            merged = merged or any(k.tag == _MERGE_TAG for k, _ in node.value)
    if aliased:
        # Shared nodes carry the anchor's marks, so an edit may land on the
        # anchor: the re-read after patching catches that and regenerates.
        _check_expansion(root)
    return not merged


def _walk(root: Node) -> Iterator[Node]:
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(_children(node))


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _check_expansion(root: Node) -> None:
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_ids: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        kids = _children(node)
        if finished:
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            open_ids.discard(key)
            if size[key] > _MAX_EXPANDED_NODES or depth[key] > _MAX_DEPTH:
                raise HeadError("aliases expand beyond the size limit")
        elif key not in size:
            if key in open_ids:
                raise HeadError("recursive alias")
            open_ids.add(key)
            stack.append((node, True))
            stack.extend((k, False) for k in kids)


def _kind(data: Any) -> str:
    return "list" if isinstance(data, list) else "scalar"


def _short(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
