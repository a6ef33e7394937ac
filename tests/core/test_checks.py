"""Every EPICS limit is a ModelError with an id, a hint and the class.field it concerns."""
import enum

import pytest

from devioc import models, render
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


def test_e001_counts_bytes_not_characters():
    """A record name's 60 are bytes (PVNAME_STRINGSZ): 'µ' takes two of them."""
    class M(models.Model):
        value = models.Float('$(prefix)')
    assert M.pv_names('DEV', {'prefix': 'x' * 56}) == ['DEV:' + 'x' * 56]
    ids, text = errors_of(lambda: M.pv_names('DEV', {'prefix': 'x' * 55 + 'µ'}))
    assert ids == [('devioc.E001', 'M.value')]
    assert 'is 61 bytes' in text


@pytest.mark.parametrize('device', ['', '   '])
def test_e015_empty_device_name(device):
    """An empty device name would serve PVs named ':value' and write into the cache root itself."""
    class M(models.Model):
        value = models.Float('value')
    ids, text = errors_of(lambda: M.pv_names(device))
    assert ids == [('devioc.E015', 'M')]
    assert 'is empty' in text and 'HINT' in text


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
    assert ids == [('devioc.E014', 'Bad.f')] and 'did you mean SCAN=?' in text


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


def test_e020_field_name_taken_by_a_method_of_the_model():
    ids, text = errors_of(define(shutdown=models.BoolInput('shutdown')))
    assert ids == [('devioc.E020', 'Bad.shutdown')] and "shutdown_pv = models.BoolInput('shutdown', ...)" in text
    assert errors_of(define(_hidden=models.Float('hidden')))[0] == [('devioc.E020', 'Bad._hidden')]


def test_the_models_state_names_are_free_for_fields():
    """Issue 13: the model keeps its state in _-names, so these are ordinary field names."""
    for name in ('process', 'directory', 'ready', 'device_name', 'callbacks', 'macros', 'command',
                 'db_name', 'ioc_exit_code'):
        model = define(**{name: models.Float(name)})()
        assert model._fields[name].name == name and model.pv_names('D') == [f'D:{name}']


# -- the .dbd rules: bytes, integer fields, DTYP, fields a database cannot set ----------------------

def warnings_of(cls, device='D', macros=None):
    from devioc import checks
    _, messages = checks.expanded(cls, device, macros or {})
    return [(m.id, m.obj) for m in messages if m.is_warning]


def test_e003_e005_e013_count_utf8_bytes_not_characters():
    """'é' and 'µ' take two bytes of a field: EPICS sizes are bytes (dbStaticLib dbPutString)."""
    ids, text = errors_of(define(f=models.FloatInput('f', desc='Courant faisceau mesuré en µA (moyenne)')))
    assert ids == [('devioc.E003', 'Bad.f')] and '41 bytes' in text
    ids, _ = errors_of(define(e=models.Enum('e', choices=['OK', 'Température élevée: 10 µA'])))
    assert ids == [('devioc.E005', 'Bad.e')]
    ids, _ = errors_of(define(s=models.String('s', max_length=39, default='Échantillon n° 12 — position réglée')))
    assert ('devioc.E013', 'Bad.s') in ids
    type('Fine', (models.Model,), {'f': models.Float('f', desc='é' * 20)})  # 40 bytes: fits


def test_integer_fields_get_integers():
    """Integer(max_val=1e3) renders 1000: longout's DRVH is DBF_LONG, '1000.0' does not load."""
    class Counter(models.Model):
        count = models.Integer('count', max_val=1e3, min_val=-1e3)
    db = render.render_db(Counter, 'D')
    assert 'field(DRVH, "1000")' in db and 'field(LOPR, "-1000")' in db
    ids, text = errors_of(define(i=models.Integer('i', max_val=1.5)))
    assert set(ids) == {('devioc.E019', 'Bad.i')} and 'whole number' in text


def test_e022_number_beyond_the_fields_c_type():
    """softIoc wraps these silently (PREC is DBF_SHORT): refused, deliberately."""
    ids, text = errors_of(define(f=models.Float('f', PREC=70000)))
    assert ids == [('devioc.E022', 'Bad.f')] and '-32768..32767' in text
    ids, _ = errors_of(define(i=models.Integer('i', default=2**31)))
    assert ids == [('devioc.E022', 'Bad.i')]
    ids, _ = errors_of(define(a=models.Array('a', NELM=-1)))
    assert ids == [('devioc.E022', 'Bad.a')]


def test_e023_float_softioc_cannot_represent():
    ids, _ = errors_of(define(f=models.Float('f', HIHI='1e400')))
    assert ids == [('devioc.E023', 'Bad.f')]
    ids, _ = errors_of(define(f=models.Float('f', HIHI=1e-310)))
    assert ids == [('devioc.E023', 'Bad.f')]


