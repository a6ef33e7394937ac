"""Macro expansion with EPICS syntax: ``$(name)``, ``${name}`` and ``$(name=default)``.

As EPICS macLib does, a macro's value (or default) may itself hold macros: they are expanded too.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_MACRO = re.compile(r'\$(?:\(([^()=]+)(?:=([^()]*))?\)|\{([^{}=]+)(?:=([^{}]*))?\})')
#: what softIoc's macLib takes for the start of a macro reference, closed or not
_OPEN = re.compile(r'\$[({]')
MAX_DEPTH = 20


class UndefinedMacro(KeyError):
    """A macro used in a model has no value (or its value refers back to itself)."""

    def __init__(self, name: str, why: str = 'is not defined', hint: str = ''):
        super().__init__(name)
        self.name, self.why = name, why
        self.hint = hint or f'pass macros={{{name!r}: ...}} to the model'

    def __str__(self) -> str:
        return f'macro {self.name!r} {self.why}'


def expand(text: str, macros: Mapping[str, Any], _depth: int = 0) -> str:
    """Expand every macro reference in ``text``, and the macros their values hold.

    A default that holds a macro (``$(a=x$(b))``) is expanded too. dbLoadRecords runs macLib over
    the whole .db file, so a ``$(`` or ``${`` left over (``'x $(y'``) would make softIoc refuse it.

    Raises:
        UndefinedMacro: a macro without a value, one whose value refers to itself, or a reference
            that is not closed.
    """
    if '$' not in text:
        return text

    def value(match: re.Match) -> str:
        name = (match.group(1) or match.group(3)).strip()
        default = match.group(2) if match.group(1) else match.group(4)
        if name in macros:
            found = str(macros[name])
        elif default is not None:
            found = default
        else:
            raise UndefinedMacro(name)
        if '$' in found:
            if _depth >= MAX_DEPTH:
                raise UndefinedMacro(name, 'refers to itself (directly or through other macros)')
            found = expand(found, macros, _depth + 1)
        return found

    for _ in range(MAX_DEPTH):  # again, for a macro in a default: $(a=x$(b)) -> $(a=xB) -> ...
        expanded = _MACRO.sub(value, text)
        if expanded == text:
            break
        text = expanded
    if left := _OPEN.search(text):
        raise UndefinedMacro(text[left.start():left.start() + 20], 'is not closed (softIoc would refuse the database)',
                             "close it with ')' or '}', or drop the '$': EPICS has no escape for it")
    return text


def expand_value(value: Any, macros: Mapping[str, Any]) -> Any:
    """``value`` with macros expanded in it: in a string, or in every string of a JSON link (dict/list)."""
    if isinstance(value, str):
        return expand(value, macros)
    if isinstance(value, dict):
        return {expand_value(k, macros): expand_value(v, macros) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [expand_value(v, macros) for v in value]
    return value


def has_macro(value: Any) -> bool:
    """True if ``value`` (a string, or a JSON link's strings) still holds a macro reference (closed or not)."""
    if isinstance(value, str):
        return bool(_OPEN.search(value))
    if isinstance(value, dict):
        return any(has_macro(k) or has_macro(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_macro(v) for v in value)
    return False
