"""Alarms set from Python (issue 14 §3) and the refusal alarm of validate_<field> (§4), end to end:
a live softIoc, the C caget/camonitor and a pyepics client read STAT and SEVR."""
import subprocess
import time

import pytest

from devioc import models
from devioc.checks import ModelError
from devioc.render import render_db
from devioc.testing import caget, caput, epics_tool, wait_for


class Plant(models.Model):
    temp = models.FloatInput('temp', default=20.0, alarm=True)          # input kind, read-only (shell route)
    heater = models.Float('heater', default=1.5, alarm=True)            # output kind, CA route
    mode = models.Enum('mode', choices=['AUTO', 'MANUAL'], alarm=True)
    count = models.Integer('count', default=0)                          # counts the heater's FLNK
    plain = models.Float('plain', default=0.0)                          # no alarm=True


def _turns(until, what, timeout=30.0):
    """Run reactor turns until ``until()``: puts made without wait are flushed at the end of a turn."""
    from twisted.internet import reactor
    deadline = time.monotonic() + timeout
    while not until():
        reactor.iterate(0.001)
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out waiting for {what}')


def _alarm(name, env):
    return caget(f'{name}.SEVR', env), caget(f'{name}.STAT', env)


@pytest.fixture
def plant(device, ca_port):
    model = Plant(device, ca_port=ca_port)
    yield model
    model.shutdown()


def test_render_adds_one_hidden_record_per_alarmed_field():
    text = render_db(Plant, 'DEV')
    assert text.count('record(longin, "DEV:temp:alarm")') == 1
    assert 'field(INP, "DEV:temp:alarm:app CP MSS")' in text           # the app's own CA server's source
    assert 'field(SDIS, "DEV:heater:alarm.DISA NPP MSS")' in text
    assert text.count('record(') == 5 + 3                               # five fields, three alarmed
    assert 'record(ai, "DEV:temp")' in text and 'record(ao, "DEV:heater")' in text   # type kept
    assert 'plain:alarm' not in text


def test_alarm_keyword_is_checked():
    with pytest.raises(ModelError, match='alarm must be True or False'):
        type('Bad', (models.Model,), {'__module__': __name__, 'x': models.Float('x', alarm='yes')})
    with pytest.raises(ModelError, match='SDIS'):
        type('Bad2', (models.Model,), {'__module__': __name__, 'x': models.Float('x', alarm=True, SDIS='A')})


def test_set_and_clear_on_input_and_output_kinds(plant, ca_env):
    dev = plant.device_name
    wait_for(lambda: plant.heater.get() == 1.5, what='the initial value')
    for field in ('temp', 'heater', 'mode'):
        name = f'{dev}:{field}'
        assert _alarm(name, ca_env) == ('NO_ALARM', 'NO_ALARM')
        assert getattr(plant, field).set_alarm('MAJOR', message='too hot', wait=True)
        assert _alarm(name, ca_env) == ('MAJOR', 'STATE')
        assert getattr(plant, field).alarm_message == 'too hot'
        assert getattr(plant, field).set_alarm(3, wait=True)
        assert _alarm(name, ca_env) == ('INVALID', 'STATE')
        assert getattr(plant, field).clear_alarm(wait=True)
        assert _alarm(name, ca_env) == ('NO_ALARM', 'NO_ALARM')
    assert caget(f'{dev}:heater.RTYP', ca_env) == 'ao' and caget(f'{dev}:temp.RTYP', ca_env) == 'ai'


def test_alarm_stays_through_client_writes_until_cleared(plant, ca_env):
    name = f'{plant.device_name}:heater'
    plant.heater.set_alarm('MINOR', wait=True)
    caput(name, 7.25, ca_env)
    assert caget(name, ca_env) == '7.25'
    assert _alarm(name, ca_env) == ('MINOR', 'STATE')   # the record processed again and kept it
    plant.heater.clear_alarm(wait=True)
    caput(name, 8, ca_env)
    assert _alarm(name, ca_env) == ('NO_ALARM', 'NO_ALARM')


def test_put_with_severity_sets_value_and_alarm_in_one_event(plant, ca_env):
    name = f'{plant.device_name}:temp'
    monitor = subprocess.Popen([epics_tool('camonitor'), '-g8', name], env=ca_env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: plant.temp.get() == 20.0, what='the initial value')
        time.sleep(1.0)   # camonitor connected and has printed its first line
        assert plant.temp.put(95.5, severity='MAJOR', wait=True)
        assert plant.temp.put(96.5, severity='MAJOR', wait=True)     # unchanged alarm: the plain path
        assert plant.temp.put(21.0, severity=0, wait=True)
        assert _alarm(name, ca_env) == ('NO_ALARM', 'NO_ALARM')
        time.sleep(1.0)
    finally:
        monitor.terminate()
        out = monitor.communicate(timeout=10)[0]
    lines = [line.split() for line in out.splitlines() if line.startswith(name)]
    values = [(line[3], line[4:]) for line in lines]
    assert values[1:] == [('95.5', ['STATE', 'MAJOR']), ('96.5', ['STATE', 'MAJOR']), ('21', [])], out
    assert plant.temp.severity == 0