def test_what_softioc_reads_is_accepted():
    """Hex and octal integers, padded numbers, strtod's forms, menu indexes: softIoc loads them."""
    class Fine(models.Model):
        i = models.Integer('i', HOPR='0x10', LOPR='010', MDEL=' 3 ', HIHI='', SCAN='9', OOPT='')
        f = models.Float('f', HIHI='0x1p3', LOLO='.5', HIGH='inf', LOW='-1e3', DTYP='Raw Soft Channel')
    db = render.render_db(Fine, 'D')
    # integers are written as the decimal softIoc reads (a leading 0 is octal there, as in C)
    assert 'field(HOPR, "16")' in db and 'field(LOPR, "8")' in db and 'field(MDEL, "3")' in db
    assert 'field(HIHI, "0x1p3")' in db
    assert 'field(LOLO, "NaN(123)")' in render.render_db(
        type('Nan', (models.Model,), {'f': models.Float('f', LOLO='NaN(123)')}), 'D')  # strtod's nan(chars)


def test_e012_dtyp_must_be_a_device_support_of_the_record_type():
    ids, text = errors_of(define(f=models.Float('f', DTYP='Soft Chanel')))
    assert ids == [('devioc.E012', 'Bad.f')] and "did you mean 'Soft Channel'?" in text
    ids, _ = errors_of(define(s=models.String('s', DTYP='Raw Soft Channel')))  # stringout has none
    assert ids == [('devioc.E012', 'Bad.s')]
    type('Fine', (models.Model,), {'f': models.Float('f', DTYP='Async Soft Channel')})


def test_e012_index_one_past_the_last_choice():
    """softIoc takes SCAN='10' (menuScan has 10 choices, 0..9) and stores an illegal value."""
    ids, text = errors_of(define(f=models.Float('f', SCAN='10')))
    assert ids == [('devioc.E012', 'Bad.f')] and 'past the last' in text


def test_e021_fields_a_database_cannot_set():
    ids, text = errors_of(define(a=models.Array('a', VAL=1)))
    assert ids == [('devioc.E021', 'Bad.a')] and 'DBF_NOACCESS' in text
    ids, _ = errors_of(define(f=models.Float('f', NAME='other')))
    assert ids == [('devioc.E021', 'Bad.f')]
    type('Fine', (models.Model,), {'f': models.Float('f', UDF=0, STAT='NO_ALARM')})  # settable in a .db


def test_e015_record_name_must_be_a_string():
    ids, _ = errors_of(define(t=models.Toggle(5)))
    assert ('devioc.E015', 'Bad.t') in ids


def test_every_bad_argument_is_a_model_error_never_a_bare_exception():
    """Any value of any argument of any kind: the class is built, or ModelError; nothing else."""
    import inspect

    from devioc import records
    values = [None, 5, 1.5, 'x', '', [], {}, object(), True, -1, 'é' * 50, ('a',), 2**70, float('nan')]
    for kind in records.KINDS:
        params = {p for c in kind.__mro__ if '__init__' in c.__dict__
                  for p in inspect.signature(c.__init__).parameters if p not in ('self', 'fields', 'kwargs')}
        for param in params:
            for value in values:
                try:
                    record = kind(value) if param == 'name' else kind('r', **{param: value})
                    type('M', (models.Model,), {'f': record}).pv_names('D')
                except ModelError:
                    pass


# -- macros --------------------------------------------------------------------------------------------

def test_macros_expand_in_json_links_nested_and_in_state_names():
    class M(models.Model):
        long = models.String('long', max_length=80, default='$(device) ready')
        where = models.Enum('where', choices=['$(first)', 'CLOSED'])
        link = models.Float('link', DOL={'pva': '$(src):x'})
    db = render.render_db(M, 'DEV', {'first': 'HUTCH', 'src': '$(device)-$(n)', 'n': '2'})
    assert 'field(INP, {"const":"DEV ready"})' in db
    assert 'field(ZRST, "HUTCH")' in db and '{"pva":"DEV-2:x"}' in db
    assert M._fields['where'].choices({'first': 'HUTCH'}) == ['HUTCH', 'CLOSED']


def test_e016_macro_defined_through_itself():
    class M(models.Model):
        f = models.Float('f', EGU='$(a)')
    ids, text = errors_of(lambda: M.pv_names('D', {'a': '$(b)', 'b': '$(a)'}))
    assert ids == [('devioc.E016', 'M.f')] and 'refers to itself' in text


def test_expanded_values_are_checked_in_bytes():
    class M(models.Model):
        f = models.Float('f', desc='$(d)')
    ids, _ = errors_of(lambda: M.pv_names('D', {'d': 'µ' * 21}))
    assert ids == [('devioc.E003', 'M.f')]


