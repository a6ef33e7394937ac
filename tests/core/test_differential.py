"""The checks agree with a real softIoc, both ways: a record the checks pass loads in softIoc, and a
record they refuse does not (unless the refusal is one of devioc's documented, deliberate ones).

Hypothesis generates record declarations of every kind, with values near every limit: UTF-8 text
around the byte sizes, integral and fractional floats in integer fields, numbers beyond a field's C
type, hex/octal/padded number strings, menu choices and typos, DTYP device supports and typos,
fields a database cannot set. Each batch is loaded by one softIoc (``dbLoadRecords`` then ``exit``);
its error lines name the records it refused. The same comparison runs over every model of the
project's own tests, examples and project template.
"""
from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from devioc import dbd, models, render
from devioc.checks import ModelError
from devioc.softioc import epics_tool

ROOT = Path(__file__).resolve().parents[2]
#: errors for what softIoc itself refuses to load
SOFTIOC_IDS = {'devioc.E023', 'devioc.E003', 'devioc.E005', 'devioc.E006', 'devioc.E008', 'devioc.E012', 'devioc.E013',
               'devioc.E019', 'devioc.E021'}
#: deliberate refusals of things softIoc loads (README "Errors"): beyond a C type (softIoc wraps),
#: states beyond 16, max_val < min_val, a default state past the states, Python-level arguments
DELIBERATE_IDS = {'devioc.E004', 'devioc.E014', 'devioc.E015', 'devioc.E018', 'devioc.E022', 'devioc.E007',
                  'devioc.E017'}
_NAME = re.compile(r'\bDIF(\d+):r\b')
_LINE = re.compile(r'line (\d+)')


