"""Model checks: every EPICS limit becomes a message with an id and a hint, before softIoc runs.

Static checks run when a model class is defined (:func:`check_class`); checks that need the device
name and macros run when it is instantiated (:func:`check_instance`), and the callbacks object is
checked then too (:func:`check_callbacks`). Errors are raised together as one :class:`ModelError`.

Ids: see ``CHECKS`` below (also listed in the README).
"""
from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import dbd
from .macros import UndefinedMacro, expand, has_macro
from .records import STATE_KEYS, Record, _StringBase

MAX_NAME = 60
MAX_STATES = 16
_BAD_NAME_CHARS = re.compile(r'[\s"\'.$\\]')
_NUMERIC = {'DBF_CHAR', 'DBF_UCHAR', 'DBF_SHORT', 'DBF_USHORT', 'DBF_LONG', 'DBF_ULONG', 'DBF_INT64',
            'DBF_UINT64', 'DBF_FLOAT', 'DBF_DOUBLE', 'DBF_ENUM'}
_STATE_FIELDS = {f'{k}ST' for k in STATE_KEYS} | {'ZNAM', 'ONAM'}

CHECKS = {
    'devioc.E001': 'record name longer than 60 characters after macro expansion',
    'devioc.E002': 'record name with a character EPICS does not allow (space, tab, quote, ".", "$", "\\")',
    'devioc.E003': 'DESC longer than 40 characters',
    'devioc.E004': 'more than 16 states in an Enum',
    'devioc.E005': 'state name longer than 25 characters (ZRST..FFST, ZNAM, ONAM)',
    'devioc.E006': 'CALC expression longer than the CALC field holds',
    'devioc.E007': 'unknown array element type (FTVL)',
    'devioc.E008': 'unknown EPICS field for the record type',
    'devioc.E009': 'two fields with the same record name',
    'devioc.E010': 'do_<field> callback that cannot take (pv, value, ioc)',
    'devioc.E011': 'do_<name> callback that matches no field',
    'devioc.E012': 'value not among the choices of a menu field (SCAN, OOPT, HHSV, ...)',
    'devioc.E013': 'string value longer than its field holds',
    'devioc.E014': 'unknown keyword argument',
    'devioc.E015': 'invalid argument value (length, max_length, limits, choices)',
    'devioc.E016': 'macro used but not defined',
    'devioc.E017': 'EPICS field given twice',
    'devioc.E018': 'default value out of range',
    'devioc.E019': 'non-numeric value for a numeric field',
    'devioc.E020': 'field whose attribute name is taken by the Model itself (ready, process, shutdown, ...)',
}


@dataclass
class CheckMessage:
    """One problem: its id, what is wrong, what to do, and where."""

    id: str
    msg: str
    hint: str = ''
    obj: str = ''

    def __str__(self) -> str:
        text = f'{self.obj}: ({self.id}) {self.msg}'
        return f'{text}\n\tHINT: {self.hint}' if self.hint else text


class ModelError(ValueError):
    """A model class or instance that EPICS would refuse or misread; ``messages`` lists why."""

    def __init__(self, messages: list[CheckMessage]):
        self.messages = messages
        super().__init__('\n'.join(str(m) for m in messages))


def raise_if(messages: list[CheckMessage]) -> None:
    """Raise ModelError if there are any messages."""
    if messages:
        raise ModelError(messages)


def _string_limit(record: Record, key: str, size: int, value: str, where: str) -> list[CheckMessage]:
    limit = size - 1
    if len(value) <= limit:
        return []
    if key == 'DESC':
        return [CheckMessage('devioc.E003', f'DESC is {len(value)} characters; EPICS keeps {limit}',
                             'shorten desc=...', where)]
    if key in _STATE_FIELDS:
        return [CheckMessage('devioc.E005', f'state name {value!r} ({key}) is {len(value)} characters; '
                             f'EPICS keeps {limit}', 'shorten the state name', where)]
    if key == 'CALC':
        return [CheckMessage('devioc.E006', f'CALC is {len(value)} characters; the field holds {limit}',
                             'split the expression over two Calc records, or use shorter input names', where)]
    hint = 'use a longer max_length (a CHAR waveform holds long strings)' if key == 'VAL' else \
        f'shorten the value of {key}'
    return [CheckMessage('devioc.E013', f'{key} is {len(value)} characters; the field holds {limit}', hint, where)]


