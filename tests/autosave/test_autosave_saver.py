"""The saver without an IOC: what restore puts into the .db fields, what it skips, how often it writes."""
import json
import logging
import math
import threading
import time

import pytest

from devioc import models
from devioc.autosave import FILE_NAME, Saver, file_text, read_file, write_file
from devioc.render import expand_model, render_db


class Before(models.Model):
    level = models.Float('level', default=1.0, autosave=('VAL', 'HIHI', 'EGU'))
    mode = models.Enum('mode', choices=['A', 'B', 'C'], autosave=True)
    note = models.String('note', max_length=80, autosave=True)
    table = models.Array('table', type=float, length=4, autosave=True)
    count = models.Integer('count', autosave=True)
    gone = models.Float('gone', autosave=True)


def saved_by(model_class, directory, values, device='DEV'):
    """Write the file a run of ``model_class`` with these values would have left."""
    saver = Saver(model_class, device, directory=directory)
    for att, fields in values.items():
        for name, value in fields.items():
            saver.update(att, name, value)
    assert saver.flush()
    return saver


VALUES = {'level': {'VAL': 7.25, 'HIHI': 42.0, 'EGU': 'mm'}, 'mode': {'VAL': 2}, 'note': {'VAL': 'kept across'},
          'table': {'VAL': [1.0, 2.5]}, 'count': {'VAL': 12}, 'gone': {'VAL': 3.0}}


def restored(model_class, directory, device='DEV'):
    records = expand_model(model_class, device)
    return {att: fields for att, (_, fields) in Saver(model_class, device, directory=directory).restore(records).items()}


def test_restore_puts_the_saved_values_into_the_db_fields(tmp_path, caplog):
    saved_by(Before, tmp_path, VALUES)
    with caplog.at_level(logging.INFO, 'devioc.autosave'):
        fields = restored(Before, tmp_path)
    assert (fields['level']['VAL'], fields['level']['HIHI'], fields['level']['EGU']) == (7.25, 42.0, 'mm')
    assert fields['mode']['VAL'] == 2 and fields['count']['VAL'] == 12
    assert fields['note']['INP'] == {'const': 'kept across'}  # a waveform's value loads through a constant link
    assert fields['table']['INP'] == {'const': [1.0, 2.5]}
    assert "DEV:level restored from" in caplog.text and "HIHI=42.0" in caplog.text


class After(models.Model):
    """Before, edited: one field changed kind, one its states, one its record name; one removed,
    one saves fewer fields, and a new one."""

    level = models.Float('level', default=1.0, autosave=('VAL',))
    mode = models.Enum('mode', choices=['A', 'B'], autosave=True)
    note = models.String('remark', max_length=80, autosave=True)
    table = models.Array('table', type=float, length=4, autosave=True)
    count = models.Float('count', autosave=True)
    fresh = models.Float('fresh', default=0.5, autosave=True)


def test_fields_changed_since_the_save_keep_their_defaults_with_a_log_line(tmp_path, caplog):
    saved_by(Before, tmp_path, VALUES)
    with caplog.at_level(logging.INFO, 'devioc.autosave'):
        fields = restored(After, tmp_path)
    assert fields['mode']['VAL'] == 0 and "DEV:mode starts with its defaults: the saved value is skipped, its " \
        "states changed since it was saved (['A', 'B', 'C'], now ['A', 'B'])" in caplog.text
    assert fields['count']['VAL'] == 0 and 'DEV:count starts with its defaults' in caplog.text \
        and 'its kind changed' in caplog.text
    assert 'INP' not in fields['note'] and 'its record name changed' in caplog.text
    assert 'saved field gone skipped: no such field now (removed or renamed)' in caplog.text
    assert fields['level']['VAL'] == 7.25 and 'HIHI' not in fields['level'] \
        and 'DEV:level.HIHI was saved but is no longer autosaved' in caplog.text
    assert fields['fresh']['VAL'] == 0.5 and 'DEV:fresh starts with its defaults (not in' in caplog.text
    assert fields['table']['INP'] == {'const': [1.0, 2.5]}


def test_a_saved_value_the_record_cannot_hold_keeps_the_default(tmp_path, caplog):
    class Small(models.Model):
        table = models.Array('table', type=float, length=2, autosave=True)
        count = models.Integer('count', autosave=True)
        mode = models.Enum('mode', choices=['A', 'B', 'C'], autosave=True)

    fields = {'table': {'kind': 'Array', 'record': 'waveform', 'name': 'table', 'values': {'VAL': [1.0, 2.0, 3.0]}},
              'count': {'kind': 'Integer', 'record': 'longout', 'name': 'count', 'values': {'VAL': 2**40}},
              'mode': {'kind': 'Enum', 'record': 'mbbo', 'name': 'mode', 'states': ['A', 'B', 'C'],
                       'values': {'VAL': 7}}}
    write_file(tmp_path, file_text('Small', 'DEV', fields))
    restored_fields = restored(Small, tmp_path)
    assert 'INP' not in restored_fields['table'] and '3 elements; the record holds 2' in caplog.text
    assert restored_fields['count']['VAL'] == 0 and 'DEV:count.VAL keeps its default' in caplog.text
    assert restored_fields['mode']['VAL'] == 0 and 'not one of its state indexes' in caplog.text


