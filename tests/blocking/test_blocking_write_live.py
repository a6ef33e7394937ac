"""blocking=True together with write_<field> (issue 13 item 7: a client's ``caput -c`` returns when the
field's ``write_<field>``/``do_<field>`` has finished), live: softIoc, the app's server, the C caput."""
import subprocess

import pytest_twisted
from twisted.internet import defer, reactor, task

from devioc import models
from devioc.testing import caput, epics_tool, until


class Axis(models.Model):
    sp = models.Float('SP', blocking=True)


class Held:
    """Handlers whose Deferreds the test fires itself; ``calls`` in the order they were made."""

    def __init__(self):
        self.calls = []
        self.held = []

    def hold(self, name, value):
        self.calls.append((name, value))
        d = defer.Deferred()
        self.held.append(d)
        return d

    def release(self):
        while self.held:
            self.held.pop(0).callback(None)


class AxisCallbacks(Held):
    def write_sp(self, pv, value, ioc):
        return self.hold('write_ax_sp', value)


AXIS = AxisCallbacks()


class Valve(models.Model):
    only = models.Float('only', blocking=True)        # write_only and no do_only
    both = models.Integer('both', blocking=True)      # do_both and write_both
    ax = models.Group(Axis, prefix='AX:', callbacks=AXIS)   # a group's blocking field, write_ on its callbacks


class App(Held):
    def write_only(self, pv, value, ioc):
        return self.hold('write_only', value)

    def do_both(self, pv, value, ioc):
        self.calls.append(('do_both', value))

    async def write_both(self, pv, value, ioc):
        await self.hold('write_both', value)


def start_caput(pv, value, env):
    return subprocess.Popen([epics_tool('caput'), '-c', '-w', '30', pv, str(value)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest_twisted.inlineCallbacks
def held_until_released(app, pv, value, env, expected):
    """caput -c pv value: still running while app's handlers are pending, exits 0 once released."""
    client = start_caput(pv, value, env)
    yield until(lambda: app.held, what=f'a held handler for {pv}')
    yield task.deferLater(reactor, 1.0, lambda: None)
    assert client.poll() is None, f'caput -c {pv} returned while write_ was still running'
    app.release()
    yield until(lambda: client.poll() is not None, what=f'caput -c {pv} to return')
    assert client.returncode == 0, client.stderr.read()
    assert [c for c in app.calls if c[0].startswith('write_')] == expected


@pytest_twisted.inlineCallbacks
def test_write_callbacks_of_blocking_fields_hold_the_clients_put(run_model, ca_port, ca_env):
    """A blocking field with write_ only, with do_ and write_, and a group's blocking field with the
    group's write_: caput -c returns only once write_ is done, for the same value again too; write_ is
    called once per client write, do_ for the change; the app's own put calls no write_ and is not held."""
    app, axis = App(), AXIS
    del axis.calls[:]
    ioc = run_model(Valve, callbacks=app, ca_port=ca_port)
    device = ioc.device_name
    yield until(lambda: ('do_both', 0) in app.calls, what='the initial do_both')
    del app.calls[:]
    for value in (2.5, 2.5):   # the same value twice: two writes, two calls
        yield held_until_released(app, f'{device}:only', value, ca_env, [('write_only', value)])
        del app.calls[:]
    # with write_both, write_both is the held handler and do_both keeps its meaning: the change,
    # posted by the record once the held write completed
    yield held_until_released(app, f'{device}:both', 4, ca_env, [('write_both', 4)])
    yield until(lambda: ('do_both', 4) in app.calls, what='do_both(4), the change')
    del app.calls[:]
    yield held_until_released(axis, f'{device}:AX:SP', 1.5, ca_env, [('write_ax_sp', 1.5)])

    # the app's own puts: do_ only, at once, and nothing for write_
    assert ioc.only.put(7.0, wait=True, timeout=5) is True
    assert ioc.both.put(8, wait=True, timeout=5) is True
    yield until(lambda: ('do_both', 8) in app.calls, what='do_both(8) of the own put')
    yield task.deferLater(reactor, 0.5, lambda: None)
    assert [c for c in app.calls if c[0].startswith('write_')] == [], app.calls
    assert not app.held
    caput(f'{device}:only', 3, ca_env)   # a plain caput still reaches write_only
    yield until(lambda: ('write_only', 3.0) in app.calls, what='write_only(3.0) of a plain caput')
    app.release()


class Failing(models.Model):
    level = models.Float('level', blocking=True)


class FailingApp:
    def __init__(self):
        self.restarts = []

    def do_level(self, pv, value, ioc):
        if value == 13:
            raise RuntimeError('unlucky')

    def on_ioc_restart(self, ioc):
        self.restarts.append(ioc._process.pid)


@pytest_twisted.inlineCallbacks
def test_a_failed_write_right_after_a_restart_still_raises_the_alarm(run_model, ca_port, ca_env):
    """restart=True: the helper record that puts a failed write in UDF alarm is reached on the new
    softIoc at once (its channel was left to libca's backed-off search: ~7 s without the alarm)."""
    import os
    import signal

    from devioc.restart import RestartPolicy
    from devioc.testing import caget

    app = FailingApp()
    ioc = run_model(Failing, callbacks=app, ca_port=ca_port,
                    restart=RestartPolicy(min_delay=0.1, max_delay=0.5, max_deaths=20, window=60.0))
    os.kill(ioc._process.pid, signal.SIGKILL)
    yield until(lambda: app.restarts and ioc._ready, what='the restart')
    client = start_caput(f'{ioc.device_name}:level', 13, ca_env)
    yield until(lambda: client.poll() is not None, what='caput -c to return')
    assert client.returncode == 0, client.stderr.read()
    assert caget(f'{ioc.device_name}:level.STAT', ca_env) == 'UDF'
    assert caget(f'{ioc.device_name}:level.SEVR', ca_env) == 'INVALID'
