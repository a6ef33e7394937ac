"""blocking=True end to end: a live softIoc, the app's caproto server, and real clients in other
processes (the C caput -c and pyepics put(wait=True)) whose puts complete when the app's handler has."""
import logging
import socket
import subprocess
import sys
import threading

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from devioc import models
from devioc.testing import alive, caget, caput, epics_tool, until


class Motor(models.Model):
    position = models.Float('position', blocking=True)
    steps = models.Integer('steps', blocking=True)
    mode = models.Enum('mode', choices=['IDLE', 'MOVE', 'HOME'], blocking=True)
    go = models.Toggle('go', blocking=True, blocking_timeout=1)
    bits = models.BinaryOutput('bits', blocking=True)
    command = models.String('command', max_length=39, blocking=True)
    plain = models.Float('plain')
    other = models.Integer('other')


class App:
    """Handlers the test finishes itself: each write's Deferred waits in ``held`` until released."""

    def __init__(self):
        self.calls = []
        self.held = []
        self.fail = False

    def _hold(self, name, value):
        self.calls.append((name, value))
        d = defer.Deferred()
        self.held.append(d)
        return d

    def release(self, error=None):
        while self.held:
            d = self.held.pop(0)
            if error is None:
                d.callback(None)
            else:
                d.errback(error)

    def do_position(self, pv, value, ioc):
        return self._hold('position', value)

    async def do_steps(self, pv, value, ioc):   # a coroutine: the put waits for it too
        await self._hold('steps', value)

    def do_mode(self, pv, value, ioc):
        self.calls.append(('mode', value))
        if value == 2:
            raise RuntimeError('cannot home now')

    def do_go(self, pv, value, ioc):
        self.calls.append(('go', value))
        if value == 1:
            return defer.Deferred()   # never fires: blocking_timeout=1 releases the put

    def do_bits(self, pv, value, ioc):
        self.calls.append(('bits', value))

    def do_command(self, pv, value, ioc):
        self.calls.append(('command', value))
        if value == 'own':
            # the app's own blocking put(wait=True) from the reactor thread is not held for itself
            self.own_put = ioc.position.put(7.5, wait=True, timeout=5)

    def do_other(self, pv, value, ioc):
        self.calls.append(('other', value))


@pytest.fixture
def motor(run_model, ca_port):
    app = App()
    ioc = run_model(Motor, callbacks=app, ca_port=ca_port)
    return ioc, app


def alarm(pv, env):
    """(STAT, SEVR) of a record, as the C caget reads them."""
    return tuple(caget(f'{pv}.STAT', env, '-t').split() + caget(f'{pv}.SEVR', env, '-t').split())


