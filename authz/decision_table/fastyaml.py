"""A fast path for reading decision tables: libyaml's events, turned into data directly.

PyYAML's loaders spend most of a large table's time in Python node building, tag
resolution and construction (a 10,000-case table: ~3.5 s even with libyaml's parser).
:func:`load_fast` reads libyaml's event stream and builds the mappings and sequences itself,
resolving plain scalars with PyYAML's own implicit resolvers (so ``yes`` is still ``True``,
``~`` still ``None``) and constructing non-string scalars with PyYAML's safe constructor.
Mappings and sequences remember the line they start on; a key given twice is refused.

Anything else - anchors, aliases, tags, merge keys, several documents - raises
:class:`Unsupported`, and the caller loads the text with the full loader instead.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

__all__ = ["DuplicateKey", "Unsupported", "load_fast"]

_STR = "tag:yaml.org,2002:str"
_RESOLVERS = Resolver.yaml_implicit_resolvers
_CONSTRUCTOR = SafeConstructor()
_Parser: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Unsupported(Exception):
    """The text uses YAML the fast path does not read; use the full loader."""


class DuplicateKey(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def _resolve(value: str) -> Any:
    """A plain scalar's value, as PyYAML's safe loader resolves and constructs it."""
    for tag, regexp in _RESOLVERS.get(value[:1] if value else "", ()):
        if regexp.match(value):
            if tag == _STR:
                return value
            return _CONSTRUCTOR.construct_object(ScalarNode(tag, value))
    return value


def load_fast(text: str, map_type: type[dict[str, Any]], seq_type: type[list[Any]]) -> Any:
    """The one document in ``text``; ``map_type``/``seq_type`` get a ``line`` attribute."""
    parser = _Parser(text)
    try:
        return _build(parser, map_type, seq_type)
    finally:
        parser.dispose()


def _build(parser: Any, map_type: type[dict[str, Any]], seq_type: type[list[Any]]) -> Any:
    stack: list[Any] = []  # containers being built
    keys: list[Any] = []  # for each container: the pending key of a mapping
    root: Any = None
    documents = 0
    get_event = parser.get_event
    while True:
        event = get_event()
        cls = type(event)
        if cls is ScalarEvent:
            if event.anchor is not None or event.tag not in (None, "!"):
                raise Unsupported("anchor or tag")
            value: Any = event.value
            if not event.style and event.implicit[0] and value[:1] in _RESOLVERS:
                value = _resolve(value)
            if not stack:
                root = value
                continue
            top = stack[-1]
            if keys[-1] is _SEQ:
                top.append(value)
            elif keys[-1] is _NO_KEY:  # this scalar is a key
                if value in top or not isinstance(value, str) or value == "<<":
                    _bad_key(value, event.start_mark.line + 1)
                keys[-1] = value
            else:
                top[keys[-1]] = value
                keys[-1] = _NO_KEY
        elif cls is MappingStartEvent or cls is SequenceStartEvent:
            if event.anchor is not None or event.tag not in (None, "!"):
                raise Unsupported("anchor or tag")
            is_map = cls is MappingStartEvent
            container: Any = map_type() if is_map else seq_type()
            container.line = event.start_mark.line + 1
            if not stack:
                root = container
            else:
                top = stack[-1]
                if keys[-1] is _SEQ:
                    top.append(container)
                elif keys[-1] is _NO_KEY:
                    raise Unsupported("complex key")
                else:
                    top[keys[-1]] = container
                    keys[-1] = _NO_KEY
            stack.append(container)
            keys.append(_NO_KEY if is_map else _SEQ)
        elif cls is MappingEndEvent or cls is SequenceEndEvent:
            stack.pop()
            keys.pop()
        elif cls is DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise Unsupported("several documents")
        elif cls is StreamEndEvent:
            return root
        elif cls is AliasEvent:
            raise Unsupported("alias")
        elif cls is not DocumentEndEvent and cls is not StreamStartEvent:
            raise Unsupported(cls.__name__)


def _bad_key(value: Any, line: int) -> None:
    if value == "<<":
        raise Unsupported("merge key")
    if not isinstance(value, str):
        raise DuplicateKey(line, f"key `{value}` is not a string")
    hint = (
        " (in a case, `name` labels the case and `object` names the object)"
        if value == "name"
        else ""
    )
    raise DuplicateKey(line, f"key `{value}` appears twice in one mapping{hint}")


class _NoKey:
    pass


_NO_KEY: Any = _NoKey()  # a mapping waiting for its next key
_SEQ: Any = _NoKey()  # a sequence
