"""Model checks: every EPICS limit becomes a message with an id and a hint, before softIoc runs.

Static checks run when a model class is defined (:func:`check_class`); checks that need the device
name and macros run when it is instantiated or rendered (:func:`expanded`), and the callbacks object is
checked then too (:func:`check_callbacks`). Errors are raised together as one :class:`ModelError`;
warnings (``devioc.W0xx``: the model runs, but probably not as meant) are logged on the
``devioc.checks`` logger when the model is expanded: at start-up, and by ``devioc check``.

Every field value is checked by the same rule the renderer writes it with
(:meth:`devioc.dbd.FieldDef.db_text`, from the softIoc.dbd table), so a model the checks pass is a
database softIoc loads, and the other way round (``tests/core/test_differential.py``).

Ids: see ``CHECKS`` below (also listed in the README).
"""
from __future__ import annotations

import difflib
import inspect
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import access, blocking, dbd
from .macros import UndefinedMacro, expand, expand_value, has_macro
from .records import STATE_KEYS, Record, _StringBase

MAX_NAME = 60
MAX_STATES = 16
_BAD_NAME_CHARS = re.compile(r'[\s"\'.$\\]')
_STATE_FIELDS = {f'{k}ST' for k in STATE_KEYS} | {'ZNAM', 'ONAM'}
logger = logging.getLogger(__name__)

CHECKS = {
    'devioc.E001': 'record name longer than 60 bytes (UTF-8) after macro expansion',
    'devioc.E002': 'record name with a character EPICS does not allow (space, tab, quote, ".", "$", "\\")',
    'devioc.E003': 'DESC longer than 40 bytes (UTF-8)',
    'devioc.E004': 'more than 16 states in an Enum',
    'devioc.E005': 'state name longer than 25 bytes (ZRST..FFST, ZNAM, ONAM)',
    'devioc.E006': 'CALC expression longer than the CALC field holds',
    'devioc.E007': 'unknown array element type (FTVL)',
    'devioc.E008': 'unknown EPICS field for the record type',
    'devioc.E009': 'two fields with the same record name',
    'devioc.E010': 'do_<field> or write_<field> callback that cannot take (pv, value, ioc)',
    'devioc.E011': 'do_<name> or write_<name> callback that matches no field (or a write_ no client put can call: calc, calcout)',
    'devioc.E012': 'value not among the choices of a menu field (SCAN, OOPT, ...) or of DTYP (device supports)',
    'devioc.E013': 'string value longer than its field holds (in UTF-8 bytes)',
    'devioc.E014': 'unknown keyword argument',
    'devioc.E015': 'invalid argument value (length, max_length, limits, choices)',
    'devioc.E016': 'macro used but not defined (or defined through itself)',
    'devioc.E017': 'EPICS field given twice',
    'devioc.E018': 'default value out of range',
    'devioc.E019': 'non-numeric value for a numeric field, or a fraction for an integer field',
    'devioc.E020': 'field whose attribute name is taken by a method of the Model (shutdown, on_ioc_exit, pv_names) or starts with _',
    'devioc.E021': 'field a database file cannot set (DBF_NOACCESS fields such as a waveform VAL, NAME)',
    'devioc.E022': 'number beyond what the field\'s C type holds (DBF_SHORT, DBF_LONG, DBF_UCHAR, ...)',
    'devioc.E023': 'number a float field cannot represent (too large, or subnormal)',
    'devioc.E024': 'autosave= that names no field of the record type, or a field autosave cannot save and restore',
    'devioc.E025': 'field whose PV is also one of the model\'s health records (<device>:IOC:HEARTBEAT ...)',
    'devioc.E026': 'blocking=True on a kind that cannot block (input, array, long String, calc), with out=/OUT/'
                   'DTYP, or a bad blocking_timeout (devioc.blocking)',
    'devioc.E028': 'an @models.function the app serves cannot be served as PVs (*args, a bad name, timeout or '
                   'size, a PV name over 60 bytes or taken by a field) (devioc.rpc)',
    'devioc.W001': 'lower-case keyword that names an EPICS field: applied as that field',
    'devioc.W002': 'String(max_length=40): served as a stringout of 39 bytes, as the original devioc did',
    'devioc.W003': 'lower-case keyword that names an EPICS field of other record types only: ignored',
    'devioc.W004': 'ASG that no access rule defines (no Meta.access, no acf=): softIoc puts the record in DEFAULT, '
                   'every client may write',
    'devioc.W005': 'Meta.access_level = 1, or an acf= file, lets clients write the links (ASL1) of a group the '
                   'model\'s fields use, while the model has read-only records: a rewired link writes them',
    'devioc.E027': 'access security: ASG that no rule of Meta.access or of the acf= file defines, a malformed '
                   'Meta.access, or a read-only field the acf= file cannot protect',
}


