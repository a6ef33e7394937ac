"""Record-type field rules, read from the EPICS base database definition (.dbd).

One table serves both the checks and the renderer: for each record type, each field's DBF type,
string size, menu choices and ``special()`` class, and the record type's device supports (the
``device(rtyp, ...)`` lines, the choices of DTYP). It is generated once from the softIoc.dbd of
EPICS base 7.0.8.1 (``python -m devioc.dbd path/to/softIoc.dbd``) into ``dbd_fields.json`` (a
generated file: do not edit it) and loaded lazily the first time a model class is checked.

:meth:`FieldDef.db_text` is the one place that decides whether a value can go into a field in a
.db file and how it is written there; the checks report its :class:`FieldError` with the id it
carries, the renderer writes the text it returns.
"""
from __future__ import annotations

import difflib
import json
import math
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

TABLE_PATH = Path(__file__).with_name('dbd_fields.json')

_MENU = re.compile(r'^menu\((\w+)\)\s*\{')
_CHOICE = re.compile(r'^\s*choice\(\s*\w+\s*,\s*"([^"]*)"\s*\)')
_RECORD = re.compile(r'^recordtype\((\w+)\)\s*\{')
_FIELD = re.compile(r'^\s*field\((\w+)\s*,\s*(DBF_\w+)\s*\)')
_SIZE = re.compile(r'^\s*size\((\d+)\)')
_MENU_REF = re.compile(r'^\s*menu\((\w+)\)')
_SPECIAL = re.compile(r'^\s*special\((\w+)\)')
_ASL0 = re.compile(r'^\s*asl\(\s*ASL0\s*\)')
_LINK = re.compile(r'^link\(\s*(\w+)\s*,')
_DEVICE = re.compile(r'^device\(\s*(\w+)\s*,\s*\w+\s*,\s*\w+\s*,\s*"([^"]*)"\s*\)')

#: C range of each integer DBF type (dbPutString parses with strtol-like rules: 0x.. hex, 0.. octal)
INT_RANGES = {
    'DBF_CHAR': (-2**7, 2**7 - 1), 'DBF_UCHAR': (0, 2**8 - 1), 'DBF_SHORT': (-2**15, 2**15 - 1),
    'DBF_USHORT': (0, 2**16 - 1), 'DBF_LONG': (-2**31, 2**31 - 1), 'DBF_ULONG': (0, 2**32 - 1),
    'DBF_INT64': (-2**63, 2**63 - 1), 'DBF_UINT64': (0, 2**64 - 1), 'DBF_ENUM': (0, 2**16 - 1),
}
FLOAT_MAX = {'DBF_FLOAT': 3.4028234663852886e38, 'DBF_DOUBLE': sys.float_info.max}
FLOAT_MIN = {'DBF_FLOAT': 1.1754943508222875e-38, 'DBF_DOUBLE': sys.float_info.min}
LINKS = ('DBF_INLINK', 'DBF_OUTLINK', 'DBF_FWDLINK')
_INT_TEXT = re.compile(r'\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)\s*\Z')
_FLOAT_TEXT = re.compile(
    r'\s*[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)'
    r'(?:[pP][+-]?\d+)?|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN](?:\([0-9A-Za-z_]*\))?)\s*\Z')
_ESCAPES = {'\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r', '\t': '\\t'}
_SPECIAL_CHARS = re.compile(r'[\\"\x00-\x1f\x7f]')


class FieldError(ValueError):
    """A value a field cannot take in a .db file: ``id`` is the check id, ``hint`` what to do."""

    def __init__(self, check_id: str, msg: str, hint: str = ''):
        super().__init__(msg)
        self.id, self.msg, self.hint = check_id, msg, hint


def dbstring(text: Any) -> str:
    """Escape text for a double-quoted .db/.cmd string (backslash, quote, control characters)."""
    return _SPECIAL_CHARS.sub(lambda m: _ESCAPES.get(m.group()) or f'\\x{ord(m.group()):02x}', str(text))


def parse_int(text: str) -> int | None:
    """An integer as dbPutString reads it (decimal, ``0x`` hex, leading-``0`` octal), else None."""
    match = _INT_TEXT.match(text)
    if not match:
        return None
    digits = match.group(2)
    base = 16 if digits[:2] in ('0x', '0X') else 8 if digits.startswith('0') and len(digits) > 1 else 10
    value = int(digits, base)
    return -value if match.group(1) == '-' else value


