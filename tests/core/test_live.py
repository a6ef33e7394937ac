"""End-to-end: a model runs on a live softIoc and real CA clients (C caget/caput/camonitor, pyepics) use it."""
import enum
import subprocess
import sys
import time
import uuid
from collections import defaultdict

import numpy as np
import pytest
import pytest_twisted
from twisted.internet import reactor, task

from devioc import models
from devioc.demo import DemoIOC
from devioc.models import DeviceBusy
from devioc.softioc import IOCStartError
from devioc.testing import caget, caput, epics_tool


class Mode(enum.Enum):
    FAST_SCAN = 0
    SLOW_MODE = 1


class LiveIOC(DemoIOC):
    """The original devioc's example model (DemoIOC, unchanged), extended with every other kind."""

    pyenum = models.Enum('pyenum', choices=Mode)
    doubled = models.CalcOut('doubled', calc='A*2', inpa='${device}:intval CP', out='$(device):floatout PP')
    bits_out = models.BinaryOutput('bits_out')
    bits_in = models.BinaryInput('bits_in', inp='$(device):bits_out CP')
    strarray = models.Array('strarray', type=str, length=4)
    shorts = models.Array('shorts', type='SHORT', length=96)
    temp = models.FloatInput('temp', prec=2, units='K')
    count = models.IntegerInput('count')
    state = models.EnumInput('state', choices=['IDLE', 'BUSY'])
    flag = models.BoolInput('flag')
    message = models.StringInput('message', max_length=100)


class Recorder:
    """Records every callback; the toggle cycles the enum like the original's demo app."""

    def __init__(self):
        self.calls = defaultdict(list)

    def do_toggle(self, pv, value, ioc):
        self.calls['toggle'].append(value)
        if value == 1:
            ioc.enum.put((ioc.enum.get() + 1) % 3, wait=True)
            ioc.count.put(ioc.count.get() + 1)

    def do_sstring(self, pv, value, ioc):
        if value == 'boom':
            raise RuntimeError('callback failure on purpose')
        self.calls['sstring'].append(value)

    def do_intval(self, pv, value, ioc):
        self.calls['intval'].append(value)

    def do_lstring(self, pv, value, ioc):
        self.calls['lstring'].append(value)

    def do_floatarray(self, pv, value, ioc):
        self.calls['floatarray'].append(value)

    def do_enum(self, pv, value, ioc):
        self.calls['enum'].append(value)


@pytest.fixture(scope='module')
def live():
    recorder = Recorder()
    ioc = LiveIOC(f'LIVE{uuid.uuid4().hex[:6].upper()}', callbacks=recorder)
    yield ioc, recorder
    ioc.shutdown()


def pv(ioc, field):
    return f'{ioc.device_name}:{field}'


@pytest_twisted.inlineCallbacks
def until(predicate, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout} s waiting for {what}')
        yield task.deferLater(reactor, 0.02, lambda: None)


@pytest.mark.parametrize('field,written,read', [
    ('enum', '2', 'TWO'),
    ('pyenum', 'SLOW MODE', 'SLOW MODE'),
    ('sstring', 'hello world', 'hello world'),
    ('intval', '42', '42'),
    ('floatval', '3.25', '3.25'),
    ('floatout', '-1.5', '-1.5'),
    ('bits_out', '5', '5'),
])
def test_scalar_kinds_round_trip_through_c_tools(live, field, written, read):
    """A value caput by the C client is what caget reads back, and what get() returns."""
    ioc, _ = live
    caput(pv(ioc, field), written)
    assert caget(pv(ioc, field)) == read


