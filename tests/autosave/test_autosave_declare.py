"""``autosave=`` on a field: what it saves, and devioc.E024 for what it cannot save."""
import pytest

from devioc import models
from devioc.autosave import autosaved
from devioc.checks import ModelError


def declare(**fields):
    return type('Declared', (models.Model,), dict(fields))


def e024(record):
    """The devioc.E024 messages of a model holding ``record`` (the class must be refused)."""
    with pytest.raises(ModelError) as info:
        declare(field=record)
    found = [m for m in info.value.messages if m.id == 'devioc.E024']
    assert found, f'no devioc.E024 in {info.value}'
    assert all(m.obj == 'Declared.field' for m in found)
    return found


def test_true_saves_the_value_and_a_tuple_names_the_fields():
    model = declare(a=models.Float('a', autosave=True), b=models.Float('b', autosave=('VAL', 'HIHI', 'EGU', 'HIHI')),
                    c=models.Enum('c', choices=['X', 'Y'], autosave='VAL'), d=models.Integer('d'))
    assert model._fields['a'].autosave == ('VAL',)
    assert model._fields['b'].autosave == ('VAL', 'HIHI', 'EGU')  # each field once
    assert model._fields['c'].autosave == ('VAL',)
    assert model._fields['d'].autosave == ()
    assert autosaved(model) == {'a': ('VAL',), 'b': ('VAL', 'HIHI', 'EGU'), 'c': ('VAL',)}


def test_a_model_without_autosave_has_nothing_to_save():
    assert autosaved(declare(a=models.Float('a'), b=models.String('b', max_length=80))) == {}


def test_arrays_and_long_strings_save_their_value():
    model = declare(a=models.Array('a', type=float, length=4, autosave=True),
                    s=models.String('s', max_length=100, autosave=True))
    assert autosaved(model) == {'a': ('VAL',), 's': ('VAL',)}


def test_an_unknown_field_is_refused_naming_the_record_type():
    [msg] = e024(models.Float('f', autosave=('VAL', 'HIHJ')))
    assert "ao records have no field 'HIHJ'" in msg.msg


def test_a_lower_case_field_name_gets_the_upper_case_hint():
    [msg] = e024(models.Float('f', autosave=('hihi',)))
    assert "'HIHI'" in msg.hint


@pytest.mark.parametrize('record, name', [
    (models.Float('f', autosave=('OUT',)), 'OUT'),                # a link
    (models.Float('f', autosave=('DTYP',)), 'DTYP'),              # device support
    (models.Float('f', autosave=('STAT',)), 'STAT'),              # clients cannot change it
    (models.Array('f', autosave=('BPTR',)), 'BPTR'),              # no database file can set it
])
def test_fields_that_are_not_a_value_to_restore_are_refused(record, name):
    [msg] = e024(record)
    assert name in msg.msg and f"drop '{name}'" in msg.hint


def test_a_waveform_with_its_own_input_link_cannot_restore_its_value():
    [msg] = e024(models.Array('f', INP='OTHER:pv CP', autosave=True))
    assert 'INP' in msg.msg


@pytest.mark.parametrize('value', [5, 1.5, {'VAL': 1}, ('VAL', 3)])
def test_a_value_that_names_no_fields_is_refused(value):
    msgs = e024(models.Float('f', autosave=value))
    assert any('autosave' in m.msg for m in msgs)


def test_autosave_false_or_none_is_no_autosave():
    model = declare(a=models.Float('a', autosave=False), b=models.Float('b', autosave=None))
    assert autosaved(model) == {}


def test_the_readme_example_declares_as_written():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / 'README.md').read_text()
    section = readme.split('## Autosave and restore', 1)[1].split('\n## ', 1)[0]
    namespace = {'models': models}
    exec(re.search(r'```python\n(.*?)```', section, re.S).group(1), namespace)
    assert autosaved(namespace['Beamline']) == {'gap': ('VAL',), 'temp': ('VAL', 'HIHI', 'HIGH', 'EGU'),
                                                'mode': ('VAL',), 'table': ('VAL',)}
