"""Models and apps written for the original devioc run unchanged (live softIoc, C caget/caput)."""
import enum

import pytest
import pytest_twisted
from twisted.internet import reactor, task, threads

from devioc import models
from devioc.testing import caget, caput, wait_for


class EnableType(enum.IntEnum):
    DISABLED, ENABLED = range(2)


class Mounter(models.Model):
    """Fields as the original's apps declare them: String(max_length=40), lower-case mdel=0."""

    next_port = models.String('PAR:nextPort', max_length=40, default='', desc='Port to use next')
    place = models.String('STATE:place', max_length=40, desc='Where the arm is')
    enable = models.Enum('enable', choices=EnableType, default=1, mdel=0, desc='Tracking on/off')
    score = models.Float('track:score', default=0.0, mdel=0, desc='Match score')
    target = models.Integer('track:id', default=0, mdel=0, desc='Target id')


class CleaningApp:
    """The write-back pattern: the callback cleans what a client wrote and writes it back."""

    def __init__(self):
        self.calls = []

    def do_next_port(self, pv, port, ioc):
        self.calls.append(port)
        port = port.strip()
        pv.put(port if port[:2] in ('1A', '2A', '3A') else '')


@pytest.fixture
def mounter(run_model):
    app = CleaningApp()
    ioc = run_model(Mounter, callbacks=app)
    wait_for(lambda: all(pv.connected for pv in ioc._pvs.values()), 10, 'every field connected')
    return ioc, app


def test_string40_is_a_plain_stringout(mounter):
    """Plain caput/caget (no -S) of a String(max_length=40), as on the original."""
    ioc, _ = mounter
    name = ioc.place.name
    assert caget(f'{name}.RTYP') == 'stringout'
    caput(name, '1A16')
    assert caget(name) == '1A16'
    caput(name, 'x' * 39)
    assert caget(name) == 'x' * 39


def test_lower_case_field_keywords_run(mounter):
    """mdel=0 is MDEL on ao/longout; on the Enum (mbbo has no MDEL) it is ignored, as the original did."""
    ioc, _ = mounter
    assert caget(f'{ioc.score.name}.MDEL') == '0' and caget(f'{ioc.target.name}.MDEL') == '0'
    assert [caget(ioc.enable.name), caget(ioc.score.name), caget(ioc.target.name)] == ['ENABLED', '0', '0']


@pytest_twisted.inlineCallbacks
def test_a_write_back_callback_settles(mounter):
    """One client write gives a few callbacks, not a loop (a waveform would post every write)."""
    ioc, app = mounter
    yield task.deferLater(reactor, 0.3, lambda: None)
    before = len(app.calls)
    yield threads.deferToThread(caput, ioc.next_port.name, ' 1A1 ')
    yield task.deferLater(reactor, 1.5, lambda: None)
    calls = app.calls[before:]
    assert 1 <= len(calls) <= 4, calls
    assert caget(ioc.next_port.name) == '1A1'


@pytest_twisted.inlineCallbacks
def test_a_write_back_callback_on_a_long_string_settles(run_model):
    """Long Strings (CHAR waveforms) post only changes too (MPST/APST 'On Change')."""
    class Notes(models.Model):
        note = models.String('note', max_length=100)

    class App:
        def __init__(self):
            self.calls = []

        def do_note(self, pv, value, ioc):
            self.calls.append(value)
            pv.put(value.strip())

    app = App()
    ioc = run_model(Notes, callbacks=app)
    wait_for(lambda: ioc.note.connected, 10, 'note connected')
    yield task.deferLater(reactor, 0.3, lambda: None)
    before = len(app.calls)
    yield threads.deferToThread(caput, ioc.note.name, '  some text  ', None, '-S')
    yield task.deferLater(reactor, 1.5, lambda: None)
    calls = app.calls[before:]
    assert 1 <= len(calls) <= 4, calls
    assert ioc.note.get() == 'some text'
