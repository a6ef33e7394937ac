"""devioc.run(App) and ``python -m devioc run`` as programs: a live softIoc, the C CA tools, real signals."""
import signal
import subprocess
import sys
import textwrap

import pytest

from devioc.testing import answers, caget, stop_process, wait_for

APP = textwrap.dedent('''
    import logging

    from twisted.internet import reactor, task

    import devioc
    from devioc import models

    logger = logging.getLogger('siteapp')


    class Site(models.Model):
        site = models.String('site', max_length=20, default='$(site)')
        count = models.Integer('count', SCAN='.5 second')


    class SiteApp:
        """The site app."""

        def __init__(self, device, macros=None, command=None):
            self.n = 0
            self.ioc = Site(device, callbacks=self, macros=macros, command=command)

        def on_start(self, ioc):
            logger.info('on_start ran: site=%s', ioc.site.get())

        def on_stop(self, ioc):
            logger.info('on_stop ran')
            return task.deferLater(reactor, 0.3, logger.info, 'on_stop finished')

        def scan_count(self, pv, ioc):
            self.n += 1
            return self.n

        def shutdown(self):
            logger.info('app shutdown')
            self.ioc.shutdown()


    if __name__ == '__main__':
        devioc.run(SiteApp)
''')


@pytest.fixture
def app_dir(tmp_path):
    (tmp_path / 'siteapp_mod.py').write_text(APP)
    return tmp_path