# -- warnings ------------------------------------------------------------------------------------------

def test_w001_lower_case_keyword_naming_a_field_is_applied():
    class M(models.Model):
        score = models.Float('score', mdel=0, desc='x')
    assert M._fields['score'].fields['MDEL'] == 0
    assert warnings_of(M) == [('devioc.W001', 'M.score')]
    assert 'field(MDEL, "0")' in render.render_db(M, 'D')


def test_w003_lower_case_keyword_of_another_record_type_is_ignored_as_the_original_did():
    """The original ignored mdel=0 on an Enum: mbbo has no MDEL field."""
    class M(models.Model):
        enable = models.Enum('enable', choices=['NO', 'YES'], mdel=0)
    assert 'MDEL' not in M._fields['enable'].fields
    assert warnings_of(M) == [('devioc.W003', 'M.enable')]


def test_w002_string_40_stays_a_stringout():
    class M(models.Model):
        port = models.String('port', max_length=40)
        note = models.String('note', max_length=39)
        text = models.String('text', max_length=41)
    assert [M._fields[a].record for a in ('port', 'note', 'text')] == ['stringout', 'stringout', 'waveform']
    assert warnings_of(M) == [('devioc.W002', 'M.port')]
    ids, _ = errors_of(define(s=models.String('s', max_length=40, default='x' * 40)))
    assert ('devioc.E013', 'Bad.s') in ids


def test_w004_asg_without_an_access_security_file_is_reported():
    """softIoc ignores ASG without an access security file: the field a user marked is writable."""
    class M(models.Model):
        temp = models.FloatInput('temp', ASG='RO')
        plain = models.Float('plain', ASG='DEFAULT')
    assert warnings_of(M) == [('devioc.W004', 'M.temp')]
    assert 'field(ASG, "RO")' in render.render_db(M, 'D')


def test_long_strings_post_only_changes():
    """A CHAR waveform posts every write unless MPST/APST are 'On Change': write-back loops."""
    record = models.String('s', max_length=100)
    assert record.fields['MPST'] == record.fields['APST'] == 'On Change'


def test_warnings_are_logged_when_the_model_is_expanded(caplog):
    class M(models.Model):
        score = models.Float('score', adel=1)
    with caplog.at_level('WARNING', logger='devioc.checks'):
        M.pv_names('D')
    assert 'devioc.W001' in caplog.text and 'ADEL=1' in caplog.text


def test_pini_only_for_records_without_output_links():
    """PINI=YES gives a valid timestamp at start; a linked record would write through its link."""
    class M(models.Model):
        plain = models.Float('plain')
        linked = models.Enum('linked', out='OTHER:x PP')
        calcout = models.CalcOut('calcout', calc='A', out='OTHER:y')
        forward = models.Float('forward', FLNK='OTHER:z')
        chosen = models.Float('chosen', PINI='NO')
    db = render.render_db(M, 'D')
    blocks = {b.split('"')[1]: b for b in db.split('record(')[1:]}
    assert 'PINI, "YES"' in blocks['D:plain']
    for name in ('D:linked', 'D:calcout', 'D:forward'):
        assert 'PINI' not in blocks[name]
    assert 'PINI, "NO"' in blocks['D:chosen']


def test_every_id_has_a_readme_row_and_a_test():
    from pathlib import Path

    from devioc.checks import CHECKS
    root = Path(__file__).resolve().parents[2]
    readme = (root / 'README.md').read_text()
    tests = ''.join(p.read_text() for p in (root / 'tests').rglob('test_*.py'))
    for check_id in CHECKS:
        assert f'| {check_id} |' in readme, f'{check_id} has no README row'
        assert check_id.replace('devioc.', '').lower() in tests.lower() or check_id in tests, \
            f'{check_id} has no test'


def test_fields_declared_in_several_bases_follow_pythons_mro():
    """D(B, C), B(A), C(A): D.x is C's x, as Python's attribute lookup (D, B, C, A) finds it."""
    class A(models.Model):
        x = models.Float('x')

    class B(A):
        pass

    class C(A):
        x = models.Integer('x')

    class D(B, C):
        y = models.Float('y')
    assert D._fields['x'].record == 'longout' and list(D._fields) == ['x', 'y']


def test_e001_counts_the_name_in_utf8_bytes():
    """softIoc refuses a 61-byte name whatever its length in characters ('é' takes 2 bytes)."""
    class M(models.Model):
        f = models.Float('$(x)')
    assert M.pv_names('D1', {'x': 'é' * 28 + 'x'}) == ['D1:' + 'é' * 28 + 'x']   # 60 bytes
    ids, text = errors_of(lambda: M.pv_names('D1', {'x': 'é' * 29}))            # 61 bytes, 32 characters
    assert ids == [('devioc.E001', 'M.f')] and '61 bytes' in text