def _field_value(record: Record, key: str, value: Any, where: str) -> list[CheckMessage]:
    defs = dbd.fields(record.record)
    fdef = defs.get(key)
    if fdef is None:
        close = difflib.get_close_matches(key, list(defs), n=1)
        hint = f'did you mean {close[0]}?' if close else f'see the {record.record} record reference'
        return [CheckMessage('devioc.E008', f'{record.record} records have no field {key}', hint, where)]
    text = value if isinstance(value, str) else None
    if text is not None and has_macro(text):
        return []  # checked again once expanded
    if fdef.menu:
        if isinstance(value, bool) or not (value in fdef.menu or (isinstance(value, int) and 0 <= value < len(fdef.menu))):
            if not (isinstance(value, str) and value.isdigit() and int(value) < len(fdef.menu)):
                return [CheckMessage('devioc.E012', f'{key}={value!r} is not one of its choices',
                                     f'use one of: {", ".join(repr(c) for c in fdef.menu)}', where)]
    elif fdef.dbf in _NUMERIC:
        try:
            float(value)
        except (TypeError, ValueError):
            return [CheckMessage('devioc.E019', f'{key}={value!r} is not a number', f'{key} is {fdef.dbf}', where)]
    elif fdef.dbf == 'DBF_STRING' and fdef.size:
        return _string_limit(record, key, fdef.size, str(value), where)
    return []


def check_record(record: Record, where: str) -> list[CheckMessage]:
    """Checks of one declared record that need no device name or macros."""
    messages = [CheckMessage(p.id, p.msg, p.hint, where) for p in record.problems]
    if record.record not in dbd.record_types():
        return messages
    if not has_macro(record.name) and _BAD_NAME_CHARS.search(record.name):
        messages.append(CheckMessage('devioc.E002', f'record name {record.name!r} has a character EPICS does not allow',
                                     'use letters, digits and _-:;<>[]{}', where))
    states = getattr(record, 'states', [])
    if len(states) > MAX_STATES:
        messages.append(CheckMessage('devioc.E004', f'{len(states)} states; an EPICS {record.record} holds at most 16',
                                     'use fewer choices, or a String/Integer field', where))
    for key, value in record.fields.items():
        messages.extend(_field_value(record, key, value, where))
    default = getattr(record, 'default', None)
    if states and isinstance(default, int) and not 0 <= default < len(states):
        messages.append(CheckMessage('devioc.E018', f'default={default} but there are {len(states)} states',
                                     f'use an index from 0 to {len(states) - 1}', where))
    if isinstance(record, _StringBase) and isinstance(default, str) and len(default) > record.max_length:
        messages.append(CheckMessage('devioc.E013', f'default is {len(default)} characters, max_length is '
                                     f'{record.max_length}', 'raise max_length or shorten the default', where))
    return messages


def check_class(cls: type) -> list[CheckMessage]:
    """Static checks of a model class: every field, and duplicate record names."""
    messages: list[CheckMessage] = []
    seen: dict[str, str] = {}
    reserved = getattr(cls, 'RESERVED_NAMES', frozenset())
    for attname, record in cls._fields.items():
        where = f'{cls.__name__}.{attname}'
        messages.extend(check_record(record, where))
        if attname in reserved or attname.startswith('_'):
            messages.append(CheckMessage('devioc.E020', f'attribute name {attname!r} is used by the Model itself',
                                         f"rename the attribute and keep the PV name: "
                                         f"{attname}_pv = models.{type(record).__name__}({record.name!r}, ...)", where))
        if record.name in seen:
            messages.append(CheckMessage('devioc.E009', f'record name {record.name!r} is also used by '
                                         f'{cls.__name__}.{seen[record.name]}', 'give each field its own name', where))
        seen.setdefault(record.name, attname)
    return messages


