"""restart=True on a live softIoc: kill -9 of the IOC, it comes back, channels and callbacks resume;
too many deaths in the window end an app.server run with a non-zero status."""
import os
import signal
import subprocess
import sys

import pytest
import pytest_twisted
from twisted.internet import reactor, task, threads

from devioc import cli, models
from devioc.restart import RestartPolicy
from devioc.testing import alive, answers, caget, caput, child_pids, until, wait_for

FAST = RestartPolicy(min_delay=0.1, max_delay=0.5, max_deaths=20, window=60.0)


class Plant(models.Model):
    setpoint = models.Float('setpoint', default=1.5)
    label = models.String('label', max_length=20, default='start')
    readback = models.FloatInput('readback')


class App:
    def __init__(self):
        self.setpoints = []
        self.restarts = []

    def do_setpoint(self, pv, value, ioc):
        self.setpoints.append(value)
        ioc.readback.put(value * 2)

    def on_ioc_restart(self, ioc):
        self.restarts.append(ioc._process.pid)


class Saver:
    """Stands in for the model's autosave: restart must flush it before rendering the .db again."""

    def __init__(self, ioc):
        self.ioc, self.flushed_with = ioc, []

    def flush(self):
        self.flushed_with.append(self.ioc._process.exited.is_set())

    def restore(self, records):
        return records

    def start(self, pvs):
        pass


def pv(ioc, name):
    return f'{ioc._device_name}:{name}'


@pytest_twisted.inlineCallbacks
def test_killed_softioc_comes_back_and_callbacks_resume(run_model):
    """kill -9 of softIoc: a new one starts, the app object lives on, on_ioc_restart runs, the first
    value reaches do_setpoint again, a client caput reaches do_setpoint, and RESTARTS counts it."""
    app = App()
    ioc = run_model(Plant, callbacks=app, restart=FAST)
    saved, ioc._autosave = getattr(ioc, '_autosave', None), Saver(ioc)
    try:
        yield _kill_and_check(ioc, app, ioc._autosave)
    finally:
        ioc._autosave = saved    # the model's own (None without autosaved fields) for its shutdown


@pytest_twisted.inlineCallbacks
def _kill_and_check(ioc, app, saver):
    yield until(lambda: app.setpoints == [1.5], 'the initial value')
    assert ioc.label.get() == 'start'                     # monitored from get() on, no callback
    caput(pv(ioc, 'label'), 'changed')
    yield until(lambda: ioc.label.get() == 'changed', 'the label to change')
    old = ioc._process.pid
    os.kill(old, signal.SIGKILL)
    yield until(lambda: app.restarts, 'on_ioc_restart')
    assert app.restarts == [ioc._process.pid] and ioc._process.pid != old and not alive(old)
    assert ioc._ready and saver.flushed_with == [True]
    yield until(lambda: app.setpoints == [1.5, 1.5], 'the new IOC\'s first value in do_setpoint')
    yield until(lambda: ioc.label.get() == 'start', 'the get()-monitored field to show the new IOC')
    caput(pv(ioc, 'setpoint'), '4.25')
    yield until(lambda: app.setpoints[-1:] == [4.25], 'a client write to reach do_setpoint')
    yield until(lambda: caget(pv(ioc, 'readback')) == '8.5', 'the app\'s put to reach the new IOC')
    assert ioc.setpoint.put(2.0, wait=True) and caget(pv(ioc, 'setpoint')) == '2'
    yield until(lambda: caget(pv(ioc, 'IOC:RESTARTS')) == '1', 'RESTARTS to count the restart')


@pytest_twisted.inlineCallbacks
def test_repeated_kills_each_come_back(run_model):
    """Five kills in a row, each as soon as the previous restart is done: five restarts, no lost channel."""
    app = App()
    ioc = run_model(Plant, callbacks=app, restart=FAST)
    yield until(lambda: app.setpoints == [1.5], 'the initial value')
    for n in range(1, 6):
        os.kill(ioc._process.pid, signal.SIGKILL)
        yield until(lambda: len(app.restarts) == n and ioc._ready, f'restart {n}')
        caput(pv(ioc, 'setpoint'), str(10 + n))
        yield until(lambda: app.setpoints[-1:] == [10 + n], f'a client write after restart {n}')
    assert ioc._supervisor.restarts == 5
    yield until(lambda: caget(pv(ioc, 'IOC:RESTARTS')) == '5', 'RESTARTS to count 5')


