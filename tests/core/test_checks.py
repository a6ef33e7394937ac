"""Every EPICS limit is a ModelError with an id, a hint and the class.field it concerns."""
import enum

import pytest

from devioc import models
from devioc.checks import ModelError, check_callbacks


def errors_of(build):
    with pytest.raises(ModelError) as info:
        build()
    return [(m.id, m.obj) for m in info.value.messages], str(info.value)


def define(**fields):
    return lambda: type('Bad', (models.Model,), dict(fields))


def test_e001_name_too_long_after_expansion():
    class M(models.Model):
        value = models.Float('$(prefix)value')
    records_ok = M.pv_names('DEV', {'prefix': 'p'})
    assert records_ok == ['DEV:pvalue']
    ids, text = errors_of(lambda: M.pv_names('DEV', {'prefix': 'x' * 60}))
    assert ids == [('devioc.E001', 'M.value')]
    assert 'EPICS allows 60' in text and 'HINT' in text


@pytest.mark.parametrize('name', ['has space', 'quo"te', 'dot.ted', 'dol$lar', "ti'ck", 'tab\there'])
def test_e002_illegal_name_characters(name):
    ids, _ = errors_of(define(f=models.Float(name)))
    assert ids == [('devioc.E002', 'Bad.f')]


def test_e002_illegal_device_name():
    class M(models.Model):
        f = models.Float('f')
    ids, _ = errors_of(lambda: M.pv_names('BAD DEV'))
    assert ids == [('devioc.E002', 'M.f')]


def test_e003_desc_too_long():
    ids, text = errors_of(define(f=models.Float('f', desc='x' * 41)))
    assert ids == [('devioc.E003', 'Bad.f')] and 'EPICS keeps 40' in text
    type('Fine', (models.Model,), {'f': models.Float('f', desc='x' * 40)})


def test_e004_too_many_states():
    ids, _ = errors_of(define(e=models.Enum('e', choices=[f'S{i}' for i in range(17)])))
    assert ids == [('devioc.E004', 'Bad.e')]
    type('Fine', (models.Model,), {'e': models.Enum('e', choices=[f'S{i}' for i in range(16)])})


def test_e005_state_string_too_long():
    ids, _ = errors_of(define(e=models.Enum('e', choices=['OK', 'x' * 26])))
    assert ids == [('devioc.E005', 'Bad.e')]
    ids, _ = errors_of(define(t=models.Toggle('t', oname='y' * 26)))
    assert ids == [('devioc.E005', 'Bad.t')]


def test_toggle_default_zname_is_the_name_cut_to_fit():
    class M(models.Model):
        t = models.Toggle('a_rather_long_toggle_name_that_goes_on')
    assert len(M._fields['t'].fields['ZNAM']) == 25


def test_e006_calc_too_long():
    ids, text = errors_of(define(c=models.Calc('c', calc='A+' * 40 + 'B')))
    assert ids == [('devioc.E006', 'Bad.c')] and 'holds 79' in text


def test_e007_unknown_array_type():
    ids, text = errors_of(define(a=models.Array('a', type=complex)))
    assert ids == [('devioc.E007', 'Bad.a')] and 'DOUBLE' in text
    ids, _ = errors_of(define(a=models.Array('a', type='QUAD')))
    assert ids == [('devioc.E007', 'Bad.a')]


def test_e008_unknown_field_with_did_you_mean():
    ids, text = errors_of(define(f=models.Float('f', HIHGH=3)))
    assert ids == [('devioc.E008', 'Bad.f')] and 'did you mean HIGH?' in text


def test_e009_duplicate_record_names():
    ids, _ = errors_of(define(a=models.Float('x'), b=models.Integer('x')))
    assert ids == [('devioc.E009', 'Bad.b')]

    class M(models.Model):
        a = models.Float('$(p)x')
        b = models.Float('yx')
    ids, _ = errors_of(lambda: M.pv_names('D', {'p': 'y'}))
    assert ids == [('devioc.E009', 'M.b')]


class _Model(models.Model):
    value = models.Float('value')


def test_e010_callback_signature():
    class App:
        def do_value(self, pv, value):
            pass
    messages = check_callbacks(_Model, App())
    assert [m.id for m in messages] == ['devioc.E010']
    assert 'def do_value(self, pv, value, ioc)' in messages[0].hint
    assert 'test_checks.py:' in messages[0].msg


