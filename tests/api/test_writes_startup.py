"""write_<field> around the app's start-up and softIoc restarts: a client write made after iocInit
but before the app subscribed is still reported (the last one, with a warning), never lost; a
restarted softIoc's detector state is not taken for a write."""
import logging
import os
import signal

import pytest_twisted
from twisted.internet import reactor, task

from devioc import models
from devioc.restart import RestartPolicy
from devioc.testing import caput, until


class Dial(models.Model):
    level = models.Float('level')
    mode = models.Enum('mode', choices=['A', 'B', 'C'])


class App:
    def __init__(self):
        self.writes = []
        self.restarts = 0

    def write_level(self, pv, value, ioc):
        self.writes.append(('level', float(value)))

    def write_mode(self, pv, value, ioc):
        self.writes.append(('mode', int(value)))

    def on_ioc_restart(self, ioc):
        self.restarts += 1


class EarlyWrites(Dial):
    """A client writes ``level`` once softIoc serves it, before the app has made its channels."""

    def _connect(self, reactor, callbacks, deadline, limit, env):
        assert self._process.synced.wait(10)
        caput(f'{self._device_name}:level', 7.25)
        super()._connect(reactor, callbacks, deadline, limit, env)


@pytest_twisted.inlineCallbacks
def test_a_client_write_before_the_app_was_ready_is_reported(run_model, caplog):
    app = App()
    with caplog.at_level(logging.WARNING, logger='devioc'):
        ioc = run_model(EarlyWrites, callbacks=app)
        yield until(lambda: app.writes, 'write_level for the early write')
    assert app.writes == [('level', 7.25)] and ioc.level.get() == 7.25
    assert any('before the app was ready' in r.getMessage() for r in caplog.records)


@pytest_twisted.inlineCallbacks
def test_no_write_is_reported_at_a_plain_start_or_after_a_restart(run_model, device):
    app = App()
    ioc = run_model(Dial, callbacks=app, restart=RestartPolicy(min_delay=0.1, max_delay=0.5))
    yield task.deferLater(reactor, 0.5, lambda: None)
    assert app.writes == []
    caput(f'{device}:mode', 'C')
    yield until(lambda: app.writes == [('mode', 2)], 'write_mode(2)')
    os.kill(ioc._process.pid, signal.SIGKILL)
    yield until(lambda: app.restarts == 1 and ioc._ready, 'the restart')
    yield task.deferLater(reactor, 0.5, lambda: None)
    assert app.writes == [('mode', 2)]          # the new IOC's detectors are no client write
    caput(f'{device}:level', 1.5)
    yield until(lambda: app.writes[-1] == ('level', 1.5), 'write_level after the restart')