@dataclass
class CheckMessage:
    """One problem: its id, what is wrong, what to do, and where. Ids ``devioc.W..`` are warnings."""

    id: str
    msg: str
    hint: str = ''
    obj: str = ''

    @property
    def is_warning(self) -> bool:
        """True for a warning (the model runs), False for an error (ModelError)."""
        return self.id.startswith('devioc.W')

    def __str__(self) -> str:
        text = f'{self.obj}: ({self.id}) {self.msg}'
        return f'{text}\n\tHINT: {self.hint}' if self.hint else text


class ModelError(ValueError):
    """A model class or instance that EPICS would refuse or misread; ``messages`` lists why."""

    def __init__(self, messages: list[CheckMessage]):
        self.messages = messages
        super().__init__('\n'.join(str(m) for m in messages))


def raise_if(messages: list[CheckMessage]) -> None:
    """Raise ModelError if there are any errors among ``messages`` (warnings alone do not raise)."""
    errors = [m for m in messages if not m.is_warning]
    if errors:
        raise ModelError(errors)


def warnings_of(messages: list[CheckMessage]) -> list[CheckMessage]:
    """The warnings among ``messages``."""
    return [m for m in messages if m.is_warning]


_RENAMED = {'DESC': ('devioc.E003', 'shorten desc=...'), 'CALC': ('devioc.E006', 'split the expression over two '
            'Calc records, or use shorter input names'), 'OCAL': ('devioc.E006', 'shorten the expression')}


def _field_value(record: Record, key: str, value: Any, where: str) -> list[CheckMessage]:
    """The .dbd rules of field ``key`` (:meth:`devioc.dbd.FieldDef.db_text`) applied to ``value``."""
    defs = dbd.fields(record.record)
    fdef = defs.get(key)
    if fdef is None:
        close = difflib.get_close_matches(key, list(defs), n=1)
        hint = f'did you mean {close[0]}?' if close else f'see the {record.record} record reference'
        return [CheckMessage('devioc.E008', f'{record.record} records have no field {key}', hint, where)]
    if has_macro(value):
        return []  # checked again once expanded
    try:
        fdef.db_text(value)
    except dbd.FieldError as err:
        check_id, hint = err.id, err.hint
        if check_id == 'devioc.E013':
            used, limit = len(str(value).encode('utf-8')), fdef.size - 1
            if key in _RENAMED:
                check_id, hint = _RENAMED[key]
                msg = (f'{key} is {used} bytes (UTF-8); EPICS keeps {limit}' if key == 'DESC' else
                       f'{key} is {used} bytes; the field holds {limit}')
                return [CheckMessage(check_id, msg, hint, where)]
            if key in _STATE_FIELDS:
                return [CheckMessage('devioc.E005', f'state name {value!r} ({key}) is {used} bytes (UTF-8); '
                                     f'EPICS keeps {limit}', 'shorten the state name', where)]
            if key == 'VAL':
                hint = 'use a longer max_length (a CHAR waveform holds long strings)'
        return [CheckMessage(check_id, err.msg, hint, where)]
    return []


def check_record(record: Record, where: str) -> list[CheckMessage]:
    """Checks of one declared record that need no device name or macros."""
    messages = [CheckMessage(p.id, p.msg, p.hint, where) for p in record.problems]
    messages.extend(CheckMessage(*problem, where) for problem in blocking.problems(record))  # E026
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
    if states and isinstance(record.fields.get('VAL'), int):
        default = record.fields['VAL']  # VAL=5 (or val=5, applied by W001) as well as default=5
    if states and isinstance(default, int) and not 0 <= default < len(states):
        messages.append(CheckMessage('devioc.E018', f'default={default} but there are {len(states)} states',
                                     f'use an index from 0 to {len(states) - 1}', where))
    if record.record in ('bo', 'bi'):  # Toggle, BoolInput: a bo/bi VAL of 2 loads as "Illegal_Value"
        val = record.fields.get('VAL')
        if isinstance(val, int) and val not in (0, 1):
            messages.append(CheckMessage('devioc.E018', f'default={val} but a {record.record} has 2 states',
                                         'use 0 or 1', where))
    if isinstance(record, _StringBase) and isinstance(default, str) and not has_macro(default):
        messages.extend(_string_default(record, default, where))
    return messages


def _string_default(record: _StringBase, default: str, where: str) -> list[CheckMessage]:
    used = len(default.encode('utf-8'))
    if used > record.capacity:
        return [CheckMessage('devioc.E013', f'default is {used} bytes (UTF-8); the record holds '
                             f'{record.capacity} (max_length={record.max_length})', 'raise max_length or shorten '
                             'the default', where)]
    if len(default) > record.max_length:
        return [CheckMessage('devioc.E013', f'default is {len(default)} characters, max_length is '
                             f'{record.max_length}', 'raise max_length or shorten the default', where)]
    return []