@pytest_twisted.inlineCallbacks
def test_shutdown_while_a_restart_waits_starts_nothing(run_model):
    """shutdown() during the back-off cancels the restart: no new softIoc is started."""
    app = App()
    ioc = run_model(Plant, callbacks=app, restart=RestartPolicy(min_delay=1.0))
    old = ioc._process
    os.kill(old.pid, signal.SIGKILL)
    yield until(lambda: not ioc._ready and old.exited.is_set(), 'the death to be seen')
    ioc.shutdown()
    yield task.deferLater(reactor, 1.5, lambda: None)
    assert ioc._process is old and app.restarts == []
    assert [pid for pid in child_pids(os.getpid()) if 'softIoc' in os.readlink(f'/proc/{pid}/exe')] == []


# -- app.server of a generated project (restart=True is its default)
@pytest.fixture(scope='module')
def project(tmp_path_factory):
    return cli.start_project('healioc', tmp_path_factory.mktemp('proj') / 'healioc')


def softioc_children(pid):
    found = []
    for child in child_pids(pid):
        try:
            if os.readlink(f'/proc/{child}/exe').endswith(('/softIoc', '/softIocPVA')):
                found.append(child)
        except OSError:
            pass
    return found


def test_app_server_restarts_its_ioc_then_gives_up_with_status_137(project, device, ca_env):
    """The generated app.server restarts a killed softIoc and keeps serving; the 5th death within
    300 s (restarts failing while they start included) ends it with 128 + SIGKILL."""
    proc = subprocess.Popen([sys.executable, str(project / 'bin' / 'app.server'), '--device', device],
                            cwd=project, env=ca_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # HEARTBEAT counts once the app is up (softIoc serves it a little before: a death then is a
        # start-up failure, which the constructor reports, not a death to restart from)
        wait_for(lambda: answers(f'{device}:IOC:HEARTBEAT', ca_env) and
                 caget(f'{device}:IOC:HEARTBEAT', ca_env) != '0', timeout=30, what='the app to be up')
        first = wait_for(lambda: softioc_children(proc.pid), timeout=30, what='softIoc')[0]
        os.kill(first, signal.SIGKILL)
        second = wait_for(lambda: [p for p in softioc_children(proc.pid) if p != first], timeout=30,
                          what='a new softIoc')[0]
        wait_for(lambda: answers(f'{device}:IOC:RESTARTS', ca_env) and
                 caget(f'{device}:IOC:RESTARTS', ca_env) == '1', timeout=30, what='RESTARTS 1 from the restarted IOC')
        caput(f'{device}:intval', '12', ca_env)
        assert caget(f'{device}:calc', ca_env) == '12'      # the restarted IOC works: its CP links too
        assert proc.poll() is None
        killed = [first, second]
        os.kill(second, signal.SIGKILL)
        for _ in range(3):    # deaths 3, 4, 5: each new softIoc killed as soon as it appears
            pid = wait_for(lambda: [p for p in softioc_children(proc.pid) if p not in killed], timeout=30,
                           what='a new softIoc')[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = out.decode(errors='replace')
    assert proc.returncode == 137, text[-3000:]
    assert 'giving up on restarting it' in text and 'for the 5th time in 300 s' in text
    assert not any(alive(pid) for pid in killed)


class Kept(models.Model):
    setpoint = models.Float('setpoint', default=1.5, autosave=True)
    readback = models.FloatInput('readback')


@pytest_twisted.inlineCallbacks
def test_a_death_at_the_end_of_a_restart_is_not_ignored(run_model, tmp_path, monkeypatch):
    """softIoc killed after the restarted IOC's channels connected, before the restart is done (deaths
    are ignored while a restart runs: the restart's own waits watch the process until then): the
    restart sees it and starts softIoc again, where it used to leave the app serving nothing, ready."""
    monkeypatch.setenv('DEVIOC_STATE_DIR', str(tmp_path / 'state'))
    app = App()
    ioc = run_model(Kept, callbacks=app, restart=FAST)
    yield until(lambda: app.setpoints == [1.5], 'the initial value')
    saver, start = ioc._autosave, ioc._autosave.start
    killed = []

    def start_after_a_kill(pvs):   # called by the restart once every channel connected again
        if not killed:
            process = ioc._process
            os.kill(process.pid, signal.SIGKILL)
            process.exited.wait(5)
            killed.append(process.pid)
        start(pvs)

    saver.start = start_after_a_kill
    os.kill(ioc._process.pid, signal.SIGKILL)
    yield until(lambda: killed, 'the kill at the end of the restart')
    yield until(lambda: app.restarts and ioc._process.pid not in killed and not ioc._process.exited.is_set(),
                'a restart after the second death', timeout=20)
    assert ioc._supervisor.restarts == 1 and len(ioc._supervisor.deaths) == 2
    caput(pv(ioc, 'setpoint'), '3.5')
    yield until(lambda: app.setpoints[-1:] == [3.5], 'a client write to reach do_setpoint on the new IOC')


class Watched(models.Model):
    setpoint = models.Float('setpoint', default=1.5)
    gain = models.Float('gain', default=2.0)
    count = models.Integer('count')

    class Meta:
        access_level = 1   # clients edit configuration fields here (ASL1: HIHI)


class WatchingApp(App):
    """do_setpoint, write_gain, and a monitor on setpoint.HIHI through field()."""

    def __init__(self):
        super().__init__()
        self.writes, self.limits = [], []

    def do_setpoint(self, pv, value, ioc):
        self.setpoints.append(value)

    def write_gain(self, pv, value, ioc):
        self.writes.append(value)


@pytest_twisted.inlineCallbacks
def test_write_callbacks_and_field_monitors_resume_after_a_restart(run_model):
    """write_<field> and ioc.<field>.field(...).add_callback(...) work on the restarted IOC as on the
    first: the restart used to drop their callbacks (the detector's and the field channel's)."""
    app = WatchingApp()
    ioc = run_model(Watched, callbacks=app, restart=FAST)
    hihi = ioc.setpoint.field('HIHI')
    hihi.add_callback(lambda channel, value: app.limits.append(value))
    yield until(lambda: app.limits == [0.0], 'the first HIHI')
    caput(pv(ioc, 'gain'), '3')
    yield until(lambda: app.writes == [3.0], 'write_gain before the restart')
    os.kill(ioc._process.pid, signal.SIGKILL)
    yield until(lambda: app.restarts and ioc._ready, 'the restart')
    caput(pv(ioc, 'gain'), '4')
    caput(pv(ioc, 'setpoint.HIHI'), '9')
    yield until(lambda: app.writes[-1:] == [4.0], 'write_gain after the restart')
    yield until(lambda: app.limits[-1:] == [9.0], 'the HIHI monitor after the restart')
    hihi.put(11.0, wait=True)
    assert caget(pv(ioc, 'setpoint.HIHI')) == '11'


@pytest_twisted.inlineCallbacks
def test_puts_from_threads_during_restarts_never_crash_the_app(run_model):
    """Worker threads put as fast as they can while softIoc is killed and restarted, 5 times: the app
    lives (a put used to reach libca with a channel the restart had just cleared: SIGSEGV), and
    once restarted the puts reach the new IOC."""
    import threading

    app = App()
    ioc = run_model(Watched, callbacks=app, restart=FAST)
    stop, errors = threading.Event(), []

    def hammer():
        n = 0
        while not stop.is_set():
            n += 1
            try:
                ioc.count.put(n)
            except RuntimeError:   # not connected: the IOC is down
                pass
            except Exception as err:   # anything else is a defect
                errors.append(err)

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for n in range(1, 6):
            os.kill(ioc._process.pid, signal.SIGKILL)
            yield until(lambda: len(app.restarts) == n and ioc._ready, f'restart {n}')
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
    assert errors == []
    last = ioc.count.get()
    yield until(lambda: int(caget(pv(ioc, 'count'))) >= 1, 'the puts to reach the new IOC')
    assert last is not None


class Held(models.Model):
    position = models.Float('position', blocking=True)


class HeldApp:
    def __init__(self):
        self.setpoints, self.restarts = [], []

    def do_position(self, pv, value, ioc):
        self.setpoints.append(value)

    def on_ioc_restart(self, ioc):
        self.restarts.append(ioc._process.pid)


@pytest_twisted.inlineCallbacks
def test_blocking_fields_work_on_the_restarted_ioc(run_model):
    """A blocking field's put completes through the restarted softIoc, and its helper channel is
    made again with the others (it used to wait for libca's own reconnection, seconds later)."""
    app = HeldApp()
    ioc = run_model(Held, callbacks=app, restart=FAST)
    flag = ioc._blocking.fields['position'].flag
    yield until(lambda: app.setpoints == [0.0], 'the initial value')
    os.kill(ioc._process.pid, signal.SIGKILL)
    yield until(lambda: app.restarts and ioc._ready, 'the restart')
    assert flag.connected
    yield threads.deferToThread(caput, pv(ioc, 'position'), '2.5')   # caput -c: completes once handled
    assert app.setpoints[-1:] == [2.5]
