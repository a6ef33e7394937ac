"""write_<field> and ioc.<field>.field(NAME) across a restart (restart=True, the generated project's
default): kill -9 of softIoc, the new one comes up, and both keep working."""
import os
import signal
import time

import pytest_twisted
from twisted.internet import reactor, task

from devioc import models
from devioc.restart import RestartPolicy
from devioc.testing import caput

FAST = RestartPolicy(min_delay=0.1, max_delay=0.5, max_deaths=20, window=60.0)


class Pump(models.Model):
    speed = models.Integer('speed')
    temp = models.Float('temp', units='degC')

    class Meta:
        access_level = 1   # clients edit configuration fields here (ASL1: EGU)


class App:
    def __init__(self):
        self.writes, self.restarts, self.egu = [], [], []

    def write_speed(self, pv, value, ioc):
        self.writes.append(value)

    def on_ioc_restart(self, ioc):
        self.restarts.append(ioc._process.pid)


@pytest_twisted.inlineCallbacks
def until(predicate, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout} s waiting for {what}')
        yield task.deferLater(reactor, 0.05, lambda: None)


@pytest_twisted.inlineCallbacks
def test_write_callbacks_and_field_callbacks_survive_a_restart(run_model, ca_env):
    """Before the fix the restart never completed for a model with a write_ callback (its detector
    was never seen connected again: 'did not connect again within 10 s', five times, then the app
    stopped), and a field channel's add_callback was dropped by the restart."""
    app = App()
    ioc = run_model(Pump, callbacks=app, restart=FAST)
    device = ioc.device_name
    egu = ioc.temp.field('EGU')
    egu.add_callback(lambda channel, value: app.egu.append(value))
    yield until(lambda: app.egu == ['degC'], 'the first EGU value')
    caput(f'{device}:speed', 3, ca_env)
    yield until(lambda: app.writes == [3], 'write_speed(3)')

    os.kill(ioc._process.pid, signal.SIGKILL)
    yield until(lambda: app.restarts and ioc._ready, 'the restart')
    caput(f'{device}:speed', 3, ca_env)          # the same value: a write all the same
    yield until(lambda: app.writes == [3, 3], 'write_speed(3) on the new IOC')
    assert ioc.speed.put(5, wait=True) is True   # the app's own put: no write_ call
    yield task.deferLater(reactor, 0.5, lambda: None)
    assert app.writes == [3, 3]
    caput(f'{device}:temp.EGU', 'K', ca_env)
    yield until(lambda: app.egu[-1:] == ['K'], 'the EGU callback on the new IOC')
    assert egu.get() == 'K' and ioc.temp.field('EGU') is egu
