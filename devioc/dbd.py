"""Record-type field definitions, read from the EPICS base database definition (.dbd).

The checks need to know, for each record type, which fields exist, their DBF type, the size of
string fields and the choices of menu fields. That table is generated once from the softIoc.dbd of
EPICS base 7.0.8.1 (``python -m devioc.dbd path/to/softIoc.dbd``) into ``dbd_fields.json`` and
loaded lazily the first time a model class is checked.
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TABLE_PATH = Path(__file__).with_name('dbd_fields.json')

_MENU = re.compile(r'^menu\((\w+)\)\s*\{')
_CHOICE = re.compile(r'^\s*choice\(\s*\w+\s*,\s*"([^"]*)"\s*\)')
_RECORD = re.compile(r'^recordtype\((\w+)\)\s*\{')
_FIELD = re.compile(r'^\s*field\((\w+)\s*,\s*(DBF_\w+)\s*\)')
_SIZE = re.compile(r'^\s*size\((\d+)\)')
_MENU_REF = re.compile(r'^\s*menu\((\w+)\)')


@dataclass(frozen=True)
class FieldDef:
    """One field of a record type: its DBF type, string size and menu choices."""

    name: str
    dbf: str
    size: int = 0
    menu: tuple[str, ...] = ()


def parse_dbd(text: str) -> dict:
    """Parse .dbd text into ``{'menus': {name: [choices]}, 'records': {type: {field: [...]}}}``."""
    menus: dict[str, list[str]] = {}
    records: dict[str, dict[str, list]] = {}
    menu = record = field = None
    for line in text.splitlines():
        if match := _MENU.match(line):
            menu, record = match.group(1), None
            menus[menu] = []
        elif match := _RECORD.match(line):
            record, menu = match.group(1), None
            records[record] = {}
        elif menu and (match := _CHOICE.match(line)):
            menus[menu].append(match.group(1))
        elif record and (match := _FIELD.match(line)):
            field = [match.group(2), 0, None]
            records[record][match.group(1)] = field
        elif record and field and (match := _SIZE.match(line)):
            field[1] = int(match.group(1))
        elif record and field and (match := _MENU_REF.match(line)):
            field[2] = match.group(1)
    return {'menus': menus, 'records': records}


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(TABLE_PATH.read_text())


def record_types() -> list[str]:
    """All record types that EPICS base's softIoc knows."""
    return sorted(_table()['records'])


@lru_cache(maxsize=None)
def fields(record_type: str) -> dict[str, FieldDef]:
    """The fields of ``record_type``, by name."""
    table = _table()
    out = {}
    for name, (dbf, size, menu) in table['records'][record_type].items():
        out[name] = FieldDef(name, dbf, size, tuple(table['menus'].get(menu, ())) if menu else ())
    return out


def main(argv: list[str]) -> int:
    """Regenerate dbd_fields.json from a softIoc.dbd: ``python -m devioc.dbd softIoc.dbd``."""
    if len(argv) != 1:
        print('usage: python -m devioc.dbd path/to/softIoc.dbd', file=sys.stderr)
        return 2
    table = parse_dbd(Path(argv[0]).read_text())
    TABLE_PATH.write_text(
        json.dumps({'generated': 'by python -m devioc.dbd from EPICS base softIoc.dbd; do not edit', **table},
                   sort_keys=True, separators=(',', ':')) + '\n'
    )
    print(f'wrote {TABLE_PATH}: {len(table["records"])} record types, {len(table["menus"])} menus')
    return 0


if __name__ == '__main__':
    raise SystemExit(main(sys.argv[1:]))
