"""The app and its softIoc live and die together: SIGTERM, SIGKILL, and an IOC that dies."""
import os
import signal
import subprocess
import sys

import pytest

from devioc.testing import caget, wait_for
from devioc.testing import child_pids as children


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f'/proc/{pid}/stat') as stat:
        return stat.read().split()[2] != 'Z'


@pytest.fixture
def demo(device, ca_env):
    """The demo app in a subprocess, up and serving; yields (app process, softIoc pid)."""
    app = subprocess.Popen([sys.executable, '-m', 'devioc.demo', '--device', device], env=ca_env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = []
    try:
        lines = []   # up when the app says so: caget answers as soon as softIoc serves, before the model is up
        while not (lines and 'demo IOC running' in lines[-1]):
            lines.append(app.stdout.readline())
            assert lines[-1], ''.join(lines)   # '': the app ended before it was up
        assert caget(f'{device}:enum', ca_env, timeout=5) == 'ZERO'
        ioc_pid = children(app.pid)[0]
        started.append(ioc_pid)
        yield app, ioc_pid
    finally:
        for pid in [app.pid] + started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        app.wait(timeout=10)


def test_sigterm_stops_app_and_ioc_cleanly(demo):
    """SIGTERM: the app shuts the IOC down and exits 0."""
    app, ioc_pid = demo
    app.send_signal(signal.SIGTERM)
    assert app.wait(timeout=15) == 0
    wait_for(lambda: not alive(ioc_pid), timeout=5, what='softIoc to exit')


def test_sigkill_of_the_app_leaves_no_softioc(demo):
    """SIGKILL of the app closes softIoc's stdin pipe, and softIoc exits by itself."""
    app, ioc_pid = demo
    app.kill()
    app.wait(timeout=10)
    wait_for(lambda: not alive(ioc_pid), timeout=10, what='the orphaned softIoc to exit')


def test_an_ioc_that_dies_stops_the_app_with_an_error(demo):
    """If softIoc dies under the app, the app logs it loudly and exits non-zero (for procServ to
    restart): 128 + the signal that killed softIoc, as app.server."""
    app, ioc_pid = demo
    os.kill(ioc_pid, signal.SIGKILL)
    status = app.wait(timeout=15)
    output = app.stdout.read()
    assert status == 128 + signal.SIGKILL, output
    assert 'exited unexpectedly with signal SIGKILL' in output and 'stopping the app' in output


SCRIPT = """
from devioc import models, log

class MyIOC(models.Model):
    enum = models.Enum('enum', choices=['ZERO', 'ONE', 'TWO'], default=0, desc='Enum Test')

class MyIOCApp:
    def __init__(self, device):
        self.ioc = MyIOC(device, callbacks=self)

    def do_enum(self, pv, value, ioc):
        pass

    def shutdown(self):
        self.ioc.shutdown()

if __name__ == '__main__':
    import sys
    from twisted.internet import reactor
    log.log_to_console()
    app = MyIOCApp(sys.argv[1])
    reactor.addSystemEventTrigger('before', 'shutdown', app.shutdown)
    print('READY', app.ioc.process.pid, flush=True)
    reactor.run()
"""


@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGSEGV, signal.SIGTERM])
def test_a_plain_script_exits_non_zero_when_its_ioc_dies(sig, device, ca_env, tmp_path):
    """The README's script (a model, reactor.run(), the end of __main__) exits 128 + signal when its
    softIoc is killed, so that systemd's Restart=on-failure restarts it."""
    script = tmp_path / 'myioc_app.py'
    script.write_text(SCRIPT)
    app = subprocess.Popen([sys.executable, str(script), device], env=ca_env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    ioc_pid = None
    try:
        lines = []
        while not (lines and lines[-1].startswith('READY')):
            lines.append(app.stdout.readline())
            assert lines[-1], ''.join(lines)   # '': the app ended before it was up
        ioc_pid = int(lines[-1].split()[1])
        os.kill(ioc_pid, sig)
        assert app.wait(timeout=15) == 128 + sig
        assert 'exited unexpectedly' in app.stdout.read()
    finally:
        for pid in (app.pid, ioc_pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, TypeError):
                pass
        app.wait(timeout=10)
