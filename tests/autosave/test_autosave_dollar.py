"""Autosaved text holding "$(" or "${" (a value any CA client may write) restores, and never stops the IOC.

dbLoadRecords expands "$(x)" in a .db as a macro and refuses a field whose text still holds "$(" or
"${" ("Has unexpanded macro"), and then the whole database: before the fix, one ``caput -S`` of such
a string into an autosaved field made every later start of the app fail.
"""
import logging

from devioc import dbd, models
from devioc.autosave import FILE_NAME, read_file
from devioc.testing import caget, caput, wait_for

TEXT = 'cost $(x) ${y} $5 "q"'


class Texts(models.Model):
    short = models.String('short', max_length=39, autosave=True)                 # stringout VAL
    long = models.String('long', max_length=80, autosave=True)                   # CHAR waveform VAL
    shown = models.StringInput('shown', max_length=39, autosave=True)            # stringin VAL
    names = models.Array('names', type=str, length=3, autosave=True)             # STRING waveform VAL
    level = models.Float('level', default=1.0, autosave=('VAL', 'EGU'))          # a DBF_STRING extra field

    class Meta:
        access_level = 1   # clients edit configuration fields here (ASL1: EGU)


def test_json_link_text_escapes_the_dollar():
    """A constant link's JSON text carries '$' as \\u0024, which dbLoadRecords leaves alone."""
    inp = dbd.fields('waveform')['INP']
    assert inp.db_text({'const': ['a $(x)', 'b ${y}']}) == '{"const":["a \\u0024(x)","b \\u0024{y}"]}'


def test_text_with_macro_syntax_is_restored_and_the_ioc_starts(run_model, device, ca_port, ca_env, tmp_path,
                                                                monkeypatch, caplog):
    monkeypatch.setenv('DEVIOC_STATE_DIR', str(tmp_path / 'state'))
    caplog.set_level(logging.INFO, 'devioc.autosave')
    ioc = run_model(Texts, ca_port=ca_port)
    caput(f'{device}:short', TEXT, ca_env)
    caput(f'{device}:long', TEXT, ca_env, '-S')
    ioc.shown.put(TEXT, wait=True)
    caput(f'{device}:names', ['a $(x)', 'b ${y}', 'c'], ca_env)
    caput(f'{device}:level', 2.5, ca_env)
    caput(f'{device}:level.EGU', 'm$(u)', ca_env)
    path = tmp_path / 'state' / device / FILE_NAME
    wait_for(lambda: path.exists() and read_file(path)['fields'].get('level', {}).get('values', {}).get('EGU')
             == 'm$(u)', 5, 'the saved EGU')
    ioc.shutdown()
    caplog.clear()

    again = run_model(Texts, ca_port=ca_port)   # IOCStartError ("could not load the database") before the fix
    assert (again.short.get(), again.long.get(), again.shown.get()) == (TEXT, TEXT, TEXT)
    assert [str(v) for v in again.names.get()[:3]] == ['a $(x)', 'b ${y}', 'c']
    assert caget(f'{device}:names.NORD', ca_env) == '3'
    for pv in ('short', 'shown'):   # processed at iocInit with the restored value, as any other
        assert caget(f'{device}:{pv}.SEVR', ca_env) == 'NO_ALARM'
        assert caget(f'{device}:{pv}.UDF', ca_env) == '0'
    assert caget(f'{device}:level', ca_env) == '2.5'
    assert caget(f'{device}:level.EGU', ca_env) == ''   # no constant link for EGU: skipped, and said so
    assert "level.EGU keeps its default: saved value 'm$(u)' skipped" in caplog.text
