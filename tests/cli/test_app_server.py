"""A generated project's bin/app.server: --list-pvs, --macro, headless and console runs, exit statuses."""
import os
import pty
import select
import signal
import subprocess
import sys
import time

import pytest

from devioc import cli
from devioc.testing import caget, caput, wait_for
from devioc.testing import answers
from devioc.testing import child_pids as children

SITE_FIELD = "    site = models.String('site', max_length=20, default='$(site)', desc='Site')\n"


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    """A generated project whose model also has a field set by the 'site' macro."""
    root = cli.start_project('srvioc', tmp_path_factory.mktemp('proj') / 'srvioc')
    ioc = root / 'srvioc' / 'ioc.py'
    source = ioc.read_text()
    anchor = "    calc = models.Calc("
    ioc.write_text(source.replace(anchor, SITE_FIELD + anchor, 1))
    return root


@pytest.fixture
def start(project, ca_env):
    """Start app.server with arguments; every process is stopped by PID at the end of the test."""
    procs = []

    def run(*args, **kwargs):
        kwargs.setdefault('stdin', subprocess.DEVNULL)
        kwargs.setdefault('stdout', subprocess.PIPE)
        kwargs.setdefault('stderr', subprocess.STDOUT)
        proc = subprocess.Popen([sys.executable, str(project / 'bin' / 'app.server'), *args], cwd=project,
                                env=ca_env, start_new_session=True, **kwargs)
        procs.append(proc)
        return proc

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def test_list_pvs_prints_names_without_running(start, device):
    """--list-pvs prints every PV, macro-dependent fields included, and starts no IOC."""
    proc = start('--device', device, '--macro', 'site=hutch', '--list-pvs')
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    names = out.decode().split()
    assert names[0] == f'{device}:enum'
    assert f'{device}:site' in names and f'{device}:calc' in names
    assert len(names) == 11


def test_macro_flag_and_help(start, device, ca_env):
    """The model's macro is a flag of its own (--site), listed by --help with the other options."""
    proc = start('--help')
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    for option in ('--device', '--macro KEY=VALUE', '--site VALUE', '--list-pvs', '--softioc', '--verbose'):
        assert option in out.decode()
    proc = start('--device', device, '--site', 'flagged')
    wait_for(lambda: proc.poll() is not None or answers(f'{device}:site', ca_env), timeout=30,
             what='the IOC to serve its PVs')
    assert caget(f'{device}:site', ca_env) == 'flagged'
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode()


def test_headless_run_with_macro_until_sigterm(start, device, ca_env):
    """Without a terminal the app serves its PVs (macros applied), stays up, and exits 0 on SIGTERM."""
    proc = start('--device', device, '--macro', 'site=hutch')
    # the toggle is pressed once the app serves, not as soon as caget answers: softIoc answers before the
    # app has subscribed, and a press then (toggle is back at 0 0.1 s later) never reaches do_toggle
    head = read_until(proc, b'serving ' + device.encode())
    assert caget(f'{device}:site', ca_env) == 'hutch'
    caput(f'{device}:toggle', 1, ca_env)
    wait_for(lambda: caget(f'{device}:enum', ca_env) == 'ONE', what='do_toggle to move enum to ONE')
    time.sleep(0.5)
    assert proc.poll() is None, 'app.server exited although nothing stopped it (stdin at EOF must not)'
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    text = (head + out).decode()
    assert proc.returncode == 0, text
    assert f'{device}: 11 records up' in text
    assert 'New Enum Value: 1 Ett' in text
    assert 'stopping the IOC' in text
    first = text.splitlines()[0]
    time.strptime(first[:19], '%Y-%m-%d %H:%M:%S')   # log lines carry timestamps


def test_ioc_death_gives_a_nonzero_exit_status(start, device, ca_env):
    """When the softIoc is killed the app stops by itself with status 128 + signal."""
    proc = start('--device', device, '--macro', 'site=x')
    wait_for(lambda: proc.poll() is not None or answers(f'{device}:enum', ca_env), timeout=30, what='the IOC')
    iocs = children(proc.pid)
    assert len(iocs) == 1, iocs
    os.kill(iocs[0], signal.SIGKILL)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 128 + signal.SIGKILL, out.decode()
    assert 'exiting with status 137: the IOC died' in out.decode()


def test_softioc_that_fails_to_start_gives_status_1(start, device):
    """--softioc pointing at a program that exits at once is reported, with exit status 1."""
    proc = start('--device', device, '--macro', 'site=x', '--softioc', '/bin/false')
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert 'the IOC did not start' in out.decode()


@pytest.mark.parametrize('args, message', [
    ((), "Missing option '-d' / '--device'"),
    (('--device', 'X', '--macro', 'oops'), "'oops' has no \"=\""),
    (('--device', 'X', '--softioc', '/nonexistent/softIoc'), "'/nonexistent/softIoc' does not exist"),
])
def test_bad_arguments_are_usage_errors(start, args, message):
    """Bad command lines exit with status 2 and say what is wrong."""
    proc = start(*args)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert message in out.decode()