def test_e011_callback_for_no_field():
    class App:
        def do_valeu(self, pv, value, ioc):
            pass

        def do_value(self, pv, value, ioc, *extra):
            pass
    messages = check_callbacks(_Model, App())
    assert [m.id for m in messages] == ['devioc.E011'] and messages[0].hint == 'did you mean do_value?'


def test_callbacks_checked_when_the_model_starts():
    class App:
        def do_nothing_here(self, pv, value, ioc):
            pass
    with pytest.raises(ModelError, match='devioc.E011'):
        _Model('CHECKDEV', callbacks=App())


def test_e012_menu_choice():
    ids, text = errors_of(define(f=models.Float('f', SCAN='1 sec')))
    assert ids == [('devioc.E012', 'Bad.f')] and "'1 second'" in text
    type('Fine', (models.Model,), {'f': models.Float('f', SCAN='1 second', HHSV='MAJOR', PINI=1)})


def test_e013_string_too_long_for_its_field():
    ids, _ = errors_of(define(f=models.Float('f', units='x' * 16)))
    assert ids == [('devioc.E013', 'Bad.f')]
    ids, _ = errors_of(define(s=models.String('s', max_length=5, default='toolong')))
    assert ids == [('devioc.E013', 'Bad.s')]


def test_e014_unknown_keyword_with_hint():
    ids, text = errors_of(define(f=models.Float('f', unit='mm')))
    assert ids == [('devioc.E014', 'Bad.f')] and 'did you mean units=?' in text
    # a lower-case keyword that names no EPICS field stays an error (one that does is W001)
    ids, text = errors_of(define(f=models.Float('f', scna='1 second')))
    assert ids == [('devioc.E014', 'Bad.f')] and 'SCNA=' in text


def test_e015_bad_argument_values():
    ids, _ = errors_of(define(a=models.Array('a', length=0)))
    assert ids == [('devioc.E015', 'Bad.a')]
    ids, _ = errors_of(define(f=models.Float('f', max_val=1, min_val=5)))
    assert ids == [('devioc.E015', 'Bad.f')]
    ids, _ = errors_of(define(s=models.String('s', max_length='long')))
    assert ids == [('devioc.E015', 'Bad.s')]


def test_e016_undefined_macro():
    class M(models.Model):
        c = models.Calc('c', calc='A', inpa='$(other):x CP')
    ids, text = errors_of(lambda: M.pv_names('D'))
    assert ids == [('devioc.E016', 'M.c')] and "macros={'other': ...}" in text
    assert M.pv_names('D', {'other': 'O'}) == ['D:c']


def test_e017_field_given_twice():
    ids, _ = errors_of(define(f=models.Float('f', desc='a', DESC='b')))
    assert ids == [('devioc.E017', 'Bad.f')]


def test_e018_default_out_of_range():
    ids, _ = errors_of(define(e=models.Enum('e', choices=['A', 'B'], default=2)))
    assert ids == [('devioc.E018', 'Bad.e')]


def test_e019_not_a_number():
    ids, _ = errors_of(define(f=models.Float('f', HIHI='ninety')))
    assert ids == [('devioc.E019', 'Bad.f')]


def test_all_problems_are_reported_together():
    ids, _ = errors_of(define(a=models.Float('a', desc='x' * 50), b=models.Array('b', type='QUAD')))
    assert sorted(ids) == [('devioc.E003', 'Bad.a'), ('devioc.E007', 'Bad.b')]


def test_fields_of_base_classes_are_inherited_and_overridable():
    class Base(models.Model):
        a = models.Float('a')
        b = models.Integer('b')

    class Child(Base):
        b = models.String('b')
        c = models.Toggle('c')
    assert list(Child._fields) == ['a', 'b', 'c']
    assert Child._fields['b'].record == 'stringout'
    assert list(Base._fields) == ['a', 'b'] and Base._fields['b'].record == 'longout'


def test_python_enum_choices():
    class Mode(enum.IntEnum):
        FAST_SCAN = 0
        SLOW_SCAN = 3

    class Flags(enum.IntFlag):
        A_BIT = 1
        B_BIT = 2

    e = models.Enum('e', choices=Mode, default=Mode.SLOW_SCAN)
    assert e.choices() == ['FAST SCAN', 'SLOW SCAN'] and e.fields['ONVL'] == 3 and e.default == 1
    assert models.Enum('f', choices=Flags).choices() == ['NONE', 'A BIT', 'B BIT']


def test_e020_field_name_taken_by_the_model():
    ids, text = errors_of(define(ready=models.BoolInput('ready')))
    assert ids == [('devioc.E020', 'Bad.ready')] and "ready_pv = models.BoolInput('ready', ...)" in text
