"""Macro expansion with EPICS syntax: ``$(name)``, ``${name}`` and ``$(name=default)``."""
from __future__ import annotations

import re
from collections.abc import Mapping

_MACRO = re.compile(r'\$(?:\(([^()=]+)(?:=([^()]*))?\)|\{([^{}=]+)(?:=([^{}]*))?\})')


class UndefinedMacro(KeyError):
    """A macro used in a model has no value."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f'macro {self.name!r} is not defined'


def expand(text: str, macros: Mapping[str, str]) -> str:
    """Expand every macro reference in ``text``; raise UndefinedMacro for one without a value."""
    if '$' not in text:
        return text

    def value(match: re.Match) -> str:
        name = (match.group(1) or match.group(3)).strip()
        default = match.group(2) if match.group(1) else match.group(4)
        if name in macros:
            return str(macros[name])
        if default is not None:
            return default
        raise UndefinedMacro(name)

    return _MACRO.sub(value, text)


def has_macro(text: str) -> bool:
    """True if ``text`` still holds a macro reference."""
    return bool(_MACRO.search(text))