class Terminal:
    """The controlling side of a pty the app runs on (as under procServ)."""

    def __init__(self):
        self.master, self.slave = pty.openpty()
        self.buffer = b''

    def read_until(self, text: bytes, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while text not in self.buffer and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.buffer += os.read(self.master, 65536)
                except OSError:
                    break
        return text in self.buffer

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b'\n')


def test_console_on_a_terminal_reaches_the_ioc_shell(start, device):
    """On a pty the IOC shell is live: prompt, dbl, dbpr; 'exit' shuts the app down with status 0."""
    term = Terminal()
    proc = start('--device', device, '--macro', 'site=hutch', stdin=term.slave, stdout=term.slave,
                 stderr=term.slave)
    os.close(term.slave)
    try:
        assert term.read_until(b'epics> '), term.buffer.decode(errors='replace')
        term.type('dbl')
        assert term.read_until(f'{device}:floatarray'.encode()), term.buffer.decode(errors='replace')
        for name in ('enum', 'toggle', 'site', 'calc'):
            assert f'{device}:{name}'.encode() in term.buffer
        term.type(f'dbpr {device}:site')
        assert term.read_until(b'VAL : hutch'), term.buffer.decode(errors='replace')
        term.type('exit')
        assert proc.wait(20) == 0, term.buffer.decode(errors='replace')
        term.read_until(b'stopping the IOC', 5)
        assert b"'exit' typed on the console: shutting down" in term.buffer
    finally:
        os.close(term.master)


def read_until(proc: subprocess.Popen, mark: bytes, timeout: float = 30.0) -> bytes:
    """What ``proc`` printed up to and including ``mark``; AssertionError if it exits or times out first."""
    seen = b''
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    while mark not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f'no {mark!r} within {timeout} s: {seen.decode(errors="replace")}'
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 65536)
            assert chunk, f'exited (status {proc.wait()}) before {mark!r}: {seen.decode(errors="replace")}'
            seen += chunk
    return seen


def _block_like_procserv():
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP, signal.SIGPIPE, signal.SIGTERM})


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGHUP])
def test_signals_stop_cleanly_even_when_inherited_blocked(start, device, ca_env, sig):
    """Started with SIGHUP/SIGPIPE/SIGTERM blocked (as procServ 2.7 starts its child), the app still
    shuts down cleanly, with status 0, on SIGTERM and on SIGHUP."""
    proc = start('--device', device, '--macro', 'site=x', preexec_fn=_block_like_procserv)
    # signalled once serving, not as soon as caget answers: softIoc answers before Model() returns,
    # and a signal then is a start-up interruption (tests/core/test_signals.py covers those)
    head = read_until(proc, b'serving ' + device.encode())
    assert answers(f'{device}:enum', ca_env)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=20)
    out = (head + out).decode()
    assert proc.returncode == 0, out
    assert 'stopping the IOC' in out


def catches(pid: int, sig: int) -> bool:
    """True once process ``pid`` has a handler for ``sig`` (its SigCgt mask in /proc)."""
    try:
        with open(f'/proc/{pid}/status') as handle:
            mask = next(line for line in handle if line.startswith('SigCgt:')).split()[1]
    except (OSError, StopIteration):
        return False
    return bool(int(mask, 16) >> (sig - 1) & 1)


@pytest.fixture(scope='module')
def slow_project(tmp_path_factory):
    """A generated project whose model module takes 2 s to import (a big app, a slow disk)."""
    root = cli.start_project('slowioc', tmp_path_factory.mktemp('proj') / 'slowioc')
    ioc = root / 'slowioc' / 'ioc.py'
    ioc.write_text(ioc.read_text() + '\nimport time\ntime.sleep(2)\n')
    return root


@pytest.mark.parametrize('delay', [0.0, 0.3])
@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stop_signal_before_the_ioc_starts_exits_0_quietly(slow_project, device, ca_env, sig, delay):
    """A stop signal while app.server imports the app and its model (before serve() runs, before any
    softIoc): exit status 0 at once, no traceback, no "Aborted!", no IOC started. (Before the
    interpreter runs the program's first lines, nothing but the default action is possible.)"""
    proc = subprocess.Popen([sys.executable, str(slow_project / 'bin' / 'app.server'), '--device', device],
                            cwd=slow_project, env=ca_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: proc.poll() is not None or catches(proc.pid, signal.SIGTERM), timeout=1.5,
                 interval=0.001, what='app.server to take the stop signals before importing its model')
        time.sleep(delay)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    out = out.decode(errors='replace')
    assert proc.returncode == 0, out
    assert 'Traceback' not in out and 'Aborted' not in out and 'iocInit' not in out, out
