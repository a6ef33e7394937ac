"""restart=True with autosave: the new softIoc comes up holding the values of the moment it died,
not those of the first start, and changes after the restart are saved again."""
import json
import os
import signal

import pytest_twisted
from twisted.internet import reactor, task

from devioc import models
from devioc.restart import RestartPolicy
from devioc.testing import caget, caput, until

FAST = RestartPolicy(min_delay=0.1, max_delay=0.5, max_deaths=20, window=60.0)


class Kept(models.Model):
    gap = models.Float('gap', default=1.0, autosave=('VAL', 'HIHI'))
    mode = models.Enum('mode', choices=['A', 'B', 'C'], autosave=True)

    class Meta:
        access_level = 1   # clients edit configuration fields here (ASL1: HIHI)


class App:
    def __init__(self):
        self.gaps = []
        self.restarts = 0

    def do_gap(self, pv, value, ioc):
        self.gaps.append(value)

    def on_ioc_restart(self, ioc):
        self.restarts += 1


def saved(ioc):
    path = ioc._autosave.directory / 'autosave.json'
    try:
        return {att: entry['values'] for att, entry in json.loads(path.read_text())['fields'].items()}
    except (OSError, ValueError, KeyError):
        return {}


@pytest_twisted.inlineCallbacks
def test_a_restarted_softioc_holds_the_values_it_died_with(run_model, device, tmp_path, monkeypatch):
    monkeypatch.setenv('DEVIOC_STATE_DIR', str(tmp_path))
    app = App()
    ioc = run_model(Kept, callbacks=app, restart=FAST)
    yield until(lambda: app.gaps == [1.0], 'the initial value')
    caput(f'{device}:gap', 4.25)
    caput(f'{device}:gap.HIHI', 9.5)
    caput(f'{device}:mode', 'C')
    yield until(lambda: app.gaps[-1] == 4.25 and ioc.mode.get() == 2, 'the client writes')
    old_pid = ioc._process.pid
    os.kill(old_pid, signal.SIGKILL)          # at once: the saver may not have written them yet
    yield until(lambda: app.restarts == 1 and ioc._process.pid != old_pid and ioc._ready, 'the restart')
    assert ioc.gap.get() == 4.25 and ioc.mode.get() == 2

    assert caget(f'{device}:gap.HIHI').split()[-1] == '9.5'
    assert app.gaps[-1] == 4.25        # the new IOC's first value, restored, reaches do_gap
    caput(f'{device}:gap', 6.5)         # saved again after the restart: autosave watches the new IOC
    yield until(lambda: saved(ioc).get('gap', {}).get('VAL') == 6.5, 'the new value in autosave.json')
    caput(f'{device}:gap.HIHI', 11)
    yield until(lambda: saved(ioc).get('gap', {}).get('HIHI') == 11, 'the new HIHI in autosave.json')


@pytest_twisted.inlineCallbacks
def test_a_shutdown_at_the_end_of_a_restart_leaves_autosave_stopped(run_model, device, tmp_path, monkeypatch):
    """shutdown() (supervisor stopped, then autosave stopped) just after the restarted IOC's channels
    connected: the restart must not start autosave again (a writer thread and field monitors that
    nothing stops any more)."""
    monkeypatch.setenv('DEVIOC_STATE_DIR', str(tmp_path))
    app = App()
    ioc = run_model(Kept, callbacks=app, restart=FAST)
    yield until(lambda: app.gaps == [1.0], 'the initial value')
    saver, wait, calls = ioc._autosave, ioc._wait, []

    def wait_then_shut_down(*args):   # start_again's waits: iocInit, then every channel connected
        wait(*args)
        calls.append(1)
        if len(calls) == 2:
            ioc._supervisor.stop()    # what shutdown() does first, as it happens
            saver.stop()

    ioc._wait = wait_then_shut_down
    os.kill(ioc._process.pid, signal.SIGKILL)
    yield until(lambda: len(calls) >= 2, 'the restart to connect every channel')
    yield task.deferLater(reactor, 0.5, lambda: None)
    assert saver._thread is None and saver._extra == [] and app.restarts == 0
    del ioc._wait
    ioc.shutdown()