def check_class(cls: type) -> list[CheckMessage]:
    """Static checks of a model class: every field, and duplicate record names (errors and warnings)."""
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
    messages.extend(access.check_access(cls))  # W004 / E027: ASG groups and Meta.access (issue 14)
    return messages


def expanded(cls: type, device: str, macros: Mapping[str, str]) -> tuple[dict, list[CheckMessage]]:
    """Expand every record name and field of a model for a device.

    Returns ``({attname: (pv_name, {field: value})}, messages)``: the fields as the .db gets them
    (:meth:`Record.db_fields`, macros expanded), and the errors and warnings found.
    """
    out: dict[str, tuple[str, dict]] = {}
    messages: list[CheckMessage] = warnings_of(check_class(cls))
    if not isinstance(device, str) or not device.strip():
        messages.append(CheckMessage('devioc.E015', f'device name {device!r} is empty',
                                     'give the device name, the prefix of every PV (e.g. MYIOC-001)', cls.__name__))
        return out, messages
    all_macros = {**macros, 'device': device}
    seen: dict[str, str] = {}
    for attname, record in cls._fields.items():
        where = f'{cls.__name__}.{attname}'
        try:
            name = f'{device}:{expand(record.name, all_macros)}'
        except UndefinedMacro as err:
            messages.append(CheckMessage('devioc.E016', f'record name uses {err}',
                                         err.hint, where))
            continue
        size = len(name.encode('utf-8'))
        if size > MAX_NAME:
            messages.append(CheckMessage('devioc.E001', f'record name {name!r} is {size} bytes; '
                                         f'EPICS allows {MAX_NAME}', 'use a shorter device or field name', where))
        if _BAD_NAME_CHARS.search(name):
            messages.append(CheckMessage('devioc.E002', f'record name {name!r} has a character EPICS does not allow',
                                         'use letters, digits and _-:;<>[]{} in device names and macros', where))
        if name in seen:
            messages.append(CheckMessage('devioc.E009', f'record name {name!r} is also used by '
                                         f'{cls.__name__}.{seen[name]}', 'give each field its own name', where))
        seen.setdefault(name, attname)
        fields = {}
        for key, value in record.db_fields().items():
            if has_macro(value):
                try:
                    value = expand_value(value, all_macros)
                except UndefinedMacro as err:
                    messages.append(CheckMessage('devioc.E016', f'{key} uses {err}',
                                                 err.hint, where))
                    continue
                messages.extend(_field_value(record, key, value, where))
            fields[key] = value
        if isinstance(record, _StringBase) and has_macro(record.default or ''):
            try:
                messages.extend(_string_default(record, expand(record.default, all_macros), where))
            except UndefinedMacro:
                pass  # reported with the field that holds it
        out[attname] = (name, fields)
    # access (issue 14): an ASG given by a macro is checked as it expands for this device
    messages.extend(access.check_access(cls, macros=all_macros, macro_asgs_only=True))
    return out, messages


def check_callbacks(cls: type, callbacks: Any) -> list[CheckMessage]:
    """Every ``do_<name>`` and ``write_<name>`` on the callbacks object must match a field and take (pv, value, ioc).

    ``do_<attname>`` matches the field whose attribute is ``attname`` exactly (``do_A`` for ``A``);
    the lower-case form (``do_a``) matches it too, as the original devioc looked callbacks up.
    """
    messages: list[CheckMessage] = []
    names = set(cls._fields) | {attname.lower() for attname in cls._fields}
    owner = type(callbacks).__name__
    for attr in dir(type(callbacks)) if not isinstance(callbacks, type) else dir(callbacks):
        prefix = 'do_' if attr.startswith('do_') else 'write_' if attr.startswith('write_') else ''  # devioc.writes
        if not prefix:
            continue
        method = getattr(callbacks, attr, None)
        if not callable(method):
            continue
        where = f'{owner}.{attr}'
        try:
            source = f' (defined at {inspect.getsourcefile(method)}:{inspect.getsourcelines(method)[1]})'
        except (TypeError, OSError):
            source = ''
        if prefix == 'write_' and attr[6:] not in names and not _takes_three(method):
            continue  # an app's own write_file(path) etc.: apps written before write_<field> existed keep working
        if attr[len(prefix):] not in names:
            close = difflib.get_close_matches(attr[len(prefix):], sorted(cls._fields), n=1) or \
                difflib.get_close_matches(attr[len(prefix):], sorted(names), n=1)
            hint = f'did you mean {prefix}{close[0]}?' if close else \
                f'rename it to {prefix}<field> for a field of the model, or drop the {prefix} prefix if it is not a callback'
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


def _takes_three(method: Any) -> bool:
    """True if ``method`` can be called as a callback, with (pv, value, ioc)."""
    try:
        inspect.signature(method).bind(None, None, None)
    except TypeError:
        return False
    except ValueError:
        return True
    return True
