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
        wait_for(lambda: caget(f'{device}:enum', ca_env, timeout=5) == 'ZERO', timeout=20, what='the demo IOC')
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
    """If softIoc dies under the app, the app logs it loudly and exits non-zero (for procServ to restart)."""
    app, ioc_pid = demo
    os.kill(ioc_pid, signal.SIGKILL)
    assert app.wait(timeout=15) == 1
    output = app.stdout.read()
    assert 'exited unexpectedly with signal SIGKILL' in output and 'stopping the app' in output
