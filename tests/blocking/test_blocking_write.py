"""blocking=True with write_<field>: a client's caput -c is held for write_<field> (client writes only,
same value too); do_<field> keeps its meaning (initial value, changes, the app's own puts), and the
app's own puts never call write_<field>."""
import subprocess

import pytest_twisted
from twisted.internet import defer, reactor, task

from devioc import models
from devioc.testing import until
from devioc.softioc import epics_tool


class Stage(models.Model):
    position = models.Float('position', blocking=True)


class App:
    def __init__(self):
        self.writes, self.changes, self.held = [], [], []

    def write_position(self, pv, value, ioc):
        self.writes.append(value)
        d = defer.Deferred()
        self.held.append(d)
        return d

    def do_position(self, pv, value, ioc):
        self.changes.append(value)


def caput_c(pv, value, env):
    return subprocess.Popen([epics_tool('caput'), '-c', '-w', '30', pv, str(value)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest_twisted.inlineCallbacks
def test_write_callback_is_the_blocking_handler_and_do_keeps_its_meaning(run_model, device, ca_env):
    app = App()
    ioc = run_model(Stage, callbacks=app)
    yield until(lambda: app.changes == [0.0], 'the initial do_position')
    assert app.writes == []                                   # the initial value is no write
    for value in (2.5, 2.5):                                  # the same value twice: two writes
        client = caput_c(f'{device}:position', value, ca_env)
        yield until(lambda: app.held, 'write_position to be called')
        yield task.deferLater(reactor, 0.5, lambda: None)
        assert client.poll() is None, 'caput -c returned before write_position finished'
        app.held.pop().callback(None)
        yield until(lambda: client.poll() is not None, 'caput -c to return')
        assert client.returncode == 0, client.stderr.read()
    assert app.writes == [2.5, 2.5]
    yield until(lambda: app.changes[-1] == 2.5, 'do_position(2.5)')
    assert app.changes == [0.0, 2.5]                          # a change once: do_ keeps its meaning
    ioc.position.put(4.0)                                     # the app's own put
    yield until(lambda: app.changes[-1] == 4.0, 'do_position(4.0) for the app\'s put')
    yield task.deferLater(reactor, 0.5, lambda: None)
    assert app.writes == [2.5, 2.5] and app.held == []        # never write_ for the app's own put
    assert (ioc._directory / 'Stage.db').read_text().count(':_w"') == 0   # no detector record for it