@pytest.fixture
def start(app_dir, ca_env):
    procs = []

    def run(*args):
        proc = subprocess.Popen([sys.executable, *args], cwd=app_dir, env=ca_env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        return proc

    yield run
    for proc in procs:
        stop_process(proc)


@pytest.mark.parametrize('how', ['script', 'module'])
def test_runs_until_sigterm_with_hooks_in_order(start, device, ca_env, how):
    """`python app.py` (devioc.run) and `python -m devioc run module:App`: the --site flag sets the
    macro, scan_count publishes, SIGTERM gives status 0 after on_stop (awaited) and then shutdown()."""
    args = ['siteapp_mod.py'] if how == 'script' else ['-m', 'devioc', 'run', 'siteapp_mod:SiteApp']
    proc = start(*args, '--device', device, '--site', 'hutch')
    wait_for(lambda: proc.poll() is not None or answers(f'{device}:count', ca_env), timeout=30, what='the IOC')
    assert proc.poll() is None
    assert caget(f'{device}:site', ca_env) == 'hutch'
    wait_for(lambda: int(caget(f'{device}:count', ca_env)) >= 2, timeout=10, what='count to be published')
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    text = out.decode()
    assert proc.returncode == 0, text
    order = [text.index(mark) for mark in ('on_start ran: site=hutch', 'on_stop ran', 'on_stop finished',
                                            'stopping the IOC', 'app shutdown')]
    assert order == sorted(order), text


@pytest.mark.parametrize('second', [signal.SIGTERM, signal.SIGINT])
def test_a_second_stop_signal_while_stopping_is_quiet(start, device, ca_env, second):
    """SIGTERM, then another stop signal while on_stop is still running (as `timeout`, a shell or an
    impatient Ctrl-C send them): one clean stop, status 0, and no traceback (Twisted's own SIGTERM
    handler raised ReactorNotRunning "while calling from thread" on the second)."""
    proc = start('siteapp_mod.py', '--device', device, '--site', 'hutch')
    wait_for(lambda: proc.poll() is not None or answers(f'{device}:count', ca_env), timeout=30, what='the IOC')
    wait_for(lambda: int(caget(f'{device}:count', ca_env)) >= 2, timeout=10, what='the app to serve')
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(second)
    out, _ = proc.communicate(timeout=20)
    text = out.decode()
    assert proc.returncode == 0, text
    assert 'Traceback' not in text and 'ReactorNotRunning' not in text, text
    assert text.count('on_stop ran') == 1 and text.count('app shutdown') == 1, text


def test_a_bare_model_runs_and_stops_on_sigint(start, device, ca_env):
    proc = start('-m', 'devioc', 'run', 'siteapp_mod:Site', '-d', device, '--macro', 'site=bare')
    wait_for(lambda: proc.poll() is not None or answers(f'{device}:site', ca_env), timeout=30, what='the IOC')
    assert caget(f'{device}:site', ca_env) == 'bare'
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode()


def test_list_pvs_from_a_file_path(start, device):
    proc = start('-m', 'devioc', 'run', 'siteapp_mod.py:SiteApp', '-d', device, '--site', 'x', '--list-pvs')
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()
    assert out.decode().split() == [f'{device}:site', f'{device}:count']


@pytest.mark.parametrize('args, status, message', [
    (['-m', 'devioc', 'run', 'no_such_module_q:App', '-d', 'X'], 2, "no module named 'no_such_module_q'"),
    (['-m', 'devioc', 'run', 'siteapp_mod:Nope', '-d', 'X'], 2, "module 'siteapp_mod' has no 'Nope'"),
    (['-m', 'devioc', 'run', 'siteapp_mod:Site', '-d', 'X'], 2,
     'the model uses $(site): give --site VALUE or --macro site=VALUE'),
    (['siteapp_mod.py', '-d', 'X'], 1, "macro 'site' is not defined"),   # an app may give macros itself
    (['siteapp_mod.py', '-d', 'X', '--site', 's', '--softioc', '/bin/false'], 1, 'the IOC did not start'),
])
def test_failures_exit_with_their_status_and_say_why(start, args, status, message):
    proc = start(*args)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == status, out.decode()
    assert message in out.decode()


LATE_FAILURE = textwrap.dedent('''
    from devioc import models


    class Late(models.Model):
        x = models.Integer('x')


    class LateApp:
        def __init__(self, device, macros=None):
            self.ioc = Late(device, callbacks=self)
            raise RuntimeError('hardware missing')
''')


def test_an_app_that_fails_after_making_its_model_stops_it_cleanly(start, app_dir, device):
    """The app's __init__ raises once its model runs: status 1 with the reason, the model is shut down
    by serve() (it was left to the atexit hook, which ran after libca was finalized and printed
    "Exception ignored in atexit callback" with an AttributeError traceback)."""
    (app_dir / 'late_mod.py').write_text(LATE_FAILURE)
    proc = start('-m', 'devioc', 'run', 'late_mod:LateApp', '-d', device)
    out, _ = proc.communicate(timeout=60)
    text = out.decode()
    assert proc.returncode == 1, text
    assert 'the IOC did not start: hardware missing' in text, text
    assert 'Traceback' not in text and 'Exception ignored' not in text, text


def test_the_readme_runner_example_runs(tmp_path, ca_env, device):
    """The README's devioc.run example, as written, lists its PVs and serves its scanned sensor value."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / 'README.md').read_text()
    section = readme.split('### `devioc.run(App)` and `python -m devioc run`', 1)[1]
    code = section.split('```python\n', 1)[1].split('```', 1)[0]
    (tmp_path / 'tank.py').write_text(code)
    listed = subprocess.run([sys.executable, 'tank.py', '-d', device, '--site', 'hutch', '--list-pvs'], cwd=tmp_path,
                            env=ca_env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == [f'{device}:level', f'{device}:site']
    proc = subprocess.Popen([sys.executable, 'tank.py', '-d', device, '--site', 'hutch'], cwd=tmp_path, env=ca_env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: proc.poll() is not None or answers(f'{device}:level', ca_env), timeout=30, what='the IOC')
        wait_for(lambda: 1.0 <= float(caget(f'{device}:level', ca_env)) <= 1.1, timeout=10,
                 what="scan_level to publish read_the_sensor()'s 1.0-1.1")
    finally:
        stop_process(proc)
    assert proc.returncode == 0


NO_RUNNER = textwrap.dedent('''
    import logging
    import sys

    from twisted.internet import reactor

    from devioc import log
    from siteapp_mod import SiteApp

    log.log_to_console(logging.INFO)
    app = SiteApp(sys.argv[1], macros={'site': 'plain'})
    reactor.addSystemEventTrigger('before', 'shutdown', app.shutdown)
    reactor.callLater(1.5, reactor.stop)
    reactor.run()
''')


def test_hooks_work_without_the_runner(start, app_dir, device):
    """A script that makes the app and runs the reactor itself gets on_start, scan_ and, when the reactor
    stops, on_stop before its own shutdown trigger stops the IOC."""
    (app_dir / 'plain.py').write_text(NO_RUNNER)
    proc = start('plain.py', device)
    out, _ = proc.communicate(timeout=30)
    text = out.decode()
    assert proc.returncode == 0, text
    order = [text.index(mark) for mark in ('on_start ran: site=plain', 'on_stop ran', 'app shutdown')]
    assert order == sorted(order), text


def test_exit_on_the_console_calls_on_stop(app_dir, ca_env, device):
    """`exit` typed on the IOC shell (a pty, as under procServ) stops the app with status 0 after on_stop."""
    import os
    import pty
    import select
    import time

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, 'siteapp_mod.py', '-d', device, '--site', 'tty'], cwd=app_dir,
                            env=ca_env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    seen = b''

    def read_until(mark, timeout=30.0):
        nonlocal seen
        deadline = time.monotonic() + timeout
        while mark not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
        return mark in seen

    try:
        assert read_until(b'epics> '), seen.decode(errors='replace')
        os.write(master, b'exit\n')
        assert proc.wait(20) == 0, seen.decode(errors='replace')
        read_until(b'app shutdown', 5)
        text = seen.decode(errors='replace')
        order = [text.index(mark) for mark in ("'exit' typed on the console", 'on_stop ran', 'on_stop finished',
                                                'app shutdown')]
        assert order == sorted(order), text
    finally:
        stop_process(proc)
        os.close(master)