@dataclass(frozen=True)
class FieldDef:
    """One field of a record type: DBF type, string size, menu (or DTYP device) choices, special."""

    name: str
    dbf: str
    size: int = 0
    menu: tuple[str, ...] = ()
    special: str = ''
    #: the field's access security level (the .dbd's ``asl()``; ASL1 unless it says ASL0): an .acf
    #: ``RULE(0, WRITE)`` lets clients write the ASL0 fields only (VAL, and calcout's ODLY, OVAL, ...)
    asl: int = 1

    @property
    def settable(self) -> bool:
        """False for fields dbLoadRecords refuses to set (DBF_NOACCESS, NAME)."""
        return self.dbf != 'DBF_NOACCESS' and self.name != 'NAME'

    def db_text(self, value: Any) -> str:
        """``value`` as it is written in the .db file, or FieldError if softIoc cannot hold it.

        Rules (EPICS base 7.0.8.1 ``dbPutString``): strings are counted in UTF-8 bytes, NUL
        included in ``size``; integer fields take integers (decimal, hex, octal) within their C
        type (softIoc itself wraps out-of-range values silently: devioc refuses them); float
        fields take what ``strtod`` reads, within range and not subnormal; menus and DTYP take a
        choice, a choice index or '' (softIoc also takes the index one past the last: refused here); DBF_NOACCESS fields and NAME cannot be set from a .db file.

        Raises:
            FieldError: the value cannot be written into this field.
        """
        key = self.name
        if not self.settable:
            raise FieldError('devioc.E021', f'{key} cannot be set in a database file (it is {self.dbf}'
                             f'{", set by the record itself" if key != "NAME" else ""})',
                             f'drop {key}=...; the record or devioc sets it')
        if isinstance(value, (dict, list, tuple)) and self.dbf in LINKS:
            _check_json_link(key, value)
            # '$' as a JSON escape: dbLoadRecords would expand "$(x)" in the text as a macro (and fail
            # on an undefined one); macros were expanded here already, and the JSON reads the same
            return json.dumps(value, separators=(',', ':'), ensure_ascii=False).replace('$', '\\u0024')
        if isinstance(value, bool):
            value = int(value)
        if self.menu or self.dbf == 'DBF_DEVICE':
            return f'"{dbstring(self._choice(value))}"'
        if self.dbf in INT_RANGES:
            return f'"{self._integer(value)}"'
        if self.dbf in FLOAT_MAX:
            return f'"{self._float(value)}"'
        if isinstance(value, (dict, list, tuple)):
            raise FieldError('devioc.E019', f'{key}={value!r}: a {self.dbf} field takes text, not '
                             f'{type(value).__name__}', f'give {key} as a string')
        text = str(value)
        if self.dbf == 'DBF_STRING' and self.size:
            used = len(text.encode('utf-8'))
            if used > self.size - 1:
                raise FieldError('devioc.E013', f'{key} is {used} bytes in UTF-8; the field holds '
                                 f'{self.size - 1}', f'shorten the value of {key} (non-ASCII characters '
                                 'take 2-4 bytes)')
            if self.special == 'SPC_CALC' and key in ('CALC', 'OCAL') and not text.strip():
                raise FieldError('devioc.E006', f'{key} is empty: softIoc refuses an empty expression '
                                 '("NULL or empty input argument to postfix()")',
                                 f'give {key} an expression (e.g. "0"), or leave it out')
        return f'"{dbstring(text)}"'

    def _choice(self, value: Any) -> str:
        choices = self.menu
        what = 'device support' if self.dbf == 'DBF_DEVICE' else 'choice'
        if isinstance(value, int) and 0 <= value < len(choices):
            return str(value)
        text = str(value) if isinstance(value, (str, int)) else None
        if text is not None and (text in choices or text == ''):  # '' leaves the default, as softIoc does
            return text
        # an index as dbPutString reads it (base 0, as parse_int: ' 6', '0x6', '010' is 8; '08' is no number)
        index = value if isinstance(value, int) else parse_int(text) if text is not None else None
        if index is not None and 0 <= index < len(choices):
            return str(index)
        # dbPutString takes these and the record holds an index no choice has: one past the last (an
        # off-by-one in its check), and -1 or 65535 (read as a signed short, -1 passes it; both store 65535)
        if index is not None and (index == len(choices) or index in (-1, 0xFFFF)):
            stored = index if index == len(choices) else 0xFFFF
            raise FieldError('devioc.E012', f'{self.name}={value!r} is past the last {what} (index '
                             f'{len(choices) - 1}): softIoc would load it and the record hold {stored}',
                             f'use one of: {", ".join(repr(c) for c in choices)}')
        close = difflib.get_close_matches(str(value), list(choices), n=1)
        hint = f'did you mean {close[0]!r}? ' if close else ''
        raise FieldError('devioc.E012', f'{self.name}={value!r} is not a {what} softIoc has for this record '
                         'type', f'{hint}use one of: {", ".join(repr(c) for c in choices)}')

    def _integer(self, value: Any) -> str:
        key, (low, high) = self.name, INT_RANGES[self.dbf]
        number: int | None
        if isinstance(value, int):
            number = value
        elif isinstance(value, float):
            if not value.is_integer():
                raise FieldError('devioc.E019', f'{key}={value!r} is not a whole number; {key} is {self.dbf}',
                                 f'give {key} an integer')
            number = int(value)
        elif isinstance(value, str):
            if value.strip() == '':
                return ''
            number = parse_int(value)
            if number is None:
                raise FieldError('devioc.E019', f'{key}={value!r} is not an integer; {key} is {self.dbf}',
                                 f'give {key} an integer (decimal, or 0x.. hex)')
        else:
            try:
                number = int(value)  # numpy integers, IntEnum members
            except (TypeError, ValueError):
                number = None
            if number is None or number != value:
                raise FieldError('devioc.E019', f'{key}={value!r} is not an integer; {key} is {self.dbf}',
                                 f'give {key} an integer')
        if not low <= number <= high:
            raise FieldError('devioc.E022', f'{key}={value!r} is beyond what {self.dbf} holds '
                             f'({low}..{high})', f'give {key} a value from {low} to {high}')
        return str(number)

    def _float(self, value: Any) -> str:
        key = self.name
        if isinstance(value, str):
            if value.strip() == '':
                return ''
            if not _FLOAT_TEXT.match(value):
                raise FieldError('devioc.E019', f'{key}={value!r} is not a number; {key} is {self.dbf}',
                                 f'give {key} a number')
            text = value.strip()
            try:
                number = float.fromhex(text) if 'x' in text.lower() else float(text)
            except ValueError:
                number = 0.0
        else:
            try:
                number = float(value)
            except (TypeError, ValueError, OverflowError):
                raise FieldError('devioc.E019', f'{key}={value!r} is not a number; {key} is {self.dbf}',
                                 f'give {key} a number') from None
            text = str(int(value)) if isinstance(value, int) else repr(number)
        if math.isfinite(number) and abs(number) > FLOAT_MAX[self.dbf] or \
                (math.isinf(number) and 'inf' not in text.lower()):
            raise FieldError('devioc.E023', f'{key}={value!r} is beyond what {self.dbf} holds',
                             f'give {key} a value within +-{FLOAT_MAX[self.dbf]:g}')
        if 0 < abs(number) < FLOAT_MIN[self.dbf] and 'x' not in text.lower():  # strtod: ERANGE
            raise FieldError('devioc.E023', f'{key}={value!r} is too small for {self.dbf} (a subnormal '
                             'number)', f'give {key} 0 or a value of at least {FLOAT_MIN[self.dbf]:g}')
        return text