def softioc_refusals(db_text: str, tmp_path: Path) -> tuple[set[int], str]:
    """Load ``db_text`` in a real softIoc; the indexes of the DIF<i>:r records it refused, and its output."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / 'batch.db').write_text(db_text, encoding='utf-8')
    (tmp_path / 'batch.cmd').write_text('dbLoadRecords("batch.db")\nexit\n')
    result = subprocess.run([epics_tool('softIoc'), 'batch.cmd'], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=120)
    output = (result.stdout + result.stderr).decode('utf-8', 'replace')
    starts = [(n, int(m.group(1))) for n, line in enumerate(db_text.splitlines(), 1)
              if (m := re.match(r'record\(\w+, "DIF(\d+):r"\)', line))]
    refused = set()
    for line in output.splitlines():
        if 'ERROR' not in line and "Can't" not in line and 'does not have' not in line and 'Error' not in line:
            continue
        refused.update(int(m.group(1)) for m in _NAME.finditer(line))
        for m in _LINE.finditer(line):
            number = int(m.group(1))
            owner = [index for start, index in starts if start <= number]
            if owner:
                refused.add(owner[-1])
    assert 'dbLoadRecords' in output or result.returncode == 0, f'softIoc did not run: {output[-2000:]}'
    return refused, output


def raw_db(record: models.Record, index: int) -> str:
    """The record as a .db with every value written plainly (no devioc rule): what softIoc judges."""
    lines = [f'record({record.record}, "DIF{index}:r") {{']
    for key, value in record.db_fields().items():
        lines.append(f'    field({key}, {render.dbvalue(value)})')
    return '\n'.join(lines + ['}', ''])


def judge(records: list, tmp_path: Path) -> tuple[list[str], dict]:
    """Check each record alone as a model, load the batch in softIoc, and list every disagreement."""
    texts, verdicts = [], {}
    for index, record in enumerate(records):
        try:
            cls = type('Gen', (models.Model,), {'__module__': __name__, 'r': record})
            text = render.render_db(cls, f'DIF{index}')
            verdicts[index] = ('accept', set(), text)
        except ModelError as err:
            ids = {m.id for m in err.messages}
            deliberate = all(m.id in DELIBERATE_IDS or (m.id == 'devioc.E013' and 'max_length' in m.msg)
                             or (m.id == 'devioc.E012' and 'past the last' in m.msg) for m in err.messages)
            verdicts[index] = ('deliberate' if deliberate else 'refuse', ids, raw_db(record, index))
        texts.append(verdicts[index][2].split('\n', 1)[1] if verdicts[index][0] == 'accept' else verdicts[index][2])
    refused, output = softioc_refusals('\n'.join(texts), tmp_path)
    problems = []
    for index, (verdict, ids, text) in verdicts.items():
        if verdict == 'accept' and index in refused:
            problems.append(f'checks pass, softIoc refuses:\n{text}')
        elif verdict == 'refuse' and index not in refused:
            problems.append(f'checks refuse {sorted(ids)}, softIoc loads:\n{text}')
    counts = {v: sum(1 for x in verdicts.values() if x[0] == v) for v in ('accept', 'refuse', 'deliberate')}
    if problems:
        problems.append(f'softIoc said:\n{output[-3000:]}')
    return problems, counts


# -- generated declarations -----------------------------------------------------------------------

TEXT = st.text(alphabet=st.sampled_from('abXY09 _-:é°µ—'), max_size=44)
NEAR = st.one_of(st.integers(-2**40, 2**40), st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, -2**31, -2**31 - 1,
                                                              2**15, 2**16, 255, 256]))
NUMBER = st.one_of(NEAR, st.floats(allow_nan=False, width=64), st.sampled_from([1e3, -1e3, 1.5, 2.0**31, 1e400, 1e-310, 5e-324]))
NUMBER_TEXT = st.sampled_from(['0x10', '010', ' 3 ', '3.0', '1e3', 'abc', '', '-0x7fffffff', '70000', 'inf',
                               'nan', '1,5', '0x1p3', '.5', '5.', '+7', '- 7', '0X1F', '08', '1e400'])
SCANS = st.sampled_from(['', 'Passive', '1 second', '.1 second', '1 sec', 'I/O Intr', '2', '9', '10', 11, 'passive',
                        ' 6', '0x6', '010', '08', '+2', '0xa'])


def upper_fields(rtype: str):
    """Upper-case EPICS fields of ``rtype`` with values near their rules."""
    defs = dbd.fields(rtype)
    devices = list(dbd.devices(rtype)) or ['Soft Channel']
    pool = {
        'DTYP': st.sampled_from(devices + ['Soft Chanel', 'soft channel', 'Raw Soft Channel', 'General Time', '', '1', '0', '3', 7]),
        'SCAN': SCANS,
        'DESC': TEXT,
    }
    for key in ('PREC', 'HIHI', 'HOPR', 'MDEL', 'ADEL', 'NELM', 'HIGH', 'SHFT', 'EGU', 'TSE', 'PHAS', 'HHSV',
                'UDF', 'VAL', 'TIME', 'NAME', 'OOPT', 'IVOV', 'HYST', 'ZRSV'):
        if key in defs:
            pool[key] = st.one_of(NEAR, NUMBER_TEXT, TEXT, st.sampled_from(['MAJOR', 'NO_ALARM', 'On Change']))
    return st.fixed_dictionaries({}, optional=pool)


def kind_strategy():
    labels = st.lists(st.text(alphabet=st.sampled_from('ABé µ_'), min_size=1, max_size=28), min_size=1,
                      max_size=17, unique=True)
    common = {'desc': st.one_of(st.none(), TEXT)}
    return st.one_of(
        st.builds(models.Float, st.just('r'), max_val=NUMBER, min_val=NUMBER, prec=st.one_of(NEAR, NUMBER_TEXT),
                  units=TEXT, **common),
        st.builds(models.Integer, st.just('r'), max_val=NUMBER, min_val=NUMBER, default=NUMBER, **common),
        st.builds(models.IntegerInput, st.just('r'), default=st.one_of(NEAR, NUMBER_TEXT), **common),
        st.builds(models.Enum, st.just('r'), choices=labels, default=st.integers(-1, 17), **common),
        st.builds(models.Toggle, st.just('r'), zname=TEXT, oname=TEXT, high=st.one_of(st.none(), NUMBER),
                  **common),
        st.builds(models.String, st.just('r'), max_length=st.integers(1, 90), default=TEXT, **common),
        st.builds(models.StringInput, st.just('r'), max_length=st.integers(30, 45), default=TEXT, **common),
        st.builds(models.Array, st.just('r'), type=st.sampled_from([int, float, str, 'SHORT', 'UCHAR', 'QUAD']),
                  length=st.integers(1, 300), **common),
        st.builds(models.Calc, st.just('r'), calc=st.integers(0, 45).map(lambda n: 'A+' * n + 'B'), **common),
        st.builds(models.BinaryOutput, st.just('r'), shift=st.one_of(NEAR, NUMBER_TEXT), **common),
    )


def with_upper(record: models.Record):
    return upper_fields(record.record).map(lambda extra: _apply(record, extra))


def _apply(record: models.Record, extra: dict) -> models.Record:
    for key, value in extra.items():
        record.set_field(key, value)
    return record


RECORDS = kind_strategy().flatmap(lambda r: st.one_of(st.just(r), with_upper(r)))


@settings(max_examples=6, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(batch=st.lists(RECORDS, min_size=50, max_size=60))
def test_checks_agree_with_softioc_on_generated_records(batch, tmp_path_factory):
    """Each generated record: checks pass <=> softIoc loads it (deliberate refusals aside)."""
    problems, counts = judge(batch, tmp_path_factory.mktemp('diff'))
    _TOTALS.append(counts)
    assert not problems, '\n\n'.join(problems[:6])


_TOTALS: list[dict] = []


def test_generated_batches_exercised_both_directions():
    """The generated batches (run just before) held records both passed and refused by the checks."""
    if not _TOTALS:
        pytest.skip('runs after test_checks_agree_with_softioc_on_generated_records')
    total = {key: sum(c[key] for c in _TOTALS) for key in _TOTALS[0]}
    assert total['accept'] >= 50 and total['refuse'] >= 50, total


def test_known_disagreements_of_the_past_are_settled(tmp_path):
    """The witnesses of issue 10: byte lengths, 1e3 in an integer field, DTYP typos, hex integers."""
    records = [
        models.FloatInput('r', desc='Courant faisceau mesuré en µA (moyenne)'),
        models.Enum('r', choices=['OK', 'Température élevée: 10 µA']),
        models.String('r', max_length=39, default='Échantillon n° 12 — position réglée'),
        models.Integer('r', max_val=1e3, min_val=-1e3),
        models.Float('r', DTYP='Soft Chanel'),
        models.Float('r', DTYP='Raw Soft Channel'),
        models.Integer('r', HOPR='0x10', LOPR='010', MDEL=' 3 '),
        models.Array('r', type=int, length=4, VAL=1),
        models.Float('r', PREC=1.5),
    ]
    problems, counts = judge(records, tmp_path)
    assert not problems, '\n\n'.join(problems)
    assert counts == {'accept': 3, 'refuse': 6, 'deliberate': 0}


def test_menu_indexes_softioc_wraps_are_deliberate_refusals(tmp_path):
    """HHSV=-1 and 65535 load in softIoc (the record then holds 65535, no choice's index), as the
    index one past the last does: devioc refuses all three, deliberately."""
    records = [models.Float('r', HHSV=-1), models.Float('r', HHSV='65535'), models.Float('r', HHSV=4),
               models.Float('r', HHSV=3)]
    problems, counts = judge(records, tmp_path)
    assert not problems, '\n\n'.join(problems)
    assert counts == {'accept': 1, 'refuse': 0, 'deliberate': 3}


# -- the project's own models -----------------------------------------------------------------------

def _own_models(tmp_path: Path) -> list[type]:
    from devioc.cli import start_project

    target = start_project('diffproj', str(tmp_path / 'diffproj'))
    for path in (str(target), str(ROOT / 'examples' / 'lut'), str(ROOT), str(ROOT / 'tests' / 'core'),
                 str(ROOT / 'tests' / 'cli')):
        if path not in sys.path:
            sys.path.insert(0, path)
    modules = ['diffproj.ioc', 'lut.ioc', 'examples.unclesam.robot', 'devioc.demo', 'test_live', 'test_render',
               'test_checks', 'test_model_commands']
    found = []
    for name in modules:
        module = importlib.import_module(name)
        found += [obj for obj in vars(module).values()
                  if isinstance(obj, type) and issubclass(obj, models.Model) and obj is not models.Model
                  and obj.__module__ == module.__name__]
    return found


def test_checks_agree_with_softioc_on_the_projects_own_models(tmp_path):
    """Every model of the tests, examples/lut, examples/unclesam and the project template loads."""
    own = _own_models(tmp_path)
    assert len(own) >= 6, [m.__name__ for m in own]
    texts = []
    for index, cls in enumerate(own):
        macros = {name: 'X' for record in cls._fields.values() for value in [record.name, *record.fields.values()]
                  for name in re.findall(r'\$[({](\w+)', str(value)) if name != 'device'}
        texts.append(render.render_db(cls, f'OWN{index}', macros))
    (tmp_path / 'own.db').write_text('\n'.join(texts), encoding='utf-8')
    (tmp_path / 'own.cmd').write_text('dbLoadRecords("own.db")\nexit\n')
    result = subprocess.run([epics_tool('softIoc'), 'own.cmd'], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=120)
    output = (result.stdout + result.stderr).decode('utf-8', 'replace')
    errors = [line for line in output.splitlines() if 'ERROR' in line or "Can't" in line or 'Error' in line]
    assert not errors, f'{[m.__name__ for m in own]}: {errors[:10]}'


def test_json_links_agree_with_softioc(tmp_path):
    """JSON link values (a link type from the .dbd's link() lines, constants) agree with softIoc."""
    accepted = [{'const': 1.5}, {'const': [1, 2]}, {'const': ['a', 'b']}, {'const': 'text'}, {'const': True},
                [1, 2, 3], {}, {'calc': {'expr': 'A+1', 'args': [1]}}, {'state': 'busy'}]
    refused = [{'const': {'a': 1}}, {'nosuch': 1}, {'const': 1, 'calc': 2}, {'const': [1, 'a']},
               {'const': [[1]]}, {'const': None}, {'ca': 'X:y'}, {'db': 'X:y'}]
    records = [models.FloatInput('r', INP=value) for value in accepted + refused]
    problems, counts = judge(records, tmp_path)
    assert not problems, '\n\n'.join(problems)
    assert counts == {'accept': len(accepted), 'refuse': len(refused), 'deliberate': 0}
