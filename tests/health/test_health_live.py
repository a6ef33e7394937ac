"""Health records on a live softIoc: read with the C caget, HEARTBEAT advancing, callback errors counted."""
import logging
import re
import signal
import subprocess
import threading
import time

import pytest
import pytest_twisted
from twisted.internet import reactor, task

import devioc
from devioc import models
from devioc.checks import ModelError
from devioc.health import NAMES
from devioc.testing import caget, caput, epics_tool


class Plain(models.Model):
    value = models.Integer('value')
    text = models.String('text', max_length=20)


class App:
    __version__ = '3.1.4'

    def __init__(self):
        self.values = []

    def do_value(self, pv, value, ioc):
        self.values.append(value)
        if value > 0:
            raise ValueError(f'refusing {value}')


@pytest_twisted.inlineCallbacks
def until(predicate, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout} s waiting for {what}')
        yield task.deferLater(reactor, 0.05, lambda: None)


def health(ioc, name, *args):
    return caget(f'{ioc._device_name}:IOC:{name}', None, *args)


@pytest_twisted.inlineCallbacks
def test_health_records_are_served_and_heartbeat_counts(run_model):
    """Every health PV answers the C caget; HEARTBEAT and UPTIME advance each second the reactor runs."""
    app = App()
    ioc = run_model(Plain, callbacks=app)
    values = {name: health(ioc, name) for name in NAMES}
    assert values['VERSION'] == devioc.__version__
    assert values['APP_VERSION'] == '3.1.4'
    assert re.fullmatch(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d', values['STARTTOD'])
    assert values['RESTARTS'] == '0' and values['CALLBACK_ERRORS'] == '0'
    first = int(values['HEARTBEAT'])
    yield until(lambda: int(health(ioc, 'HEARTBEAT')) >= first + 2, 'HEARTBEAT to count 2 more')
    assert int(health(ioc, 'UPTIME')) >= 2
    assert float(health(ioc, 'MEM_USED')) > 10e6            # the app and softIoc together
    assert 0.0 <= float(health(ioc, 'IOC_CPU_LOAD')) <= 100.0
    assert int(health(ioc, 'CA_CLNT_CNT')) >= 1             # the app's own client
    assert re.search(r'Units:\s+s\n', health(ioc, 'UPTIME', '-d', 'DBR_CTRL_LONG'))


@pytest_twisted.inlineCallbacks
def test_ca_clnt_cnt_counts_a_camonitor(run_model, ca_env):
    """A camonitor connected to the IOC raises CA_CLNT_CNT by one while it runs."""
    ioc = run_model(Plain, callbacks=App())
    yield until(lambda: health(ioc, 'CA_CLNT_CNT') == '1', 'CA_CLNT_CNT to settle at the app alone')
    monitor = subprocess.Popen([epics_tool('camonitor'), f'{ioc._device_name}:value'], env=ca_env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield until(lambda: health(ioc, 'CA_CLNT_CNT') == '2', 'CA_CLNT_CNT to count the camonitor')
    finally:
        monitor.send_signal(signal.SIGTERM)
        monitor.wait(10)
    yield until(lambda: health(ioc, 'CA_CLNT_CNT') == '1', 'CA_CLNT_CNT to drop after the camonitor')


@pytest_twisted.inlineCallbacks
def test_callback_errors_are_counted_and_logged_once(run_model, caplog):
    """20 client writes that each make do_value raise: CALLBACK_ERRORS 20, LAST_ERROR the last one,
    one traceback in the log, then one line counting the 19 repeats."""
    app = App()
    ioc = run_model(Plain, callbacks=app)
    ioc._errors.window = 1.5
    with caplog.at_level(logging.ERROR, logger='devioc.health'):
        for i in range(1, 21):
            caput(f'{ioc._device_name}:value', str(i))
        yield until(lambda: len(app.values) == 21, 'the 20 writes to reach do_value')
        yield until(lambda: health(ioc, 'CALLBACK_ERRORS') == '20', 'CALLBACK_ERRORS to count 20')
        yield until(lambda: any('repeated' in r.getMessage() for r in caplog.records), 'the repeat count')
    assert health(ioc, 'LAST_ERROR', '-S') == 'do_value: ValueError: refusing 20'
    records = [r for r in caplog.records if r.name == 'devioc.health']
    assert [r.exc_info is not None for r in records] == [True, False]
    assert 'refusing 1' in records[0].exc_text or 'refusing 1' in str(records[0].exc_info[1])
    assert re.search(r'repeated 19 times in the last \d+ s \(last: ValueError: refusing 20\)', records[1].getMessage())


class Wedging(App):
    def do_value(self, pv, value, ioc):
        if value == -1:
            time.sleep(3.0)     # a callback that blocks the reactor


@pytest_twisted.inlineCallbacks
def test_heartbeat_stops_while_the_reactor_is_blocked(run_model):
    """HEARTBEAT is counted by the app's reactor: while a callback blocks it, the count stands still
    (a wedged app is visible); afterwards it counts again."""
    ioc = run_model(Plain, callbacks=Wedging())
    name = f'{ioc._device_name}:IOC:HEARTBEAT'
    yield until(lambda: int(caget(name)) >= 1, 'the first heartbeat')
    seen = []

    def watch():     # a thread of its own: the test's greenlet stands still with the reactor
        time.sleep(0.7)
        seen.append(caget(name))
        time.sleep(1.5)
        seen.append(caget(name))

    watcher = threading.Thread(target=watch)
    caput(f'{ioc._device_name}:value', '-1')
    watcher.start()
    yield until(lambda: not watcher.is_alive(), 'the watcher')
    assert len(seen) == 2 and seen[0] == seen[1], seen
    yield until(lambda: int(caget(name)) > int(seen[1]), 'HEARTBEAT to count again')


def test_a_field_named_like_a_health_record_is_e025(device):
    """A field whose PV is <device>:IOC:HEARTBEAT is refused (devioc.E025) before softIoc starts."""
    class Clash(models.Model):
        beat = models.IntegerInput('IOC:HEARTBEAT')

    with pytest.raises(ModelError) as err:
        Clash(device)
    assert [m.id for m in err.value.messages] == ['devioc.E025']
    assert 'Clash.beat' in str(err.value) and 'health=False' in str(err.value)


def test_health_false_serves_no_health_records_and_frees_the_names(run_model, ca_env):
    """health=False: the model may use IOC:HEARTBEAT itself; no other health PV is served."""
    class Clash(models.Model):
        beat = models.IntegerInput('IOC:HEARTBEAT', default=7)

    ioc = run_model(Clash, health=False)
    assert caget(f'{ioc._device_name}:IOC:HEARTBEAT') == '7'
    result = subprocess.run([epics_tool('caget'), '-w', '1', f'{ioc._device_name}:IOC:UPTIME'], env=ca_env,
                            capture_output=True, text=True, timeout=20)
    assert result.returncode != 0


def test_meta_health_false_turns_them_off(run_model, ca_env):
    """class Meta: health = False does what health=False does."""
    class Quiet(models.Model):
        value = models.Integer('value')

        class Meta:
            health = False

    ioc = run_model(Quiet)
    assert ioc._health is None
    result = subprocess.run([epics_tool('caget'), '-w', '1', f'{ioc._device_name}:IOC:HEARTBEAT'], env=ca_env,
                            capture_output=True, text=True, timeout=20)
    assert result.returncode != 0


def test_device_too_long_for_health_names_runs_without_them(run_model, caplog):
    """A device name that leaves no room for :IOC:CALLBACK_BACKLOG in 60 bytes: a warning, no health."""
    device = 'LONG' + 'X' * 40
    with caplog.at_level(logging.WARNING, logger='devioc.health'):
        ioc = run_model(Plain, device)
    assert ioc._health is None
    assert 'no health records' in caplog.text and 'at most 39 bytes' in caplog.text
    assert caget(f'{device}:value') == '0'