#: JSON link types served by softIocPVA only (QSRV's pva link): accepted, softIocPVA checks them at load
PVA_LINKS = ('pva',)


def _check_json_link(key: str, value: Any) -> None:
    """FieldError unless ``value`` is a JSON link or constant that dbLoadRecords takes.

    Rules (EPICS 7.0.8.1 dbStaticLib/dbConstLink, checked on softIoc): a link object has at most one
    key, a link type from the .dbd's ``link()`` lines; a constant (a bare list, or ``{"const": ...}``)
    is a number, a bool, a string, or a flat list of numbers or of strings.
    """
    hint = ('use {"const": 1.5}, {"const": [1, 2]}, {"const": "text"} or {"calc": {"expr": "A", "args": [1]}}; '
            f'link types: {", ".join(link_types() + PVA_LINKS)}')
    if isinstance(value, dict):
        if not value:
            return
        if len(value) != 1:
            raise FieldError('devioc.E019', f'{key}={value!r}: a JSON link has one link type, not {len(value)}', hint)
        (kind, inner), = value.items()
        if kind not in link_types() + PVA_LINKS:
            close = difflib.get_close_matches(str(kind), list(link_types() + PVA_LINKS), n=1)
            raise FieldError('devioc.E019', f'{key}={value!r}: softIoc has no {kind!r} link type',
                             f'did you mean {close[0]!r}? {hint}' if close else hint)
        if kind != 'const':
            return
        value = inner
    scalars = (int, float, str)
    if isinstance(value, bool) or isinstance(value, scalars):
        return
    items = list(value) if isinstance(value, (list, tuple)) else None
    if items is not None and (all(isinstance(i, (int, float)) for i in items) or all(isinstance(i, str) for i in items)):
        return
    raise FieldError('devioc.E019', f'{key}={value!r} is not a constant softIoc takes (a number, a string, or a '
                     'flat list of numbers or of strings)', hint)


