"""When do_<field> is called: once with the initial value, then on every value change (a client's
write or the app's own put), never for an alarm-only event; and which method is do_<field>."""
import time

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from devioc import models
from devioc.checks import check_callbacks
from devioc.models import callback_for
from devioc.testing import caput


class Heater(models.Model):
    sp = models.Float('sp', HIHI=10, HHSV='MAJOR', prec=1)
    mode = models.Enum('mode', choices=['IDLE', 'RUN'])
    A = models.Integer('a_upper')
    Gain = models.Float('gain')

    class Meta:
        access_level = 1   # clients edit configuration fields here (ASL1: HIHI)


class App:
    def __init__(self):
        self.calls = []

    def do_sp(self, pv, value, ioc):
        self.calls.append(('sp', float(value)))

    def do_mode(self, pv, value, ioc):
        self.calls.append(('mode', int(value)))

    def do_A(self, pv, value, ioc):        # exact attribute name
        self.calls.append(('A', int(value)))

    def do_gain(self, pv, value, ioc):     # the original devioc's lower-case form
        self.calls.append(('Gain', float(value)))


@pytest_twisted.inlineCallbacks
def settle(app, seconds=0.4):
    """Let the reactor run until no callback came for ``seconds``."""
    count = -1
    while count != len(app.calls):
        count = len(app.calls)
        yield task.deferLater(reactor, seconds, lambda: None)


@pytest.fixture
def heater(run_model, ca_port):
    app = App()
    return run_model(Heater, callbacks=app, ca_port=ca_port), app


@pytest_twisted.inlineCallbacks
def test_alarm_only_events_do_not_call_back(heater):
    """A same-value write to an mbbo (UDF clears) and an alarm limit edit (HIHI alarm clears) call
    nothing; the value change between them calls do_sp once; severity still follows the alarms."""
    ioc, app = heater
    yield settle(app)
    assert sorted(app.calls) == [('A', 0), ('Gain', 0.0), ('mode', 0), ('sp', 0.0)]   # initial, once each
    del app.calls[:]
    caput(f'{ioc.device_name}:mode', 'IDLE')
    caput(f'{ioc.device_name}:sp', '20')
    yield settle(app)
    assert ioc.sp.severity == 2   # MAJOR: HIHI=10 crossed
    caput(f'{ioc.device_name}:sp.HIHI', '30')
    yield settle(app)
    assert app.calls == [('sp', 20.0)]
    deadline = time.monotonic() + 5
    while ioc.sp.severity != 0 and time.monotonic() < deadline:
        yield task.deferLater(reactor, 0.05, lambda: None)
    assert ioc.sp.severity == 0 and ioc.sp.get() == 20.0


@pytest_twisted.inlineCallbacks
def test_client_changes_and_the_apps_own_puts_call_back(heater):
    """Client writes that change the value and the app's own puts each call back once, in order."""
    ioc, app = heater
    yield settle(app)
    del app.calls[:]
    caput(f'{ioc.device_name}:a_upper', '5')
    ioc.A.put(6)
    yield settle(app)
    ioc.Gain.put(1.5, wait=True)
    ioc.Gain.put(1.5, wait=True)   # same value to an ao: the record posts nothing, nothing is called
    yield settle(app)
    assert app.calls == [('A', 5), ('A', 6), ('Gain', 1.5)]


class Both:
    def do_A(self, pv, value, ioc):
        pass

    def do_a(self, pv, value, ioc):
        pass


class TwoFields(models.Model):
    A = models.Integer('big')
    a = models.Integer('small')


def test_callback_lookup_prefers_the_exact_attribute_name():
    """do_A is field A's; do_a is A's too when no field is named a, and a's own when one is."""
    both = Both()
    assert callback_for(both, 'A', Heater._fields) == both.do_A
    assert callback_for(App(), 'Gain', Heater._fields).__name__ == 'do_gain'
    assert callback_for(both, 'a', TwoFields._fields) == both.do_a
    assert callback_for(both, 'A', TwoFields._fields) == both.do_A
    assert callback_for(object(), 'A', Heater._fields) is None


def test_check_callbacks_accepts_exact_and_lower_case_names():
    """do_A and the lower-case do_gain raise no check; a near miss is E011 with a did-you-mean."""
    assert check_callbacks(Heater, App()) == []

    class Typo:
        def do_Gian(self, pv, value, ioc):
            pass

    messages = check_callbacks(Heater, Typo())
    assert [m.id for m in messages] == ['devioc.E011']
    assert 'did you mean do_Gain?' in messages[0].hint


class Spectrum(models.Model):
    counts = models.Array('counts', type=int, length=4)
    raw = models.Array('raw', type=float, length=4, MPST='Always')


class SpectrumApp:
    def __init__(self):
        self.calls = []

    def do_counts(self, pv, value, ioc):
        self.calls.append(('counts', list(value)))

    def do_raw(self, pv, value, ioc):
        self.calls.append(('raw', list(value)))


@pytest_twisted.inlineCallbacks
def test_arrays_call_back_on_changes_only_unless_mpst_always(device, ca_port):
    """A waveform posts every write by EPICS' default; an Array posts only changes (MPST/APST 'On
    Change'), so three identical client writes call do_counts once; MPST='Always' keeps every write."""
    app = SpectrumApp()
    ioc = Spectrum(device, callbacks=app, ca_port=ca_port)
    try:
        yield settle(app)
        del app.calls[:]
        for _ in range(3):
            caput(f'{device}:counts', [1, 2, 3, 4])
            caput(f'{device}:raw', [1, 2, 3, 4])
        yield settle(app)
        assert [c for c in app.calls if c[0] == 'counts'] == [('counts', [1, 2, 3, 4])]
        assert [c for c in app.calls if c[0] == 'raw'] == [('raw', [1.0, 2.0, 3.0, 4.0])] * 3
    finally:
        ioc.shutdown()