def expanded(cls: type, device: str, macros: Mapping[str, str]) -> tuple[dict, list[CheckMessage]]:
    """Expand every record name and field of a model for a device.

    Returns ``({attname: (pv_name, {field: value})}, messages)``.
    """
    out: dict[str, tuple[str, dict]] = {}
    messages: list[CheckMessage] = []
    all_macros = {**macros, 'device': device}
    seen: dict[str, str] = {}
    for attname, record in cls._fields.items():
        where = f'{cls.__name__}.{attname}'
        try:
            name = f'{device}:{expand(record.name, all_macros)}'
        except UndefinedMacro as err:
            messages.append(CheckMessage('devioc.E016', f'record name uses {err}',
                                         f'pass macros={{{err.name!r}: ...}} to the model', where))
            continue
        if len(name) > MAX_NAME:
            messages.append(CheckMessage('devioc.E001', f'record name {name!r} is {len(name)} characters; '
                                         f'EPICS allows {MAX_NAME}', 'use a shorter device or field name', where))
        if _BAD_NAME_CHARS.search(name):
            messages.append(CheckMessage('devioc.E002', f'record name {name!r} has a character EPICS does not allow',
                                         'use letters, digits and _-:;<>[]{} in device names and macros', where))
        if name in seen:
            messages.append(CheckMessage('devioc.E009', f'record name {name!r} is also used by '
                                         f'{cls.__name__}.{seen[name]}', 'give each field its own name', where))
        seen.setdefault(name, attname)
        fields = {}
        for key, value in record.fields.items():
            if isinstance(value, str) and '$' in value:
                try:
                    value = expand(value, all_macros)
                except UndefinedMacro as err:
                    messages.append(CheckMessage('devioc.E016', f'{key} uses {err}',
                                                 f'pass macros={{{err.name!r}: ...}} to the model', where))
                    continue
                messages.extend(_field_value(record, key, value, where))
            fields[key] = value
        out[attname] = (name, fields)
    return out, messages


def check_callbacks(cls: type, callbacks: Any) -> list[CheckMessage]:
    """Every ``do_<name>`` on the callbacks object must match a field and take (pv, value, ioc).

    ``do_<attname>`` matches the field whose attribute is ``attname`` exactly (``do_A`` for ``A``);
    the lower-case form (``do_a``) matches it too, as the original devioc looked callbacks up.
    """
    messages: list[CheckMessage] = []
    names = set(cls._fields) | {attname.lower() for attname in cls._fields}
    owner = type(callbacks).__name__
    for attr in dir(type(callbacks)) if not isinstance(callbacks, type) else dir(callbacks):
        if not attr.startswith('do_'):
            continue
        method = getattr(callbacks, attr, None)
        if not callable(method):
            continue
        where = f'{owner}.{attr}'
        try:
            source = f' (defined at {inspect.getsourcefile(method)}:{inspect.getsourcelines(method)[1]})'
        except (TypeError, OSError):
            source = ''
        if attr[3:] not in names:
            close = difflib.get_close_matches(attr[3:], sorted(cls._fields), n=1) or \
                difflib.get_close_matches(attr[3:], sorted(names), n=1)
            hint = f'did you mean do_{close[0]}?' if close else \
                'rename it to do_<field> for a field of the model, or drop the do_ prefix if it is not a callback'
            messages.append(CheckMessage('devioc.E011', f'callback {attr}{source} matches no field of '
                                         f'{cls.__name__}', hint, where))
            continue
        try:
            inspect.signature(method).bind(None, None, None)
        except TypeError:
            messages.append(CheckMessage('devioc.E010', f'callback {attr}{inspect.signature(method)}{source} '
                                         'cannot be called with (pv, value, ioc)',
                                         f'define it as def {attr}(self, pv, value, ioc):', where))
        except ValueError:
            pass  # builtins without a signature: trust them
    return messages