def parse_dbd(text: str) -> dict:
    """Parse .dbd text into ``{'menus': {..}, 'records': {type: {field: [dbf, size, menu, special]}},
    'devices': {type: [DTYP choices]}, 'links': [JSON link types], 'asl0': {type: [ASL0 fields]}}``."""
    menus: dict[str, list[str]] = {}
    records: dict[str, dict[str, list]] = {}
    devices: dict[str, list[str]] = {}
    links: list[str] = []
    asl0: dict[str, list[str]] = {}
    menu = record = field = None
    for line in text.splitlines():
        if match := _MENU.match(line):
            menu, record, field = match.group(1), None, None
            menus[menu] = []
        elif match := _RECORD.match(line):
            record, menu, field = match.group(1), None, None
            records[record] = {}
        elif match := _LINK.match(line):
            links.append(match.group(1))
        elif match := _DEVICE.match(line):
            devices.setdefault(match.group(1), []).append(match.group(2))
        elif menu and (match := _CHOICE.match(line)):
            menus[menu].append(match.group(1))
        elif record and (match := _FIELD.match(line)):
            field = [match.group(2), 0, None, '']
            records[record][match.group(1)] = field
        elif record and field and (match := _SIZE.match(line)):
            field[1] = int(match.group(1))
        elif record and field and (match := _MENU_REF.match(line)):
            field[2] = match.group(1)
        elif record and field and (match := _SPECIAL.match(line)):
            field[3] = match.group(1)
        elif record and field and _ASL0.match(line):
            asl0.setdefault(record, []).append(next(reversed(records[record])))
    return {'menus': menus, 'records': records, 'devices': devices, 'links': links, 'asl0': asl0}


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(TABLE_PATH.read_text())


def record_types() -> list[str]:
    """All record types that EPICS base's softIoc knows."""
    return sorted(_table()['records'])


def link_types() -> tuple[str, ...]:
    """The JSON link types softIoc has (the .dbd's ``link()`` lines: calc, const, ...)."""
    return tuple(_table().get('links', ()))


def devices(record_type: str) -> tuple[str, ...]:
    """The DTYP choices (device supports) softIoc has for ``record_type``."""
    return tuple(_table()['devices'].get(record_type, ()))


@lru_cache(maxsize=None)
def fields(record_type: str) -> dict[str, FieldDef]:
    """The fields of ``record_type``, by name (empty for a record type softIoc does not know)."""
    table = _table()
    asl0 = set(table['asl0'].get(record_type, ()))
    out = {}
    for name, (dbf, size, menu, special) in table['records'].get(record_type, {}).items():
        choices = devices(record_type) if dbf == 'DBF_DEVICE' else \
            tuple(table['menus'].get(menu, ())) if menu else ()
        out[name] = FieldDef(name, dbf, size, choices, special, 0 if name in asl0 else 1)
    return out


def main(argv: list[str]) -> int:
    """Regenerate dbd_fields.json from a softIoc.dbd: ``python -m devioc.dbd softIoc.dbd``."""
    if len(argv) != 1:
        print('usage: python -m devioc.dbd path/to/softIoc.dbd', file=sys.stderr)
        return 2
    table = parse_dbd(Path(argv[0]).read_text())
    TABLE_PATH.write_text(
        json.dumps({'generated': 'GENERATED FILE, do not edit: made by python -m devioc.dbd from EPICS base '
                                 '7.0.8.1 softIoc.dbd', **table},
                   sort_keys=True, separators=(',', ':')) + '\n'
    )
    print(f'wrote {TABLE_PATH}: {len(table["records"])} record types, {len(table["menus"])} menus, '
          f'{sum(map(len, table["devices"].values()))} device supports')
    return 0


if __name__ == '__main__':
    raise SystemExit(main(sys.argv[1:]))
