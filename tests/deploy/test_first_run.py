"""A new user's first runs: the right softIoc, no caRepeater banner, a cache that says what to set,
a render hint that works outside the venv, no colour codes where no terminal shows them."""
import os
import pty
import subprocess
import sys

import pytest
from click.testing import CliRunner

from devioc import log, models, softioc
from devioc.cli import main
from devioc.testing import epics_tool, stop_repeaters

VENV_BIN = os.path.dirname(sys.executable)


def test_find_softioc_runs_softiocpva_for_pva():
    """pva=True with the default command is EPICS base's softIocPVA; an explicit program is kept."""
    assert os.path.basename(softioc.find_softioc('softIoc')) == 'softIoc'
    assert os.path.basename(softioc.find_softioc('softIoc', pva=True)) == 'softIocPVA'
    assert os.path.basename(softioc.find_softioc(None, pva=True)) == 'softIocPVA'
    assert os.path.basename(softioc.find_softioc('softIocPVA')) == 'softIocPVA'
    plain = epics_tool('softIoc')
    assert softioc.find_softioc(plain, pva=True) == plain
    with pytest.raises(softioc.SoftIocNotFound, match="'no-such-ioc' not found.*give a path"):
        softioc.find_softioc('no-such-ioc')


class Both(models.Model):
    level = models.Float('level', default=2.5)


def test_pva_true_serves_pv_access(run_model, device, ca_env):
    """A pva=True model is served by softIocPVA: pvget (EPICS base) and p4p (Python) read the record."""
    ioc = run_model(Both, pva=True)
    assert os.path.basename(ioc.command) == 'softIocPVA'
    got = subprocess.run([epics_tool('pvget'), '-w', '5', f'{device}:level'], capture_output=True, text=True,
                         timeout=30, env=ca_env)
    assert got.returncode == 0 and '2.5' in got.stdout, got.stdout + got.stderr
    # p4p loads its own EPICS libraries: read from a separate process, not next to pyepics' libca
    try:
        import importlib.util
        have_p4p = importlib.util.find_spec('p4p') is not None
    except ImportError:
        have_p4p = False
    if not have_p4p:
        if os.environ.get('CI') == 'true':
            pytest.fail('p4p is in the test extras but not installed')
        pytest.skip('p4p is not installed (pip install p4p)')
    code = f"from p4p.client.thread import Context; print(float(Context('pva').get('{device}:level', timeout=5)))"
    read = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60, env=ca_env)
    assert read.returncode == 0 and read.stdout.strip() == '2.5', read.stdout + read.stderr


def test_ca_repeater_directory_is_appended_to_path_only_when_missing():
    """PATH without a caRepeater gets EPICS base's bin directory at its end; a PATH that has one is kept."""
    environ = {'PATH': '/usr/bin:/bin'}
    added = softioc.add_ca_repeater_to_path(environ)
    assert added == os.path.dirname(epics_tool('caRepeater'))
    assert environ['PATH'] == f'/usr/bin:/bin:{added}'
    again = dict(environ)
    assert softioc.add_ca_repeater_to_path(again) is None and again == environ


def test_demo_first_run_has_no_carepeater_banner(ca_env, tmp_path):
    """The README's demo, run with the venv not activated, starts without libca's caRepeater complaint."""
    port = str(50000 + os.getpid() % 10000)
    env = {**ca_env, 'PATH': '/usr/local/bin:/usr/bin:/bin', 'EPICS_CA_REPEATER_PORT': port,
           'DEVIOC_CACHE_DIR': str(tmp_path)}
    proc = subprocess.Popen([sys.executable, '-m', 'devioc.demo', '--device', f'FR{os.getpid()}'], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if 'demo IOC running' in line or 'Error' in line:
                break
    finally:
        proc.terminate()
        try:
            rest, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
        stop_repeaters(port)
    output = ''.join(lines) + rest
    assert 'demo IOC running' in output, output
    assert 'caRepeater' not in output, output


def test_cache_dir_error_names_the_path_and_the_variable(tmp_path, monkeypatch):
    """A HOME where nothing can be made gives CacheDirError naming the path and DEVIOC_CACHE_DIR."""
    home = tmp_path / 'home'
    home.write_text('')
    monkeypatch.setenv('HOME', str(home))
    monkeypatch.delenv('DEVIOC_CACHE_DIR', raising=False)
    monkeypatch.delenv('XDG_CACHE_HOME', raising=False)
    with pytest.raises(models.CacheDirError) as info:
        models.cache_root()
    message = str(info.value)
    assert f'{home}/.cache/devioc' in message and 'Set DEVIOC_CACHE_DIR' in message
    assert 'CacheDirectory=' in message
    assert not message.startswith('[Errno') and info.value.filename == f'{home}/.cache/devioc'
    monkeypatch.setenv('DEVIOC_CACHE_DIR', str(tmp_path / 'cache'))
    assert models.cache_root() == tmp_path / 'cache' and (tmp_path / 'cache').is_dir()


def test_render_hint_runs_outside_the_venv(tmp_path, ca_env):
    """`devioc render` prints a command that works in a shell whose PATH has no softIoc."""
    (tmp_path / 'hintmodel.py').write_text(
        'from devioc import models\n\nclass Hint(models.Model):\n    x = models.Float("x")\n')
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(main, ['render', 'hintmodel:Hint', '--device', 'HINT1', '-o', 'out dir'])
    finally:
        os.chdir(old)
    assert result.exit_code == 0, result.output
    hint = result.output.splitlines()[-1]
    assert hint.startswith('run it with: ')
    env = {**ca_env, 'PATH': '/usr/bin:/bin'}
    ran = subprocess.run(['sh', '-c', hint[len('run it with: '):]], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                         capture_output=True, text=True, timeout=60)
    assert 'iocRun: All initialization complete' in ran.stdout + ran.stderr, ran.stdout + ran.stderr


def test_startproject_script_takes_h():
    """devioc-startproject -h prints its help, as -h does for devioc."""
    result = subprocess.run([os.path.join(VENV_BIN, 'devioc-startproject'), '-h'], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'Usage: devioc-startproject [OPTIONS] NAME [DIRECTORY]' in result.stdout


@pytest.mark.parametrize('env, colour', [({'TERM': 'xterm'}, True), ({'TERM': 'xterm', 'NO_COLOR': '1'}, False),
                                         ({}, False), ({'TERM': 'dumb'}, False)])
def test_colour_only_on_a_terminal_that_wants_it(monkeypatch, env, colour):
    """Colour codes need a tty, a TERM other than dumb, and no NO_COLOR (the deploy files set it)."""
    for key in ('TERM', 'NO_COLOR'):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, 'w', closefd=False) as tty_stream:
            assert log.use_colour(tty_stream) is colour
    finally:
        os.close(leader)
        os.close(follower)
    with open(os.devnull, 'w') as not_a_tty:
        assert log.use_colour(not_a_tty) is False


def test_console_shows_one_prompt_for_the_flushed_pair():
    """The prompt softIoc buffered after iocInit and the one the attach line gives show as one."""
    from devioc.shell import Console
    rd, wr = os.pipe()
    try:
        Console(model=None, reactor=None, stdin_fd=0, stdout_fd=wr).show(b'## EPICS R7\nepics> epics> ')
        assert os.read(rd, 100) == b'## EPICS R7\nepics> '
    finally:
        os.close(rd)
        os.close(wr)