def test_get_returns_python_values(live):
    """get() gives an int index for enums, str for strings, numbers, and numpy arrays."""
    ioc, _ = live
    caput(pv(ioc, 'enum'), '1')
    caput(pv(ioc, 'sstring'), 'text')
    caput(pv(ioc, 'intarray'), [7, 8, 9])
    for_value = lambda: (ioc.enum.get(), ioc.sstring.get(), list(ioc.intarray.get()))  # noqa: E731
    deadline = time.monotonic() + 5
    while for_value() != (1, 'text', [7, 8, 9]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert for_value() == (1, 'text', [7, 8, 9])
    assert isinstance(ioc.intarray.get(), np.ndarray)
    assert ioc.enum.get(as_string=True) == 'ONE'


def test_long_strings_work_for_plain_c_clients(live):
    """A String over 39 characters is a CHAR waveform that caput -S / caget -S use as text."""
    ioc, _ = live
    text = 'a long string, ' * 20
    caput(pv(ioc, 'lstring'), text.strip(), None, '-S')
    assert caget(pv(ioc, 'lstring'), None, '-S') == text.strip()


def test_arrays_round_trip(live):
    """int, float, str and SHORT arrays hold what C clients write."""
    ioc, _ = live
    caput(pv(ioc, 'floatarray'), [1.5, -2.25, 1e-3])
    assert caget(pv(ioc, 'floatarray')).split()[:4] == ['16', '1.5', '-2.25', '0.001']
    caput(pv(ioc, 'strarray'), ['a b', 'c'])
    assert caget(pv(ioc, 'strarray')).startswith('4 a b c')
    caput(pv(ioc, 'shorts'), [-3, 32767])
    assert caget(pv(ioc, 'shorts')).split()[:3] == ['96', '-3', '32767']
    assert ioc.floatarray.record.fields['FTVL'] == 'DOUBLE'


def test_app_publishes_inputs(live):
    """The app's puts to input records reach clients."""
    ioc, _ = live
    ioc.temp.put(12.345, wait=True)
    ioc.state.put('BUSY', wait=True)
    ioc.flag.put(1, wait=True)
    ioc.message.put('x' * 90, wait=True)
    assert caget(pv(ioc, 'temp')) == '12.345'
    assert caget(pv(ioc, 'state')) == 'BUSY'
    assert caget(pv(ioc, 'flag')) == 'ON'
    assert caget(pv(ioc, 'message'), None, '-S') == 'x' * 90


def test_bad_values_from_the_app_raise_clear_errors(live):
    """The app gets a ValueError naming the PV, never a silent drop."""
    ioc, _ = live
    with pytest.raises(ValueError, match='sstring holds strings of at most 39'):
        ioc.sstring.put('y' * 40)
    with pytest.raises(ValueError, match="'FOUR' is not a state of"):
        ioc.enum.put('FOUR')
    with pytest.raises(ValueError, match='holds 16 elements, not 17'):
        ioc.intarray.put(list(range(17)))
    with pytest.raises(ValueError, match='cannot put'):
        ioc.floatval.put('abc')


def test_limits_clamp(live):
    """Client writes beyond max_val/min_val are clamped (DRVH/DRVL)."""
    ioc, _ = live
    caput(pv(ioc, 'intval'), '5000')
    assert caget(pv(ioc, 'intval')) == '1000'
    caput(pv(ioc, 'intval'), '-5000')
    assert caget(pv(ioc, 'intval')) == '-1000'


def test_calc_follows_cp_links_and_macros_expand_in_links(live):
    """calc adds intval and floatval; calcout with ${device} and $(device) links writes floatout."""
    ioc, _ = live
    caput(pv(ioc, 'intval'), '3')
    caput(pv(ioc, 'floatval'), '0.5')
    assert float(caget(pv(ioc, 'calc'))) == 3.5
    assert float(caget(pv(ioc, 'floatout'))) == 6.0
    caput(pv(ioc, 'bits_out'), '6')
    assert caget(pv(ioc, 'bits_in')) == '6'


def test_camonitor_sees_updates(live, ca_env):
    """camonitor receives the values the app publishes."""
    ioc, _ = live
    monitor = subprocess.Popen([epics_tool('camonitor'), '-t', 'n', pv(ioc, 'count')], env=ca_env,
                               stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        for value in (101, 102, 103):
            ioc.count.put(value, wait=True)
        time.sleep(0.5)
    finally:
        monitor.terminate()
        out, _ = monitor.communicate(timeout=5)
    assert [line.split()[-1] for line in out.strip().splitlines()][-3:] == ['101', '102', '103']


@pytest_twisted.inlineCallbacks
def test_client_write_reaches_callback_which_writes_other_pvs(live):
    """caput toggle 1 calls do_toggle, which put(wait=True)s the enum and bumps count."""
    ioc, rec = live
    caput(pv(ioc, 'enum'), '0')
    before = ioc.count.get()
    caput(pv(ioc, 'toggle'), '1')
    yield until(lambda: ioc.enum.get() == 1 and ioc.count.get() == before + 1, 'enum to cycle')
    yield until(lambda: rec.calls['toggle'][-2:] == [1, 0], 'toggle back to 0 after HIGH')
    assert caget(pv(ioc, 'enum')) == 'ONE'


@pytest_twisted.inlineCallbacks
def test_callback_exception_does_not_stop_later_ones(live, caplog):
    """A callback that raises is logged with its traceback; the next update is still delivered."""
    ioc, rec = live
    caput(pv(ioc, 'sstring'), 'boom')
    caput(pv(ioc, 'sstring'), 'after')
    yield until(lambda: rec.calls['sstring'][-1:] == ['after'], 'the update after the failure')
    assert 'callback failure on purpose' in caplog.text and 'do_sstring' in caplog.text


@pytest_twisted.inlineCallbacks
def test_callback_values_are_python_values(live):
    """Long strings reach callbacks as str, arrays as numpy arrays."""
    ioc, rec = live
    caput(pv(ioc, 'lstring'), 'z' * 300, None, '-S')
    caput(pv(ioc, 'floatarray'), [0.5, 0.25])
    yield until(lambda: rec.calls['lstring'][-1:] == ['z' * 300], 'the long string callback')
    yield until(lambda: len(rec.calls['floatarray']) and list(rec.calls['floatarray'][-1]) == [0.5, 0.25],
                'the array callback')


@pytest_twisted.inlineCallbacks
def test_every_client_write_is_delivered_in_order(live, ca_env):
    """500 writes from a pyepics client at ~1 kHz reach do_intval one by one, in order."""
    ioc, rec = live
    script = ('import time, epics\n'
              f'p = epics.PV("{pv(ioc, "intval")}"); p.wait_for_connection(5)\n'
              'for i in range(1, 501):\n'
              '    p.put(i); time.sleep(0.001)\n'
              'epics.ca.flush_io(); time.sleep(0.2)\n')
    start = len(rec.calls['intval'])
    client = subprocess.Popen([sys.executable, '-c', script], env=ca_env)
    try:
        yield until(lambda: rec.calls['intval'][-1:] == [500], 'the last write', timeout=30)
    finally:
        client.wait(timeout=30)
    got = rec.calls['intval'][start:]
    assert got[-500:] == list(range(1, 501))


@pytest_twisted.inlineCallbacks
def test_put_deferred_fires_after_completion(live):
    """put_deferred returns a Deferred firing with the PV once the IOC processed the put."""
    ioc, _ = live
    result = yield ioc.floatout.put_deferred(7.5)
    assert result is ioc.floatout
    assert float(caget(pv(ioc, 'floatout'))) == 7.5


def test_second_instance_of_a_device_is_refused(live):
    """The same device cannot run twice on one host; the error says who holds it."""
    ioc, _ = live
    with pytest.raises(DeviceBusy, match=f'device {ioc.device_name} is already running.*pid'):
        LiveIOC(ioc.device_name)


@pytest_twisted.inlineCallbacks
def test_initial_values_reach_callbacks_once(ca_port):
    """Each do_<field> is called once with the record's initial value when the reactor runs."""
    rec = Recorder()
    ioc = LiveIOC(f'INIT{uuid.uuid4().hex[:6].upper()}', callbacks=rec, ca_port=ca_port)
    try:
        assert ioc.intval.get() == 0 and ioc.sstring.get() == '' and ioc.enum.get() == 0
        yield until(lambda: rec.calls['intval'], 'the initial callbacks')
        yield task.deferLater(reactor, 0.2, lambda: None)
        assert rec.calls['intval'] == [0] and rec.calls['enum'] == [0] and rec.calls['sstring'] == ['']
    finally:
        ioc.shutdown()


def test_hundred_record_model(device, ca_port):
    """A 100-record model comes up and every record answers caget."""
    attrs = {f'r{i}': (models.Float if i % 2 else models.Integer)(f'r{i}', default=i) for i in range(100)}
    model = type('Hundred', (models.Model,), attrs)(device, ca_port=ca_port)
    try:
        assert caget(f'{device}:r99') == '99'
        assert [model.__dict__[f'r{i}'].get() for i in (0, 1, 98)] == [0, 1.0, 98]
    finally:
        model.shutdown()


def test_a_softioc_that_exits_at_start_gives_a_clear_error(device, tmp_path, monkeypatch):
    """If the IOC process dies during start-up, the error says so and shows its output."""
    # the module's live IOC may be serving this port meanwhile; a fake softIoc serves none
    monkeypatch.setattr(LiveIOC, '_check_port_free_here', lambda self, port: None)
    fake = tmp_path / 'fakeioc'
    fake.write_text('#!/bin/sh\necho "dbLoadRecords: something is wrong" >&2\nexit 3\n')
    fake.chmod(0o755)
    with pytest.raises(IOCStartError, match='exited during start-up(.|\n)*something is wrong'):
        LiveIOC(device, command=str(fake))


def test_puts_convert_between_python_and_record_types(live):
    """A float put to an integer record is truncated as C would, an int to a float record is exact."""
    ioc, _ = live
    ioc.intval.put(7.9, wait=True)
    ioc.floatout.put(3, wait=True)
    assert caget(pv(ioc, 'intval')) == '7'
    assert caget(pv(ioc, 'floatout')) == '3'


class Watched(models.Model):
    level = models.Float('level', prec=2)
    note = models.String('note')
    count = models.IntegerInput('count')
    cmd = models.Integer('cmd')


class WatchedApp:
    def do_cmd(self, pv, value, ioc):
        pass


def test_fields_without_callbacks_are_monitored_from_their_first_get(device, ca_port):
    """Only fields with a callback are monitored from the start; the first get() of another one
    returns the IOC's current value (client writes and the app's own earlier puts included)."""
    ioc = Watched(device, callbacks=WatchedApp(), ca_port=ca_port)
    try:
        assert ioc.cmd.monitored and not ioc.level.monitored and not ioc.count.monitored
        caput(f'{device}:level', '2.5')
        caput(f'{device}:note', 'from a client')
        assert not ioc.level.monitored
        assert ioc.level.get() == 2.5 and ioc.level.monitored
        assert ioc.note.value == 'from a client'
        ioc.count.put(41)
        ioc.count.put(42)
        assert ioc.count.get() == 42  # the first get waits for the earlier puts (read-only: through the shell)
        caput(f'{device}:level', '7.25')
        deadline = time.monotonic() + 5
        while ioc.level.get() != 7.25 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ioc.level.get() == 7.25
    finally:
        ioc.shutdown()
    with pytest.raises(RuntimeError, match='count is closed: the model has been shut down'):
        ioc.count.put(1)
    with pytest.raises(RuntimeError, match='cmd is not connected'):
        ioc.cmd.get()
