"""The .db and .cmd of reference models match golden files byte for byte; values are escaped."""
from pathlib import Path

import pytest

from devioc import models, render
from devioc.demo import DemoIOC

GOLDEN = Path(__file__).with_name('golden')


class Tricky(models.Model):
    quoted = models.String('quoted', max_length=39, default='say "hi" \\ {braces} $ 100%', desc='a "quoted" desc')
    multiline = models.String('multiline', max_length=80, default='line1\nline2 "q" {x}')
    link = models.CalcOut('link', calc='A*2', inpa='${device}:quoted CP', out='$(target).VAL PP',
                          SCAN='1 second', OOPT='On Change')
    state = models.EnumInput('state', choices=['IDLE', 'BUSY'], ZRSV='NO_ALARM', ONSV='MINOR')
    flag = models.BoolInput('flag', zname='OK', oname='FAULT', OSV='MAJOR')
    temp = models.FloatInput('temp', prec=3, units='K', HIHI=300.5, HHSV='MAJOR')
    count = models.IntegerInput('count')
    text = models.StringInput('text', max_length=200, default='')
    bits = models.BinaryOutput('bits', shift=2)
    shorts = models.Array('shorts', type='short', length=96)


@pytest.mark.parametrize('model,device,macros,stem', [
    (DemoIOC, 'GOLD', {}, 'demo'),
    (Tricky, 'GOLD', {'target': 'OTHER:x'}, 'tricky'),
])
def test_golden_files(model, device, macros, stem):
    db = render.render_db(model, device, macros)
    cmd = render.render_cmd(model, device, macros)
    assert db == (GOLDEN / f'{stem}.db').read_text()
    assert cmd == (GOLDEN / f'{stem}.cmd').read_text()


def test_output_is_stable():
    first = render.render_db(Tricky, 'GOLD', {'target': 'T'})
    assert all(render.render_db(Tricky, 'GOLD', {'target': 'T'}) == first for _ in range(3))


def test_escaping():
    assert render.dbstring('a"b\\c\nd\te\x01') == 'a\\"b\\\\c\\nd\\te\\x01'
    assert render.dbvalue(1e-06) == '"1e-06"'
    assert render.dbvalue(True) == '"1"'
    assert render.dbvalue({'const': 'a "b"'}) == '{"const":"a \\"b\\""}'


def test_macros_expand_in_both_forms():
    db = render.render_db(Tricky, 'DEV', {'target': 'TGT'})
    assert 'field(INPA, "DEV:quoted CP")' in db and 'field(OUT, "TGT.VAL PP")' in db