def start_caput(pv, value, env, callback=True, *args):
    command = [epics_tool('caput')] + (['-c', '-w', '30'] if callback else []) + list(args) + [pv, str(value)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


PYEPICS_PUT = '''
import sys, epics
pv = epics.PV(sys.argv[1])
if not pv.wait_for_connection(10):
    sys.exit('not connected')
status = pv.put(float(sys.argv[2]), wait=True, timeout=30)
print('completed' if status == 1 else f'status {status}', flush=True)
'''


@pytest_twisted.inlineCallbacks
def test_caput_callback_returns_only_after_the_deferred_handler(motor, ca_env):
    """caput -c on a blocking Float is still running while do_position's Deferred is pending, and
    exits 0 once it fires; the handler got the written value, the record holds it."""
    ioc, app = motor
    yield until(lambda: ('position', 0.0) in app.calls, what='the initial callback')
    app.release()
    del app.calls[:]
    client = start_caput(f'{ioc.device_name}:position', 2.5, ca_env)
    yield until(lambda: app.held, what='do_position to be called')
    assert app.calls == [('position', 2.5)]
    yield task.deferLater(reactor, 1.0, lambda: None)
    assert client.poll() is None, 'caput -c returned while the handler was still running'
    app.release()
    yield until(lambda: client.poll() is not None, what='caput -c to return')
    assert client.returncode == 0, client.stderr.read()
    assert ioc.position.get() == 2.5


@pytest_twisted.inlineCallbacks
def test_pyepics_put_wait_from_another_process_waits_for_a_coroutine(motor, ca_env):
    """pyepics put(wait=True) in another process on a blocking Integer whose handler is a coroutine:
    held until the coroutine ends."""
    ioc, app = motor
    yield until(lambda: app.held, what='the initial callbacks')
    app.release()
    del app.calls[:]
    client = subprocess.Popen([sys.executable, '-c', PYEPICS_PUT, f'{ioc.device_name}:steps', '42'],
                              env=ca_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield until(lambda: app.held, what='do_steps to be called')
    assert app.calls == [('steps', 42)]
    yield task.deferLater(reactor, 1.0, lambda: None)
    assert client.poll() is None, 'put(wait=True) returned while the coroutine was still running'
    app.release()
    yield until(lambda: client.poll() is not None, what='the pyepics put to return')
    out, err = client.communicate()
    assert client.returncode == 0 and out.strip() == 'completed', (out, err)


@pytest_twisted.inlineCallbacks
def test_plain_caput_is_not_held_and_reaches_the_handler(motor, ca_env):
    """A caput without callback returns at once; its value still reaches do_position."""
    ioc, app = motor
    yield until(lambda: app.held, what='the initial callback')
    app.release()
    del app.calls[:]
    client = start_caput(f'{ioc.device_name}:position', 3.25, ca_env, False)
    yield until(lambda: client.poll() is not None, what='the plain caput to return')
    assert client.returncode == 0
    yield until(lambda: ('position', 3.25) in app.calls, what='do_position(3.25)')
    assert app.held, 'the handler is still running: only the plain client did not wait for it'
    app.release()


@pytest_twisted.inlineCallbacks
def test_a_handler_that_raises_completes_the_put_and_never_wedges_the_record(motor, ca_env, caplog):
    """do_mode raising: caput -c completes (exit 0), the traceback is logged with the field's name,
    and the next write is handled as usual."""
    ioc, app = motor
    name = f'{ioc.device_name}:mode'
    with caplog.at_level(logging.ERROR, logger='devioc.blocking'):
        client = start_caput(name, 'HOME', ca_env)
        yield until(lambda: client.poll() is not None, what='caput -c after the exception')
        assert client.returncode == 0
        assert 'do_mode(2) raised' in caplog.text and 'cannot home now' in caplog.text
    client = start_caput(name, 'MOVE', ca_env)
    yield until(lambda: client.poll() is not None, what='the next caput -c')
    assert client.returncode == 0
    assert ('mode', 1) in app.calls
    assert caget(name, ca_env).split()[-1] == 'MOVE'


@pytest_twisted.inlineCallbacks
def test_a_handler_that_never_finishes_is_released_after_blocking_timeout(motor, ca_env, caplog):
    """go has blocking_timeout=1 and a handler that never finishes: caput -c completes anyway, the
    timeout is logged, and the record takes the next write."""
    ioc, app = motor
    name = f'{ioc.device_name}:go'
    with caplog.at_level(logging.ERROR, logger='devioc.blocking'):
        client = start_caput(name, 1, ca_env)
        yield until(lambda: ('go', 1) in app.calls, what='do_go(1)')
        yield until(lambda: client.poll() is not None, timeout=15, what='caput -c released by the timeout')
        assert client.returncode == 0
        assert 'did not finish within blocking_timeout=1 s' in caplog.text
    assert alarm(name, ca_env) == ('UDF', 'INVALID')   # the record shows it
    del app.calls[:]
    client = start_caput(name, 1, ca_env)
    yield until(lambda: ('go', 1) in app.calls, what='the next write to be handled')
    yield until(lambda: client.poll() is not None, timeout=15, what='the second caput -c')
    assert client.returncode == 0


@pytest_twisted.inlineCallbacks
def test_a_failed_deferred_completes_the_put_in_alarm_until_the_next_write(motor, ca_env, caplog):
    """do_position's Deferred failing: caput -c completes (exit 0), the failure is logged, and the
    record shows UDF INVALID; the next write that succeeds clears the alarm."""
    ioc, app = motor
    name = f'{ioc.device_name}:position'
    yield until(lambda: app.held, what='the initial callback')
    app.release()
    client = start_caput(name, 4, ca_env)   # a blocking record is not processed at start (no PINI)
    yield until(lambda: app.held, what='do_position(4)')
    app.release()
    yield until(lambda: client.poll() is not None, what='the first caput -c')
    assert alarm(name, ca_env) == ('NO_ALARM', 'NO_ALARM')
    with caplog.at_level(logging.ERROR, logger='devioc.blocking'):
        client = start_caput(name, 5, ca_env)
        yield until(lambda: app.held, what='do_position(5)')
        app.release(RuntimeError('motor stalled'))
        yield until(lambda: client.poll() is not None, what='caput -c after the failure')
        assert client.returncode == 0
        assert 'do_position(5.0) failed' in caplog.text and 'motor stalled' in caplog.text
    assert alarm(name, ca_env) == ('UDF', 'INVALID') and ioc.position.get() == 5.0
    client = start_caput(name, 6, ca_env)
    yield until(lambda: app.held, what='do_position(6)')
    app.release()
    yield until(lambda: client.poll() is not None, what='the next caput -c')
    assert alarm(name, ca_env) == ('NO_ALARM', 'NO_ALARM') and ioc.position.get() == 6.0


@pytest_twisted.inlineCallbacks
def test_writes_made_while_one_is_held_are_queued_or_coalesced(motor, ca_env):
    """While a write is held: puts with callback wait their turn and each is handled; plain puts are
    coalesced by softIoc (RPRO) so the handler sees the last one; nothing is left held."""
    ioc, app = motor
    name = f'{ioc.device_name}:position'
    yield until(lambda: app.held, what='the initial callback')
    app.release()
    del app.calls[:]
    first = start_caput(name, 1, ca_env)
    yield until(lambda: app.held, what='the first write')
    queued = [start_caput(name, value, ca_env) for value in (2, 3, 4)]
    yield task.deferLater(reactor, 0.5, lambda: None)
    assert [c.poll() for c in [first] + queued] == [None] * 4
    for _ in range(4):   # each completion lets softIoc process the next put with callback
        yield until(lambda: app.held, what='the next queued write')
        app.release()
    yield until(lambda: all(c.poll() is not None for c in [first] + queued), what='every caput -c')
    assert [c.returncode for c in [first] + queued] == [0] * 4
    assert sorted(v for n, v in app.calls if n == 'position') == [1.0, 2.0, 3.0, 4.0]

    del app.calls[:]
    holder = start_caput(name, 10, ca_env)
    yield until(lambda: app.held, what='the held write')
    for value in range(11, 31):   # 20 plain puts while held: each returns at once
        caput(name, value, ca_env)
    app.release()
    yield until(lambda: ('position', 30.0) in app.calls, what='the last plain put to be handled')
    app.release()
    yield until(lambda: holder.poll() is not None, what='the held caput -c')
    assert holder.returncode == 0
    assert app.calls[0] == ('position', 10.0) and app.calls[-1] == ('position', 30.0)
    yield task.deferLater(reactor, 0.3, lambda: None)
    app.release()
    assert caget(name, ca_env).split()[-1] == '30'


@pytest_twisted.inlineCallbacks
def test_many_rapid_writes_leave_nothing_held(motor, ca_env):
    """200 plain puts and 20 puts with callback in a burst to a blocking field with an instant
    handler: every caput -c completes, the last value is handled and held by the record."""
    ioc, app = motor
    name = f'{ioc.device_name}:bits'
    clients = [start_caput(name, value, ca_env) for value in range(20)]
    yield until(lambda: all(c.poll() is not None for c in clients), timeout=30, what='every caput -c')
    assert [c.returncode for c in clients] == [0] * 20
    assert {v for n, v in app.calls if n == 'bits'} >= set(range(20))   # each put with callback handled
    # not subprocess.run: the reactor must keep running to handle the writes it waits for
    burst = subprocess.Popen([sys.executable, '-c', 'import sys, epics\n'
                              'pv = epics.PV(sys.argv[1]); pv.wait_for_connection(10)\n'
                              'for i in range(100, 300): pv.put(i)\n'
                              'print(pv.put(300, wait=True, timeout=30))', name],
                             env=ca_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield until(lambda: burst.poll() is not None, timeout=60, what='the pyepics burst')
    out, err = burst.communicate()
    assert out.strip() == '1', err
    yield until(lambda: ('bits', 300) in app.calls, what='the last write to be handled')
    assert ioc.bits.get() == 300


@pytest_twisted.inlineCallbacks
def test_the_apps_own_put_wait_is_not_held_for_the_app(motor, ca_env):
    """From do_command (reactor thread), ioc.position.put(7.5, wait=True) on a blocking field returns
    True at once (it would otherwise wait for the reactor it blocks); do_position still sees 7.5."""
    ioc, app = motor
    yield until(lambda: app.held, what='the initial callback')
    app.release()
    caput(f'{ioc.device_name}:command', 'own', ca_env)
    yield until(lambda: hasattr(app, 'own_put'), what='the own put to return')
    assert app.own_put is True
    yield until(lambda: ('position', 7.5) in app.calls, what='do_position(7.5)')
    app.release()
    assert ioc.position.get() == 7.5


@pytest_twisted.inlineCallbacks
def test_blocking_strings_reach_the_handler_as_utf8(motor, ca_env):
    """A stringout written with UTF-8 text reaches do_command as the same str."""
    ioc, app = motor
    client = start_caput(f'{ioc.device_name}:command', 'mount héxa', ca_env)
    yield until(lambda: client.poll() is not None, what='caput -c')
    assert client.returncode == 0
    assert ('command', 'mount héxa') in app.calls


@pytest_twisted.inlineCallbacks
def test_plain_fields_keep_their_monitor_callbacks(motor, ca_env):
    """A non-blocking field of the same model calls do_<field> from its monitor as always."""
    ioc, app = motor
    caput(f'{ioc.device_name}:other', 5, ca_env)
    yield until(lambda: ('other', 5) in app.calls, what='do_other(5)')
    app.release()


def test_shutdown_with_a_held_put_leaves_nothing_running(ca_port, device, ca_env):
    """Shutting down while a caput -c is held: the client returns, softIoc is gone, the server's
    thread has ended and its port is free again."""
    app = App()
    ioc = Motor(device, callbacks=app, ca_port=ca_port)
    try:
        server = ioc._blocking.server
        port, pid = server.port, ioc._process.pid
        client = start_caput(f'{device}:position', 9, ca_env)
        thread_names = [t.name for t in threading.enumerate()]
        assert f'devioc-appserver-{port}' in thread_names
        # the reactor is not running here: the put is held (its handler is queued for the reactor)
        with pytest.raises(subprocess.TimeoutExpired):
            client.wait(1.0)
    finally:
        ioc.shutdown()
    client.wait(15)
    assert not alive(pid)
    assert f'devioc-appserver-{port}' not in [t.name for t in threading.enumerate()]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(('127.0.0.1', port))   # free again
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind(('127.0.0.1', port))


def test_a_model_without_blocking_fields_starts_no_server(run_model, ca_port):
    """Models without blocking fields run as before: no app server, no extra thread."""
    class Plain(models.Model):
        value = models.Float('value')

    ioc = run_model(Plain, ca_port=ca_port)
    assert ioc._blocking is None
    assert not [t for t in threading.enumerate() if t.name.startswith('devioc-appserver')]