def test_pyepics_client_sees_the_alarm(plant, ca_env, monkeypatch):
    for key, value in ca_env.items():
        monkeypatch.setenv(key, value)
    script = ('import epics, sys; pv = epics.PV(sys.argv[1]); v = pv.get(timeout=5); '
              'print(pv.severity, pv.status, v)')
    plant.heater.put(3.5, severity='INVALID', wait=True)
    out = subprocess.run([__import__('sys').executable, '-c', script, f'{plant.device_name}:heater'], env=ca_env,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ['3', '7', '3.5'], out.stderr   # INVALID_ALARM, STATE_ALARM (alarm.h)


def test_unchanged_alarm_sends_nothing(plant, ca_env, monkeypatch):
    """A read-only field's alarm: a shell read (the field's earlier lines are done), the source set in
    the app's CA server, then PROC: two shell lines per change; nothing when unchanged."""
    sent, set_ = [], []
    command = plant._process.command
    monkeypatch.setattr(plant._process, 'command', lambda line, done=None: (sent.append(line), command(line, done)))
    server_set = plant._alarm_server.set_alarm
    monkeypatch.setattr(plant._alarm_server, 'set_alarm', lambda *a, **k: (set_.append(a), server_set(*a, **k)))
    plant.temp.set_alarm('MINOR', wait=True)
    assert [line.split()[:2] for line in sent] == [[b'dbgf', f"'{plant.device_name}:temp:alarm'".encode()],
                                                   [b'dbpf', f"'{plant.device_name}:temp.PROC'".encode()]]
    assert set_ == [(f'{plant.device_name}:temp:alarm:app', 'STATE', 'MINOR', 5.0)]
    plant.temp.set_alarm('MINOR', wait=True)            # unchanged: no line, no processing
    plant.temp.put(2.0, severity='MINOR', wait=True)    # unchanged: one line, the value's
    assert len(sent) == 3 and sent[2].split()[1] == f"'{plant.device_name}:temp'".encode() and len(set_) == 1
    assert _alarm(f'{plant.device_name}:temp', ca_env) == ('MINOR', 'STATE')
    assert caget(f'{plant.device_name}:temp', ca_env) == '2'
    plant.temp.set_alarm('MINOR', status='HIGH', wait=True)   # same severity, new status: a change
    assert len(set_) == 2 and len(sent) == 5 and _alarm(f'{plant.device_name}:temp', ca_env) == ('MINOR', 'HIGH')


@pytest.mark.parametrize('field', ['heater', 'temp'])
def test_alarm_and_values_stay_in_order(plant, ca_env, field):
    """Alarm changes and plain puts interleaved, no waiting: the record ends with the last of each
    (the alarm goes the way the field's values go: CA for heater, the shell for temp)."""
    pv = getattr(plant, field)
    for round_ in range(20):
        for i in range(50):
            pv.put(float(i), severity=('MINOR', 'NO_ALARM', 'MAJOR')[(i + round_) % 3])
            pv.put(float(i) + 0.5)
        _turns(lambda: pv.get() == 49.5, f'the last put to {pv.name}')
        expected = ('MINOR', 'NO_ALARM', 'MAJOR')[(49 + round_) % 3]
        assert caget(pv.name, ca_env) == '49.5'
        assert caget(f'{pv.name}.SEVR', ca_env) == expected
        pv.put(-1.0, severity=0, wait=True)


def test_errors_name_the_field_and_the_fix(plant):
    with pytest.raises(RuntimeError, match='alarm=True'):
        plant.plain.set_alarm('MAJOR')
    with pytest.raises(ValueError, match='severity'):
        plant.heater.set_alarm('LOUD')
    with pytest.raises(ValueError, match='menuAlarmStat'):
        plant.heater.set_alarm('MAJOR', status='LOUDLY')
    with pytest.raises(ValueError, match='severity='):
        plant.heater.put(1.0, message='x')


class Guarded(models.Model):
    level = models.Float('level', default=10.0, alarm=True)


class Guard:
    def validate_level(self, pv, value, ioc):
        return value >= 0


def test_refused_value_raises_a_minor_alarm_until_an_accepted_one(device, ca_port, ca_env):
    model = Guarded(device, callbacks=Guard(), ca_port=ca_port)
    try:
        name = f'{device}:level'

        def turns(until, what):
            _turns(until, what, 10)

        turns(lambda: model.level.get() == 10.0, 'the initial value')
        caput(name, -5, ca_env)
        turns(lambda: caget(name, ca_env) == '10' and _alarm(name, ca_env) == ('MINOR', 'WRITE'), 'the refusal')
        assert model.level.alarm_message == 'refused -5.0'
        caput(name, 4, ca_env)
        turns(lambda: _alarm(name, ca_env) == ('NO_ALARM', 'NO_ALARM'), 'the alarm cleared')
        assert caget(name, ca_env) == '4'
    finally:
        model.shutdown()


def test_pva_client_sees_severity_and_status_and_no_message(device, ca_port, ca_env):
    """softIocPVA's QSRV serves the same alarm; its message (AMSG) stays empty (see devioc.alarms)."""
    model = Plant(device, ca_port=ca_port, pva=True)
    try:
        assert model.heater.set_alarm('MAJOR', message='coil open', wait=True)
        got = subprocess.run([epics_tool('pvget'), '-w', '5', '-M', 'json', '-r', 'alarm', f'{device}:heater'],
                             env=ca_env, capture_output=True, text=True, timeout=30)
        assert got.returncode == 0, got.stdout + got.stderr
        assert got.returncode == 0, got.stdout + got.stderr
        # QSRV's NTScalar alarm: severity 2 (MAJOR), message = AMSG when set, else the STAT name
        assert 'alarm:{severity:2,status:1,message:"STATE"}' in got.stdout.replace(' ', ''), got.stdout
        assert 'coil open' not in got.stdout
        assert model.heater.alarm_message == 'coil open'
    finally:
        model.shutdown()


def test_publish_rate_with_and_without_alarm(plant):
    """Measured, not timed: ``pytest -s -k publish_rate`` prints the median puts/s (5 interleaved
    rounds, in reactor turns) of a plain Float, of an alarm=True Float, of puts to it with an
    unchanged severity= (the same CA path), and of puts that change its alarm every time."""
    import statistics

    def rate(pv, n, severity_of=None):
        start = time.perf_counter()
        for i in range(n):
            if severity_of is None:
                pv.put(float(i))
            else:
                pv.put(float(i), severity=severity_of(i))
        _turns(lambda: pv.get() == float(n - 1), f'the last put to {pv.name}', timeout=120)
        return n / (time.perf_counter() - start)

    runs = {'plain Float': [], 'alarm=True Float': [], 'severity= unchanged': [], 'alarm changing every put': []}
    for _ in range(5):
        runs['plain Float'].append(rate(plant.plain, 20000))
        runs['alarm=True Float'].append(rate(plant.heater, 20000))
        runs['severity= unchanged'].append(rate(plant.heater, 20000, lambda i: 'MINOR'))
        runs['alarm changing every put'].append(rate(plant.heater, 200, lambda i: ('MINOR', 'NO_ALARM')[i % 2]))
    print('\nputs/s (median of 5): ' + '; '.join(f'{k} {statistics.median(v):,.0f}' for k, v in runs.items()))
    assert plant.heater.get() == 199.0 and plant.heater.severity == 0   # the last put cleared the alarm


def test_severity_and_status_names():
    from devioc.alarms import severity_name, status_name
    assert [severity_name(s, 'X') for s in (0, 1, 2, 3, 'major', ' Invalid ')] == \
        ['NO_ALARM', 'MINOR', 'MAJOR', 'INVALID', 'MAJOR', 'INVALID']
    import numpy as np
    assert [severity_name(s, 'X') for s in (np.int64(2), np.uint8(3), np.int32(0))] == ['MAJOR', 'INVALID', 'NO_ALARM']
    for bad in (4, -1, True, 1.0, 'HIGH', None, np.bool_(True), np.int64(4), np.float64(1.0)):
        with pytest.raises(ValueError, match="X to severity"):
            severity_name(bad, 'X')
    assert status_name(None, 'MINOR', 'X') == 'STATE' and status_name('state', 'MAJOR', 'X') == 'STATE'
    assert status_name(None, 'NO_ALARM', 'X') == 'NO_ALARM'
    assert status_name(' hihi', 'MAJOR', 'X') == 'HIHI' and status_name('WRITE', 'MINOR', 'X') == 'WRITE'
    for bad in ('LOUD', 'NO_ALARM', 3, ''):
        with pytest.raises(ValueError, match='menuAlarmStat'):
            status_name(bad, 'MAJOR', 'X')
    with pytest.raises(ValueError, match='NO_ALARM'):
        status_name('STATE', 'NO_ALARM', 'X')


def test_a_hidden_name_taken_by_a_field_is_refused():
    class Clash(models.Model):
        x = models.Float('x', alarm=True)
        y = models.Float('x:alarm')
    with pytest.raises(ValueError, match="rename that field"):
        render_db(Clash, 'DEV')


class Linked(models.Model):
    out = models.Float('out', alarm=True, FLNK='$(device):count')
    count = models.Calc('count', calc='A+1', inpa='$(device):count NPP')


class LinkedReadOnly(models.Model):
    out = models.Float('out', alarm=True, read_only=True, FLNK='$(device):count')
    count = models.Calc('count', calc='A+1', inpa='$(device):count NPP')


@pytest.mark.parametrize('kind', [Linked, LinkedReadOnly])
def test_each_alarm_change_processes_the_record_once(device, ca_port, ca_env, kind):
    """set_alarm processes the field once (its FLNK fires once); put(severity=) once with the value;
    an unchanged severity not at all; over CA (Linked) and through the IOC shell (read-only)."""
    model = kind(device, ca_port=ca_port)
    try:
        assert model.out._shell is (kind is LinkedReadOnly)
        count = f'{device}:count'
        start = float(caget(count, ca_env))
        model.out.set_alarm('MAJOR', wait=True)
        model.out.set_alarm('MAJOR', wait=True)
        assert float(caget(count, ca_env)) == start + 1
        model.out.put(3.0, severity='MINOR', wait=True)
        assert float(caget(count, ca_env)) == start + 2
        assert _alarm(f'{device}:out', ca_env) == ('MINOR', 'STATE') and caget(f'{device}:out', ca_env) == '3'
    finally:
        model.shutdown()


# -- any status, through the app's own CA server (devioc.alarms, devioc.appserver)
STATUS_CASES = [('MINOR', 'WRITE'), ('MAJOR', 'HIHI'), ('INVALID', 'COMM'), ('MINOR', 'SOFT'), ('MAJOR', 'LOLO'),
                ('NO_ALARM', None)]


@pytest.mark.parametrize('field', ['heater', 'temp', 'mode'])
def test_any_status_reaches_the_c_caget(plant, ca_env, field):
    """set_alarm and put(severity=, status=) on an output (CA route), an input (shell route) and an enum."""
    pv = getattr(plant, field)
    for i, (severity, status) in enumerate(STATUS_CASES):
        assert pv.set_alarm(severity, status=status, wait=True)
        assert _alarm(pv.name, ca_env) == (severity, status or 'NO_ALARM')
        value = i % 2 if field == 'mode' else float(i) + 0.25
        assert pv.put(value, severity=severity, status=status, wait=True)   # unchanged: the plain put
        assert _alarm(pv.name, ca_env) == (severity, status or 'NO_ALARM')
    for severity, status in STATUS_CASES:
        value = 1 if field == 'mode' else 7.5
        assert pv.put(value, severity=severity, status=status, wait=True)
        assert _alarm(pv.name, ca_env) == (severity, status or 'NO_ALARM')
        assert pv.put(0 if field == 'mode' else 8.5, wait=True)            # a plain put keeps the alarm
        assert _alarm(pv.name, ca_env) == (severity, status or 'NO_ALARM')


@pytest.mark.parametrize('field', ['heater', 'temp'])
def test_every_event_carries_the_alarm_of_its_value(plant, ca_env, field):
    """Puts with changing statuses interleaved with plain puts, no waiting: each event the C camonitor
    sees has the alarm set with (or before) its value - never the previous one."""
    pv = getattr(plant, field)
    cases = STATUS_CASES[:-1] + [('NO_ALARM', None)]
    monitor = subprocess.Popen([epics_tool('camonitor'), '-g', '8', pv.name], env=ca_env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.0)   # its first event (the current value) is in
        expected = {}
        for i in range(60):
            severity, status = cases[i % len(cases)]
            pv.put(float(i + 100), severity=severity, status=status)   # (not the default 1.5 or 20)
            pv.put(float(i + 100) + 0.5)
            expected[float(i + 100)] = expected[float(i + 100.5)] = (status or '', '' if status is None else severity)
        _turns(lambda: pv.get() == 159.5, f'the last put to {pv.name}')
        wait_for(lambda: caget(pv.name, ca_env) == '159.5', timeout=10)
        time.sleep(1.0)
    finally:
        monitor.terminate()
        out = monitor.communicate(timeout=10)[0]
    seen = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[0] != pv.name or float(parts[3]) not in expected:
            continue
        seen += 1
        got = (parts[4], parts[5]) if len(parts) >= 6 else ('', '')
        assert got == expected[float(parts[3])], out
    assert seen >= 60, out   # libca may merge events under load, never lose the last


def test_alarm_survives_a_restart_and_shutdown_frees_the_server(run_model, device, ca_env):
    """restart=True: after softIoc is killed and started again the app sets any status as before;
    shutdown stops the alarm server's thread and frees its port."""
    import os
    import signal
    import socket
    import threading

    from devioc.restart import RestartPolicy

    class Counter:
        restarts = 0

        def on_ioc_restart(self, ioc):
            Counter.restarts += 1

    ioc = run_model(Plant, callbacks=Counter(), restart=RestartPolicy(min_delay=0.1, max_delay=0.5))
    assert ioc.heater.set_alarm('MAJOR', status='HIHI', wait=True)
    assert _alarm(f'{device}:heater', ca_env) == ('MAJOR', 'HIHI')
    os.kill(ioc._process.pid, signal.SIGKILL)
    _turns(lambda: Counter.restarts == 1 and ioc._ready, 'the restart', timeout=60)
    assert ioc.heater.set_alarm('MINOR', status='WRITE', wait=True)
    assert _alarm(f'{device}:heater', ca_env) == ('MINOR', 'WRITE')
    assert ioc.temp.put(3.0, severity='INVALID', status='COMM', wait=True)
    assert _alarm(f'{device}:temp', ca_env) == ('INVALID', 'COMM') and caget(f'{device}:temp', ca_env) == '3'
    port = ioc._alarm_server.port
    ioc.shutdown()
    assert ioc._alarm_server is None
    assert not [t for t in threading.enumerate() if t.name == f'devioc-appserver-{port}' and t.is_alive()]
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(('127.0.0.1', port))   # free again


def _camonitor_events(name, ca_env, run, low):
    """Run ``run()`` while the C camonitor watches ``name``; the (value, severity) of its events of
    values >= ``low``."""
    monitor = subprocess.Popen([epics_tool('camonitor'), '-g', '8', name], env=ca_env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.0)   # its first event (the current value) is in
        run()
        time.sleep(1.0)
    finally:
        monitor.terminate()
        out = monitor.communicate(timeout=10)[0]
    events = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == name and float(parts[3]) >= low:
            events.append((float(parts[3]), parts[5] if len(parts) >= 6 else 'NO_ALARM'))
    return events, out


@pytest.mark.parametrize('field', ['heater', 'temp'])
def test_threads_putting_with_different_severities_keep_each_value_with_its_own(plant, ca_env, field):
    """Two threads put to one field at once, one even values with MAJOR, the other odd values with
    NO_ALARM: each event the C camonitor sees carries the severity its value was put with. (A put
    whose severity equals the last one takes the plain path: it must not slip past the other
    thread's alarm change between its look at the last severity and its write.)"""
    import threading

    pv = getattr(plant, field)
    rounds = 300

    def worker(parity, severity):
        for i in range(rounds):
            pv.put(float(1000 + 2 * i + parity), severity=severity)

    def run():
        threads = [threading.Thread(target=worker, args=(0, 'MAJOR')),
                   threading.Thread(target=worker, args=(1, 'NO_ALARM'))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert pv.put(-1.0, severity='MINOR', wait=True)   # the end, flushed (below 1000: not checked)

    events, out = _camonitor_events(pv.name, ca_env, run, 1000)
    wrong = [(value, severity) for value, severity in events
             if severity != ('MAJOR' if int(value) % 2 == 0 else 'NO_ALARM')]
    assert not wrong, f'{len(wrong)} of {len(events)} events carry the other thread\'s alarm: {wrong[:5]}'
    assert len(events) >= 2 * rounds * 0.5, out   # libca may merge events under load, not most of them


@pytest.mark.parametrize('field', ['heater', 'temp', 'mode'])
def test_alarm_set_from_a_new_thread_shows_at_once(plant, ca_env, field):
    """A worker thread's first CA call is an alarm change (set_alarm, then put with severity=): it
    is sent at once (the thread takes the model's CA context), not held until a 5 s timeout."""
    import threading

    pv = getattr(plant, field)
    outcome = []

    def worker(call):
        start = time.monotonic()
        try:
            outcome.append(call())
        except Exception as err:  # reported below, with the field
            outcome.append(err)
        outcome.append(time.monotonic() - start)

    for call in (lambda: pv.set_alarm('MAJOR', status='COMM'),
                 lambda: pv.put(1, severity='MINOR', status='HIGH', wait=True)):
        thread = threading.Thread(target=worker, args=(call,))
        thread.start()
        thread.join(30)
        result, took = outcome[-2:]
        assert result is True, f'{pv.name}: {result!r} after {took:.1f} s'   # (the fault: a 5 s timeout)
    wait_for(lambda: _alarm(pv.name, ca_env) == ('MINOR', 'HIGH'), timeout=10, what='the alarm')


class RestartPlant(models.Model):
    temp = models.FloatInput('temp', default=20.0, alarm=True)    # PINI, written through the shell
    heater = models.Float('heater', default=1.5, alarm=True)      # PINI, written over CA
    out = models.Float('out', alarm=True, FLNK='$(device):count')  # an output link: no PINI
    count = models.Calc('count', calc='A+1', inpa='$(device):count NPP')


def test_a_restart_shows_the_alarm_again(run_model, device, ca_env):
    """restart=True: after softIoc is killed, the new one's fields show the alarm the app had set
    (those that process at start are processed once more; a field with an output link is not, so
    nothing is written through it), and the app's next set_alarm, even of the same alarm, shows it."""
    import os
    import signal

    from devioc.restart import RestartPolicy

    class Counter:
        restarts = 0

        def on_ioc_restart(self, ioc):
            Counter.restarts += 1

    ioc = run_model(RestartPlant, callbacks=Counter(), restart=RestartPolicy(min_delay=0.1, max_delay=0.5))
    assert ioc.temp.put(30.0, severity='MAJOR', status='HIHI', wait=True)
    assert ioc.heater.set_alarm('INVALID', status='COMM', wait=True)
    assert ioc.out.set_alarm('MINOR', status='LINK', wait=True)
    for restarts in (1, 2):
        os.kill(ioc._process.pid, signal.SIGKILL)
        _turns(lambda: Counter.restarts == restarts and ioc._ready, 'the restart', timeout=60)
        assert _alarm(f'{device}:temp', ca_env) == ('MAJOR', 'HIHI')
        assert _alarm(f'{device}:heater', ca_env) == ('INVALID', 'COMM')
        assert caget(f'{device}:out.SEVR', ca_env) == 'NO_ALARM'   # not processed since the start: FLNK not fired
    count = float(caget(f'{device}:count', ca_env))
    assert ioc.out.set_alarm('MINOR', status='LINK', wait=True)     # the same alarm: shown now, one processing
    assert _alarm(f'{device}:out', ca_env) == ('MINOR', 'LINK') and float(caget(f'{device}:count', ca_env)) == count + 1
    assert ioc.heater.set_alarm('INVALID', status='COMM', wait=True)   # shown already: nothing sent
    assert float(caget(f'{device}:count', ca_env)) == count + 1
    assert ioc.heater.put(2.5, severity='INVALID', status='COMM', wait=True)
    assert ioc.heater.clear_alarm(wait=True) and ioc.temp.clear_alarm(wait=True)
    assert _alarm(f'{device}:heater', ca_env) == _alarm(f'{device}:temp', ca_env) == ('NO_ALARM', 'NO_ALARM')


def test_an_alarm_change_while_softioc_is_down_fails_at_once_and_keeps_the_alarm(run_model, device, ca_env):
    """restart=True, softIoc killed and not started yet: set_alarm and put(severity=) raise
    RuntimeError saying the IOC is not connected (as a plain put does), not after a 5 s wait; the
    alarm the app had is shown again by the new softIoc."""
    import os
    import signal

    from devioc.restart import RestartPolicy

    class Counter:
        restarts = 0

        def on_ioc_restart(self, ioc):
            Counter.restarts += 1

    ioc = run_model(Plant, callbacks=Counter(), restart=RestartPolicy(min_delay=3.0, max_delay=3.0))
    assert ioc.heater.set_alarm('MAJOR', status='HIHI', wait=True)
    assert ioc.temp.set_alarm('MINOR', status='SOFT', wait=True)
    os.kill(ioc._process.pid, signal.SIGKILL)
    _turns(lambda: not ioc.heater.connected and not ioc.temp.connected, 'the disconnection', timeout=10)
    for call in (ioc.heater.clear_alarm, ioc.temp.clear_alarm, lambda: ioc.heater.set_alarm('INVALID'),
                 lambda: ioc.temp.put(5.0, severity='INVALID', status='COMM')):
        with pytest.raises(RuntimeError, match='is not connected: is the IOC running'):
            call()
    _turns(lambda: Counter.restarts == 1 and ioc._ready, 'the restart', timeout=60)
    assert _alarm(f'{device}:heater', ca_env) == ('MAJOR', 'HIHI')
    assert _alarm(f'{device}:temp', ca_env) == ('MINOR', 'SOFT')


def test_clients_cannot_write_the_hidden_alarm_record(device, ca_port, ca_env):
    """No client, of this user or another, writes the hidden record (DEVIOC_RO, with the .acf loaded
    for it even in a model with no read-only field): it could otherwise set the app's field in alarm
    (its own HIHI/HHSV) or clear the app's alarm (INP, SIMM); the alarm the app set is still what the
    field shows after the attempts and a client's put."""
    from devioc.testing import tool_as_other_user

    hidden = render_db(Guarded, 'DEV').split('record(longin, "DEV:level:alarm")')[1].split('}')[0]
    assert 'field(ASG, "DEVIOC_RO")' in hidden
    model = Guarded(device, ca_port=ca_port)   # one writable alarm=True field, nothing else
    try:
        name = f'{device}:level'
        assert model.level.set_alarm('MINOR', status='SOFT', wait=True)
        writes = [('HIHI', '-1'), ('HHSV', 'MAJOR'), ('SIMM', 'YES'), ('INP', '0'), ('DISV', '0'), ('PROC', '1')]
        for prefix in ([epics_tool('caput')], tool_as_other_user('caput')):
            for field, value in writes:
                done = subprocess.run([*prefix, '-w', '3', f'{name}:alarm.{field}', value], env=ca_env,
                                      capture_output=True, text=True, timeout=30)
                assert done.returncode != 0 and 'Write access denied' in done.stdout + done.stderr, \
                    (prefix, field, done.stdout + done.stderr)
        caput(name, 6.5, ca_env)   # processed again: it reads the hidden record, untouched
        assert _alarm(name, ca_env) == ('MINOR', 'SOFT') and caget(f'{name}:alarm.HIHI', ca_env) == '0'
        assert model.level.clear_alarm(wait=True) and _alarm(name, ca_env) == ('NO_ALARM', 'NO_ALARM')
    finally:
        model.shutdown()


def test_the_alarm_source_refuses_a_client_write_quietly(plant, ca_env, caplog):
    """The source on the app's caproto server is no client's: a caput of this user, not the model's
    softIoc, is refused at connection (other users too; a connection from softIoc would still get
    "Write access denied"), the alarm stays, and the app's log says so, with no traceback."""
    import logging

    name = f'{plant.device_name}:heater'
    assert plant.heater.set_alarm('MAJOR', status='HIHI', wait=True)
    env = dict(ca_env, EPICS_CA_ADDR_LIST=plant._alarm_server.address)
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        done = subprocess.run([epics_tool('caput'), '-w', '3', f'{name}:alarm:app', '0'], env=env,
                              capture_output=True, text=True, timeout=30)
        time.sleep(0.5)   # the server's log of the write, if any
    assert done.returncode != 0, done.stdout + done.stderr
    assert any("not the model's softIoc" in r.getMessage() for r in caplog.records), \
        [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
    caput(name, 2.5, ca_env)
    assert _alarm(name, ca_env) == ('MAJOR', 'HIHI')


def test_an_alarm_the_app_sets_while_a_refusal_is_put_back_is_kept(device, ca_port, ca_env):
    """Another thread of the app sets its own alarm just as a refused value is put back: the
    put-back's refusal mark must not stick to the app's alarm, or the next accepted value clears it.
    (The other thread is started at the worst moment, from inside the put-back's put, and given
    0.5 s: it either waits for the put-back to finish, or runs in its window.)"""
    import threading

    from twisted.internet import reactor

    model = Guarded(device, callbacks=Guard(), ca_port=ca_port)
    try:
        name = f'{device}:level'
        pv = model.level
        real_put, started, depth = pv.put, [], [0]

        def put(value, *args, **kwargs):
            depth[0] += 1
            try:
                done = real_put(value, *args, **kwargs)
            finally:
                depth[0] -= 1
            if not started and not depth[0]:   # the put-back of the refused value is out: the other thread now
                started.append(threading.Thread(target=pv.set_alarm, args=('MAJOR',), kwargs={'status': 'HIHI'}))
                started[0].start()
                started[0].join(0.5)
            return done

        pv.put = put

        def turns(until, what):
            _turns(until, what, 15)

        turns(lambda: pv.get() == 10.0, 'the initial value')
        caput(name, -5, ca_env)
        turns(lambda: started and not started[0].is_alive(), "the app's alarm")
        del pv.put
        assert _alarm(name, ca_env) == ('MAJOR', 'HIHI') and caget(name, ca_env) == '10'
        caput(name, 4, ca_env)   # accepted: it clears a refusal's alarm, not the app's
        turns(lambda: pv.get() == 4.0, 'the accepted value')
        for _ in range(20):
            reactor.iterate(0.01)
        assert _alarm(name, ca_env) == ('MAJOR', 'HIHI')
    finally:
        model.shutdown()


def test_a_pva_clients_refused_write_shows_the_write_alarm_to_pva_clients(device, ca_port, ca_env):
    """softIocPVA: a value pvput writes and validate_ refuses is put back with MINOR/WRITE, which
    pvget reads (QSRV's message is then the status name); an accepted pvput clears it."""
    model = Guarded(device, callbacks=Guard(), ca_port=ca_port, pva=True)
    try:
        name = f'{device}:level'

        def turns(until, what):
            _turns(until, what, 15)

        def pvget():
            got = subprocess.run([epics_tool('pvget'), '-w', '5', '-M', 'json', '-r', 'value,alarm', name], env=ca_env,
                                 capture_output=True, text=True, timeout=30)
            assert got.returncode == 0, got.stdout + got.stderr
            return got.stdout.replace(' ', '')

        turns(lambda: model.level.get() == 10.0, 'the initial value')
        put = subprocess.run([epics_tool('pvput'), '-w', '5', name, '-3'], env=ca_env, capture_output=True, text=True,
                             timeout=30)
        assert put.returncode == 0, put.stdout + put.stderr
        turns(lambda: 'alarm:{severity:1,status:1,message:"WRITE"}' in pvget() and 'value:10' in pvget(),
              'the refusal, seen by pvget')
        assert model.level.alarm_message == 'refused -3.0'
        subprocess.run([epics_tool('pvput'), '-w', '5', name, '7'], env=ca_env, capture_output=True, timeout=30)
        turns(lambda: 'alarm:{severity:0,status:0,message:"NO_ALARM"}' in pvget() and 'value:7' in pvget(),
              'the accepted value, seen by pvget')
    finally:
        model.shutdown()


class EveryKind(models.Model):
    f = models.Float('f', default=1.5, alarm=True)
    fi = models.FloatInput('fi', default=2.5, alarm=True)
    i = models.Integer('i', default=3, alarm=True)
    ii = models.IntegerInput('ii', default=4, alarm=True)
    e = models.Enum('e', choices=['A', 'B'], alarm=True)
    ei = models.EnumInput('ei', choices=['A', 'B'], alarm=True)
    t = models.Toggle('t', alarm=True)
    bi = models.BoolInput('bi', alarm=True)
    s = models.String('s', default='x', alarm=True)
    sl = models.String('sl', max_length=100, default='long', alarm=True)
    si = models.StringInput('si', default='y', alarm=True)
    a = models.Array('a', type=float, length=4, alarm=True)
    bo = models.BinaryOutput('bo', alarm=True)
    bn = models.BinaryInput('bn', alarm=True)
    c = models.Calc('c', calc='A+1', alarm=True)
    co = models.CalcOut('co', calc='A+1', alarm=True)


def test_every_kind_starts_clear_keeps_its_record_type_and_shows_any_alarm(device, ca_port, ca_env):
    """Each kind that takes alarm=True, input and output, string, long string, array, calc: no alarm
    at the start, the record type of the kind, and the severity and status the app sets (C caget)."""
    types = {'f': 'ao', 'fi': 'ai', 'i': 'longout', 'ii': 'longin', 'e': 'mbbo', 'ei': 'mbbi', 't': 'bo', 'bi': 'bi',
             's': 'stringout', 'sl': 'waveform', 'si': 'stringin', 'a': 'waveform', 'bo': 'mbboDirect',
             'bn': 'mbbiDirect', 'c': 'calc', 'co': 'calcout'}
    model = EveryKind(device, ca_port=ca_port)
    try:
        for field, rtype in types.items():
            name = f'{device}:{field}'
            assert caget(f'{name}.RTYP', ca_env) == rtype, field
            assert _alarm(name, ca_env) == ('NO_ALARM', 'NO_ALARM'), field
        for severity, status in (('MAJOR', 'HIHI'), ('INVALID', 'UDF'), ('MINOR', 'WRITE_ACCESS'), ('NO_ALARM', None)):
            for field in types:
                assert getattr(model, field).set_alarm(severity, status=status, wait=True), field
            for field in types:
                assert _alarm(f'{device}:{field}', ca_env) == (severity, status or 'NO_ALARM'), (field, severity)
    finally:
        model.shutdown()
