"""End to end: a generated project's deploy files run the app under procServ, as a site would.

The systemd unit's ExecStart is taken from the rendered unit and expanded the way systemd does
(%i and the directory specifiers, ${VAR} within a word, $VAR split into words) with the values of
the rendered instance env file and the unit's Environment= lines, then run directly (no systemd
here) with HOME pointing where nothing can be made (a service user without a home). The SysV
init-template is run with start/status/stop.
"""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devioc import cli
from devioc.testing import alive, caget, wait_for
from devioc.testing import answers
from devioc.testing import child_pids as children

PROCSERV = shutil.which('procServ') or '/usr/bin/procServ'
INSTANCE = 'TESTBOX'


@pytest.fixture(autouse=True)
def need_procserv():
    if not os.access(PROCSERV, os.X_OK):
        if os.environ.get('CI') == 'true':
            pytest.fail('procServ is not installed on CI: .ci/run must apt-get install procserv')
        pytest.skip('procServ is not installed (apt-get install procserv); CI runs this test')


def read_env_file(path) -> dict:
    values = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith('#'):
            key, _, value = line.partition('=')
            values[key] = value
    return values


def write_env_file(path, values: dict) -> None:
    path.write_text(''.join(f'{k}={v}\n' for k, v in values.items()))


def specifiers(text: str, instance: str, roots: dict) -> str:
    """systemd's %i and directory specifiers (%S, %C, %t, %L) replaced, as for a system unit."""
    text = text.replace('%i', instance)
    for spec, root in roots.items():
        text = text.replace(spec, str(root))
    return text


def unit_environment(unit_text: str, instance: str, roots: dict) -> dict:
    """The variables of the unit's Environment= lines (quoted "K=V" items or bare K=V words)."""
    values = {}
    for line in re.findall(r'^Environment=(.*)$', unit_text, re.M):
        for item in shlex.split(line):
            key, _, value = item.partition('=')
            values[key] = specifiers(value, instance, roots)
    return values


def exec_line(unit_text: str, key: str, instance: str, env: dict, roots: dict | None = None) -> list[str]:
    """The unit's ExecStart (or ExecStartPre) as systemd would run it."""
    joined = re.sub(r'\\\n\s*', ' ', unit_text)
    line = next(l for l in joined.splitlines() if l.startswith(f'{key}='))[len(key) + 1:]
    argv = []
    for word in shlex.split(specifiers(line, instance, roots or {})):
        whole = re.fullmatch(r'\$([A-Za-z_]\w*)', word)
        if whole:
            argv.extend(env.get(whole.group(1), '').split())
        else:
            argv.append(re.sub(r'\$\{(\w+)\}', lambda m: env.get(m.group(1), ''), word))
    return argv


def exec_start(unit_text: str, instance: str, env: dict, roots: dict | None = None) -> list[str]:
    return exec_line(unit_text, 'ExecStart', instance, env, roots)


def tcp_listeners(pid: int) -> list[str]:
    """The TCP sockets process ``pid`` listens on (its socket inodes found in /proc/net/tcp, tcp6)."""
    inodes = set()
    for fd in os.listdir(f'/proc/{pid}/fd'):
        try:
            target = os.readlink(f'/proc/{pid}/fd/{fd}')
        except OSError:
            continue
        if target.startswith('socket:['):
            inodes.add(target[8:-1])
    found = []
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            if fields[3] == '0A' and fields[9] in inodes:
                found.append(fields[1])
    return found


def descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found.append(child)
        found.extend(descendants(child))
    return found