@pytest.mark.parametrize('text', ['x $(y', 'x ${y', 'a$(', '$(a=$(device)'])
def test_e016_a_macro_reference_never_closed(text):
    """dbLoadRecords runs macLib over the whole file: a '$(' left over makes softIoc refuse it."""
    class M(models.Model):
        f = models.Float('f', desc=text)
    ids, text = errors_of(lambda: M.pv_names('D'))
    assert ids == [('devioc.E016', 'M.f')] and 'not closed' in text and "pass macros=" not in text


def test_macro_in_a_macro_default_is_expanded():
    class M(models.Model):
        f = models.Float('f', desc='$(p=z$(device))')
    assert 'field(DESC, "zD")' in render.render_db(M, 'D')


@pytest.mark.parametrize('kind', [models.Toggle, models.BoolInput])
def test_e018_binary_default_beyond_its_two_states(kind):
    ids, _ = errors_of(define(t=kind('t', default=2)))
    assert ids == [('devioc.E018', 'Bad.t')]
    type('Ok', (models.Model,), {'t': kind('t', default=1)})


def test_e018_enum_val_given_as_a_field_beyond_its_states():
    ids, _ = errors_of(define(e=models.Enum('e', choices=['A', 'B'], VAL=5)))
    assert ids == [('devioc.E018', 'Bad.e')]
    ids, _ = errors_of(define(e=models.Enum('e', choices=['A', 'B'], val=7)))  # W001 applies it as VAL
    assert ('devioc.E018', 'Bad.e') in ids


def test_e015_enum_class_with_values_that_are_no_integers():
    class Mode(enum.Enum):
        AUTO = 'auto'
        MANUAL = 'manual'
    ids, text = errors_of(define(m=models.Enum('m', choices=Mode)))
    assert ('devioc.E015', 'Bad.m') in ids and "AUTO = 'auto'" in text


def test_menu_indexes_are_read_as_softioc_reads_them():
    """dbPutString reads a menu index in base 0 with blanks around it: ' 6', '0x6', '+6' are 6 and
    '010' is 8 ('.2 second'); '08' is no number there (softIoc refuses it) and 010 is past the last."""
    class Fine(models.Model):
        a = models.Float('a', SCAN=' 6')
        b = models.Float('b', SCAN='0x6')
        c = models.Float('c', SCAN='010')
        d = models.Float('d', DTYP='+1')
    db = render.render_db(Fine, 'D')
    assert db.count('field(SCAN, "6")') == 2 and 'field(SCAN, "8")' in db and 'field(DTYP, "1")' in db
    for bad in ('08', '1e0', '0xa'):
        ids, _ = errors_of(define(f=models.Float('f', SCAN=bad)))
        assert ids == [('devioc.E012', 'Bad.f')]


def test_e014_lower_case_typo_of_a_field_suggests_the_field():
    ids, text = errors_of(define(i=models.Integer('i', mdle=-1)))
    assert ids == [('devioc.E014', 'Bad.i')] and 'did you mean MDEL=?' in text
    _, text = errors_of(define(i=models.Integer('i', zzzzq=1)))
    assert 'kwargs' not in text and 'args,' not in text  # the hint lists keywords, not *args/**kwargs


class CalcDefaults(models.Model):
    """Calc kinds with no expression (test_differential loads this model in a real softIoc)."""
    a = models.Calc('a')
    b = models.CalcOut('b')


def test_calc_without_an_expression_loads_and_an_empty_one_is_e006():
    """Calc('a') renders no CALC (the record's default loads); an explicit empty CALC/OCAL is E006,
    as softIoc refuses it ("NULL or empty input argument to postfix()")."""
    assert 'CALC' not in render.render_db(CalcDefaults, 'DEV')
    ids, text = errors_of(define(c=models.Calc('c', CALC='')))
    assert ids == [('devioc.E006', 'Bad.c')] and 'empty' in text
    ids, _ = errors_of(define(c=models.CalcOut('c', calc='A', OCAL='  ')))
    assert ids == [('devioc.E006', 'Bad.c')]


@pytest.mark.parametrize('extra', [{'NELM': 10}, {'FTVL': 'LONG'}])
def test_e017_long_string_shape_comes_from_max_length(extra):
    """NELM/FTVL on a long String would make it refuse its own max_length (RuntimeError at put)."""
    ids, text = errors_of(define(s=models.String('s', max_length=50, **extra)))
    assert ids == [('devioc.E017', 'Bad.s')] and 'max_length' in text
