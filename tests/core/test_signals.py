"""A stop signal at any moment of start-up stops the app cleanly: softIoc first, exit status 0, no
traceback and no "Aborted!" (the demo runs devioc.shell.serve, as a project's app.server does)."""
import os
import signal
import subprocess
import sys
import time

import pytest

from devioc.testing import alive, child_pids


@pytest.mark.parametrize('delay', [0.0, 0.05, 0.2, 0.5])
@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_during_start_up_exits_0_and_stops_softioc(sig, delay, device, ca_env):
    """SIGTERM, SIGINT or SIGHUP sent ``delay`` s after the softIoc child appeared (while the model
    waits for iocInit and its channels, or just after): exit 0, softIoc gone, nothing alarming printed."""
    app = subprocess.Popen([sys.executable, '-m', 'devioc.demo', '--device', device], env=ca_env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    kids = []
    try:
        deadline = time.monotonic() + 20
        while not kids and app.poll() is None and time.monotonic() < deadline:
            kids = child_pids(app.pid)
            time.sleep(0.002)
        assert kids, f'no softIoc child appeared (status {app.poll()})'
        time.sleep(delay)
        app.send_signal(sig)
        status = app.wait(timeout=20)
        output = app.stdout.read()
        assert status == 0, output[-1500:]
        assert 'Traceback' not in output and 'Aborted' not in output, output[-1500:]
        assert not [pid for pid in kids if alive(pid)]
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(timeout=10)
        for pid in kids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