def stop_pids(pids) -> None:
    """SIGTERM, then SIGKILL after 10 s, each pid that still runs."""
    pids = [p for p in pids if alive(p)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = [p for p in pids if alive(p)]
        if not pids:
            return


class ConsoleClient:
    """A telnet-less client of procServ's console socket (telnet negotiation bytes are ignored)."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.sock.settimeout(0.2)
        self.buffer = b''

    def read_until(self, text: bytes, timeout: float = 30.0, start: int = 0) -> bool:
        deadline = time.monotonic() + timeout
        while text not in self.buffer[start:] and time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            self.buffer += chunk
        return text in self.buffer[start:]

    def type(self, line: str) -> int:
        mark = len(self.buffer)
        self.sock.sendall(line.encode() + b'\n')
        return mark

    def text(self) -> str:
        return self.buffer.replace(b'\xff', b'').decode('utf-8', 'replace')

    def close(self):
        self.sock.close()


@pytest.fixture
def deployment(tmp_path, device, ca_env):
    """A generated project with a filled-in instance env file; paths under tmp_path."""
    project = cli.start_project('depioc', tmp_path / 'depioc')
    values = read_env_file(project / 'deploy' / 'instance.env')
    assert set(values) == {'DEVICE', 'APP', 'ARGS', 'HOLDOFF'}
    values.update(DEVICE=device, APP=str(project / 'bin' / 'app.server'), ARGS='--macro unused=1', HOLDOFF='1')
    # the app's shebang (/usr/bin/env python3) finds this interpreter, as in an activated venv
    values['PATH'] = os.path.dirname(sys.executable) + os.pathsep + ca_env.get('PATH', '/usr/bin:/bin')
    values.update({k: v for k, v in ca_env.items() if k.startswith('EPICS_')})
    for sub in ('log', 'run'):
        (tmp_path / sub).mkdir()
    return project, values


def test_systemd_command_under_procserv(deployment, tmp_path, device, ca_env):
    """procServ from the unit's ExecStart and environment, no writable HOME: console socket 0660 and no TCP
    port, dbl, caget, restart after kill -9, exit and ^X, devioc console, stop."""
    project, values = deployment
    env_file = tmp_path / f'{INSTANCE}.env'
    write_env_file(env_file, values)
    unit = (project / 'deploy' / 'depioc@.service').read_text()
    unit = unit.replace('/var/log/depioc', str(tmp_path / 'log')).replace('/run/depioc/%i', str(tmp_path / 'run'))
    roots = {'%S': tmp_path / 'var-lib', '%C': tmp_path / 'var-cache', '%t': tmp_path / 'run', '%L': tmp_path / 'log'}
    for key, root in (('StateDirectory', '%S'), ('CacheDirectory', '%C')):   # systemd makes them for the user
        (roots[root] / specifiers(re.search(rf'^{key}=(\S+)', unit, re.M).group(1), INSTANCE, roots)).mkdir(parents=True)
    argv = exec_start(unit, INSTANCE, read_env_file(env_file), roots)
    assert argv[0] == '/usr/bin/procServ'
    argv[0] = PROCSERV
    socket_path = tmp_path / 'run' / 'console'
    assert f'--port=unix:::0660:{socket_path}' in argv
    assert f'--chdir={roots["%S"]}/depioc/{INSTANCE}' in argv
    assert argv[-5:] == [values['APP'], '--device', device, '--macro', 'unused=1']

    home = tmp_path / 'no-home'
    home.write_text('')                       # mkdir(HOME/.cache) fails, as for a system user without a home
    env = {**ca_env, **unit_environment(unit, INSTANCE, roots), **values, 'HOME': str(home)}
    env.pop('XDG_CACHE_HOME', None)
    assert env['DEVIOC_CACHE_DIR'] == f'{roots["%C"]}/depioc/{INSTANCE}' and env['NO_COLOR'] == '1'
    started = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert started.returncode == 0, started.stderr           # Type=forking: the parent returns at once
    pid_file = tmp_path / 'run' / 'procServ.pid'
    wait_for(pid_file.exists, timeout=10, what='the procServ PID file')
    server = int(pid_file.read_text())
    known = {server}
    console = None
    try:
        assert alive(server)
        wait_for(socket_path.exists, timeout=10, what='the console socket')
        st = os.stat(socket_path)
        assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o660, os.getuid(), os.getgid())
        assert tcp_listeners(server) == []
        console = ConsoleClient(socket_path)
        assert console.read_until(b'epics> '), console.text()
        known.update(descendants(server))
        assert list((roots['%C'] / 'depioc' / INSTANCE).glob('*/Depioc.db')), 'no .db in DEVIOC_CACHE_DIR'

        mark = console.type('dbl')
        assert console.read_until(f'{device}:floatarray'.encode(), start=mark), console.text()
        listed = console.buffer[mark:].decode('utf-8', 'replace')
        for name in ('enum', 'toggle', 'sstring', 'lstring', 'intval', 'floatval', 'calc'):
            assert f'{device}:{name}' in listed
        assert caget(f'{device}:enum', ca_env) == 'ZERO'

        # devioc console: a second client of the same socket gets the IOC shell
        shown = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'devioc'), 'console', '--socket',
                                str(socket_path)], input='dbl\n', capture_output=True, text=True, timeout=30, env=env)
        assert shown.returncode == 0, shown.stderr
        assert f'{device}:calc' in shown.stdout and '\xff' not in shown.stdout, shown.stdout

        # kill the app: procServ starts a new one after HOLDOFF
        app = children(server)
        assert len(app) == 1, app
        mark = len(console.buffer)
        os.kill(app[0], signal.SIGKILL)
        assert console.read_until(b'@@@ Restarting child', start=mark), console.text()
        restarted = console.buffer.index(b'@@@ Restarting child', mark)   # the other client's dbl may echo here
        assert console.read_until(b'epics> ', start=restarted), console.text()
        second = children(server)
        assert len(second) == 1 and second != app, app
        known.update(descendants(server))
        wait_for(lambda: answers(f'{device}:enum', ca_env), timeout=30, what='the restarted IOC')

        # 'exit' on the console: the app stops cleanly (status 0) and procServ restarts it too
        mark = console.type('exit')
        assert console.read_until(b"'exit' typed on the console", start=mark), console.text()
        assert console.read_until(b'@@@ Restarting child', start=mark), console.text()
        assert console.read_until(b'epics> ', start=mark), console.text()
        wait_for(lambda: children(server) not in ([], second), timeout=10, what='a third app')
        known.update(descendants(server))
        wait_for(lambda: answers(f'{device}:enum', ca_env), timeout=30, what='the IOC after exit')

        # Ctrl-X: procServ sends the app SIGTERM (--killsig=15); it stops cleanly and is restarted
        third = children(server)
        mark = len(console.buffer)
        console.sock.sendall(b'\x18')
        assert console.read_until(b'stopping the IOC', start=mark), console.text()
        assert console.read_until(b'Restarting child', start=mark), console.text()
        assert console.read_until(b'epics> ', start=mark), console.text()
        wait_for(lambda: children(server) not in ([], third), timeout=10, what='a fourth app')
        known.update(descendants(server))
        wait_for(lambda: answers(f'{device}:enum', ca_env), timeout=30, what='the IOC after Ctrl-X')
    finally:
        if console is not None:
            console.close()
        everything = sorted(known | set(descendants(server)))
        stop_pids([server])                       # what systemctl stop does first: SIGTERM to procServ
        wait_for(lambda: not any(alive(p) for p in everything), timeout=20,
                 what='procServ, the app and softIoc to exit after SIGTERM to procServ')
        stop_pids(everything)
    log = (tmp_path / 'log' / f'{INSTANCE}.log').read_text(errors='replace')
    assert f'{device}: 10 records up' in log
    assert 'Restarting child' in log
    assert '\x1b[' not in log, 'colour codes in the procServ log'


def sysv_env_dir(values: dict, tmp_path) -> Path:
    """An env-file directory for the SysV script: ``values`` plus run/log/work/cache dirs in ``tmp_path``."""
    etc = tmp_path / 'etc'
    etc.mkdir()
    values.update(RUN_AS='root' if os.getuid() == 0 else os.environ.get('USER', ''),
                  RUN_DIR=str(tmp_path / 'run'), LOG_DIR=str(tmp_path / 'log'), PROCSERV=PROCSERV,
                  WORKDIR=str(tmp_path / 'work'), DEVIOC_CACHE_DIR=str(tmp_path / 'cache'))
    write_env_file(etc / f'{INSTANCE}.env', values)
    return etc


def test_sysv_init_script_start_status_stop(deployment, tmp_path, device, ca_env):
    """The SysV init-template reads the same env file, starts procServ, reports status and stops it all."""
    project, values = deployment
    etc = sysv_env_dir(values, tmp_path)
    script = tmp_path / 'init.d' / f'depioc-{INSTANCE}'
    script.parent.mkdir()
    shutil.copy(project / 'deploy' / 'init-template', script)
    env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'ENV_DIR': str(etc)}

    def service(action):
        return subprocess.run(['sh', str(script), action], env=env, capture_output=True, text=True, timeout=60)

    assert service('status').returncode == 3
    started = service('start')
    server = None
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        server = int((tmp_path / 'run' / 'procServ.pid').read_text())   # stopped in finally, whatever fails
        assert f'console {tmp_path}/run/console' in started.stdout
        assert os.stat(tmp_path / 'run' / 'console').st_mode & 0o777 == 0o660
        # the log holds the console's traffic: not readable by every local user
        assert os.stat(tmp_path / 'log' / f'{INSTANCE}.log').st_mode & 0o777 == 0o640
        wait_for(lambda: answers(f'{device}:calc', ca_env), timeout=30, what='the IOC started by the init script')
        status = service('status')
        assert status.returncode == 0 and f'running (pid {server}' in status.stdout
        assert 'already running' in service('start').stdout
        everything = [server, *descendants(server)]
        assert len(everything) == 3, everything            # procServ, app.server, softIoc
        assert tcp_listeners(server) == []
        assert list((tmp_path / 'cache').glob('*/Depioc.db'))
        stopped = service('stop')
        assert stopped.returncode == 0 and 'ok' in stopped.stdout, stopped.stdout + stopped.stderr
        assert 'killed' not in stopped.stdout               # everything stopped on SIGTERM
        assert not any(alive(p) for p in everything)
        assert service('status').returncode == 3
    finally:
        if server is not None:
            stop_pids([server, *descendants(server)])


def test_init_script_is_posix_sh():
    """The init-template passes sh -n (and checkbashisms-free constructs: no $"..." strings)."""
    text = (cli.template_root() / 'deploy' / 'init-template.j2').read_text()
    assert '$"' not in text
    rendered = cli.render_tree(cli.template_root(), cli.project_context('depioc'), 'deploy')['init-template'][0]
    result = subprocess.run(['sh', '-n'], input=rendered, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_init_script_trusts_no_pid_file_that_names_another_process(deployment, tmp_path):
    """The PID file is in RUN_DIR, which the service user owns (and the IOC shell's `system` runs as
    that user): a PID file naming some other process must not make root's `stop` kill it, nor
    `status` call the instance running."""
    project, values = deployment
    etc = sysv_env_dir(values, tmp_path)
    script = tmp_path / f'depioc-{INSTANCE}'
    shutil.copy(project / 'deploy' / 'init-template', script)
    env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'ENV_DIR': str(etc)}
    victim = subprocess.Popen(['sleep', '60'])
    try:
        (tmp_path / 'run' / 'procServ.pid').write_text(f'{victim.pid}\n')
        status = subprocess.run(['sh', str(script), 'status'], env=env, capture_output=True, text=True, timeout=30)
        assert status.returncode == 1, status.stdout + status.stderr      # LSB: dead, PID file left
        stopped = subprocess.run(['sh', str(script), 'stop'], env=env, capture_output=True, text=True, timeout=30)
        assert stopped.returncode == 0 and 'not running' in stopped.stdout, stopped.stdout + stopped.stderr
        time.sleep(0.2)
        assert victim.poll() is None, 'the init script killed the process the PID file named'
    finally:
        victim.kill()
        victim.wait()
