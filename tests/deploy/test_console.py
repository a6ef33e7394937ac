"""The IOC console: procServ on a 0660 UNIX socket, and ``devioc console`` that attaches to it."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from devioc import console
from devioc.testing import child_pids, wait_for

PROCSERV = shutil.which('procServ') or '/usr/bin/procServ'


def test_telnet_commands_are_dropped_across_chunks():
    """IAC WILL/DO/SB..SE are removed even when split between reads; IAC IAC is a 0xff byte."""
    filt = console.TelnetFilter()
    stream = b'\xff\xfb\x01hel' + b'lo\xff' + b'\xfd\x03 \xff\xfa\x18\x01\xff\xf0world\xff\xff!'
    shown = b''.join(filt.feed(stream[i:i + 3]) for i in range(0, len(stream), 3))
    assert shown == b'hello world\xff!'


def make_socket(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    return sock


def test_find_socket_by_instance_or_unit_name(tmp_path):
    """INSTANCE and project@INSTANCE find /run/<project>/<INSTANCE>/console; ambiguity and absence are errors."""
    roots = (str(tmp_path / 'run'),)
    a = make_socket(tmp_path / 'run' / 'alpha' / 'IOC-1' / 'console')
    try:
        assert console.find_socket('IOC-1', roots) == tmp_path / 'run' / 'alpha' / 'IOC-1' / 'console'
        assert console.find_socket('alpha@IOC-1', roots) == tmp_path / 'run' / 'alpha' / 'IOC-1' / 'console'
        with pytest.raises(console.ConsoleError, match=r"no console socket for instance 'beta@IOC-1'.*--socket"):
            console.find_socket('beta@IOC-1', roots)
        b = make_socket(tmp_path / 'run' / 'beta' / 'IOC-1' / 'console')
        with pytest.raises(console.ConsoleError, match=r"several instances are named 'IOC-1'.*<project>@IOC-1"):
            console.find_socket('IOC-1', roots)
        b.close()
    finally:
        a.close()


def test_console_command_without_a_target_is_a_usage_error():
    """devioc console with neither INSTANCE nor --socket exits 2 and says what to give."""
    from click.testing import CliRunner

    from devioc.cli import main
    result = CliRunner().invoke(main, ['console'])
    assert result.exit_code == 2 and 'give an INSTANCE' in result.output


def test_console_command_names_a_missing_socket(tmp_path):
    """A socket that is not there is exit status 1 with the path."""
    from click.testing import CliRunner

    from devioc.cli import main
    missing = tmp_path / 'console'
    result = CliRunner().invoke(main, ['console', '--socket', str(missing)])
    assert result.exit_code == 1 and f'cannot connect to {missing}' in result.output


@pytest.fixture
def procserv_cat():
    """procServ with the deploy files' console option, running /bin/cat; the socket's directory is
    open to everyone (0755), so only the socket's own mode keeps other users out."""
    if not os.access(PROCSERV, os.X_OK):
        if os.environ.get('CI') == 'true':
            pytest.fail('procServ is not installed on CI: .ci/run must apt-get install procserv')
        pytest.skip('procServ is not installed (apt-get install procserv)')
    top = Path(tempfile.mkdtemp(prefix='devioc-console-'))
    os.chmod(top, 0o755)
    path = top / 'run' / 'console'
    path.parent.mkdir()
    proc = subprocess.Popen([PROCSERV, '--foreground', '--quiet', '--name=cat', '--noautorestart',
                             f'--port=unix:::0660:{path}', '/bin/cat'], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(path.exists, timeout=10, what='the procServ console socket')
        wait_for(lambda: child_pids(proc.pid), timeout=10, what='procServ to start /bin/cat')
        yield path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(top)


def test_devioc_console_relays_to_the_ioc_shell(procserv_cat):
    """Lines piped into devioc console reach the child; its answers come back without telnet bytes."""
    st = os.stat(procserv_cat)
    assert (st.st_mode & 0o777, st.st_uid) == (0o660, os.getuid())
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'devioc'), 'console', '--socket',
                             str(procserv_cat)], input='hello from the console\n', capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert 'Welcome to procServ' in result.stdout
    assert result.stdout.count('hello from the console') >= 1
    assert '\ufffd' not in result.stdout and '\xff' not in result.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to act as a second user (CI runs as root)')
def test_other_local_user_cannot_open_the_console(procserv_cat):
    """uid 65534 (not the owner, not in the group) is refused by the socket, with a message saying who may."""
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rd)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                console.connect(procserv_cat).close()
                answer = 'CONNECTED'
            except console.ConsoleError as err:
                answer = f'REFUSED {err}'
            os.write(wr, answer.encode())
        finally:
            os._exit(0)
    os.close(wr)
    os.waitpid(pid, 0)
    answer = os.read(rd, 2000).decode()
    os.close(rd)
    assert answer.startswith('REFUSED permission denied'), answer
    assert 'for user root and group root' in answer and 'sudo -u root devioc console' in answer
    console.connect(procserv_cat).close()                  # the owner gets in