def test_a_burst_of_changes_is_written_at_most_once_a_period(tmp_path):
    saver = Saver(Before, 'DEV', directory=tmp_path, period=0.2)
    saver.start({})  # no PVs: values come through update() as they would from the monitors
    try:
        started = time.monotonic()
        for i in range(3000):  # ~1.5 s of a field written at 2 kHz
            saver.update('level', 'VAL', float(i))
            time.sleep(0.0005)
        elapsed = time.monotonic() - started
        writes = saver.writes
        assert 2 <= writes <= elapsed / 0.2 + 1, f'{writes} writes in {elapsed:.2f} s'
    finally:
        saver.stop()
    assert read_file(tmp_path / FILE_NAME)['fields']['level']['values'] == {'VAL': 2999.0}  # stop() flushed


def test_an_unchanged_value_is_not_written_again(tmp_path):
    saver = saved_by(Before, tmp_path, {'level': {'VAL': 1.5}})
    saver.update('level', 'VAL', 1.5)
    assert saver.flush() and saver.writes == 1
    saver.update('level', 'VAL', float('nan'))
    assert saver.flush() and saver.writes == 2
    saver.update('level', 'VAL', float('nan'))  # NaN equals NaN here: not a change
    assert saver.flush() and saver.writes == 2
    assert math.isnan(read_file(tmp_path / FILE_NAME)['fields']['level']['values']['VAL'])


def test_flush_from_many_threads_at_once_leaves_one_complete_file(tmp_path):
    saver = Saver(Before, 'DEV', directory=tmp_path)
    errors = []

    def hammer(n):
        try:
            for i in range(50):
                saver.update('level', 'VAL', float(n * 1000 + i))
                saver.flush()
        except Exception as err:  # noqa: BLE001 - any error fails the test below
            errors.append(err)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert read_file(tmp_path / FILE_NAME)['fields']['level']['values']['VAL'] % 1000 == 49
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith('autosave-')) == \
        [FILE_NAME, FILE_NAME + '.bak']


@pytest.mark.parametrize('att, edit', [
    ('level', {'values': 'x'}),                      # "values" not a mapping: an AttributeError in restore
    ('table', {'values': {'VAL': [{'a': 1}]}}),      # elements a constant link cannot carry: render failed
    ('table', {'values': {'VAL': ['a', 'b']}}),      # text into a DOUBLE waveform
    ('note', {'values': {'VAL': [1, 2]}}),           # a list into a long String
])
def test_a_hand_edited_entry_of_the_wrong_shape_keeps_the_default_and_the_db_renders(tmp_path, caplog, att, edit):
    """A file edited by hand (its sha256 line deleted, as the README says) with a value of the wrong
    shape: that field keeps its default with a log line; the others are restored; the .db renders."""
    saved_by(Before, tmp_path, VALUES)
    path = tmp_path / FILE_NAME
    data = json.loads(path.read_text())
    del data['sha256']
    data['fields'][att].update(edit)
    path.write_text(json.dumps(data))
    records = expand_model(Before, 'DEV')
    with caplog.at_level(logging.INFO, 'devioc.autosave'):
        out = Saver(Before, 'DEV', directory=tmp_path).restore(records)
    assert out[att][1] == records[att][1]          # the default, untouched
    assert out['count'][1]['VAL'] == 12            # the rest restored
    assert f'DEV:{Before._fields[att].name}' in caplog.text and 'default' in caplog.text
    render_db(Before, 'DEV', records=out)          # renders: the model can start


class Silent:
    """A connected PV whose first value never comes (its softIoc died just after it connected)."""

    def __init__(self, attname, clock):
        self.record = type('R', (), {'attname': attname})
        self.name, self.value_hook, self._value, self.waits = f'DEV:{attname}', None, None, []
        self._has_value, self.clock = self, clock

    def subscribe(self):
        pass

    def wait(self, timeout):   # waits the whole timeout in vain (on a fake clock)
        self.waits.append(timeout)
        self.clock[0] += timeout
        return False


class Values(models.Model):
    a = models.Float('a', autosave=True)
    b = models.Float('b', autosave=True)
    c = models.Float('c', autosave=True)


def test_start_waits_for_first_values_once_for_all_fields_not_per_field(tmp_path, monkeypatch):
    """start() after a restart whose IOC died at once: the first-value waits share one 5 s deadline
    (they were 5 s per field: minutes for a large model before the death is handled)."""
    monkeypatch.setattr('devioc.channels.ca_flush', lambda: None)
    clock = [1000.0]
    saver = Saver(Values, 'DEV', directory=tmp_path)
    pvs = {att: Silent(att, clock) for att in ('a', 'b', 'c')}
    with monkeypatch.context() as patch:
        patch.setattr(time, 'monotonic', lambda: clock[0])
        saver.start(pvs)
    try:
        waits = [t for pv in pvs.values() for t in pv.waits]
        assert len(waits) == 3 and sum(waits) == pytest.approx(5.0)
    finally:
        saver.stop()
