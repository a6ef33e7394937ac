"""The deploy files: the repository's generic deploy/ is the project template rendered for 'devioc'."""
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from devioc import cli

REPO_DEPLOY = Path(__file__).resolve().parents[2] / 'deploy'
REGENERATE = 'python -c "from devioc.cli import write_generic_deploy; write_generic_deploy(\'deploy\')"'


def test_repository_deploy_files_match_the_template():
    """deploy/ holds exactly what project_template/deploy renders to for a generic 'devioc' instance."""
    rendered = cli.render_tree(cli.template_root(), cli.generic_deploy_context(), 'deploy')
    on_disk = {p.name for p in REPO_DEPLOY.iterdir() if p.name != 'README.md'}
    assert on_disk == set(rendered), f'regenerate with: {REGENERATE}'
    for name, (text, executable) in rendered.items():
        assert (REPO_DEPLOY / name).read_text() == text, f'deploy/{name} is stale; regenerate with: {REGENERATE}'
        assert bool((REPO_DEPLOY / name).stat().st_mode & 0o100) == executable


def test_unit_keeps_per_instance_values_in_the_env_file():
    """The unit reads /etc/<project>/%i.env, serves the console on a 0660 UNIX socket, gives devioc its
    cache and state directories, restarts, logs and writes a PID file."""
    rendered = cli.render_tree(cli.template_root(), cli.project_context('site_ioc'), 'deploy')
    unit = rendered['site_ioc@.service'][0]
    for line in ('EnvironmentFile=/etc/site_ioc/%i.env', 'Type=forking', 'Restart=on-failure',
                 'PIDFile=/run/site_ioc/%i/procServ.pid', 'User=site_ioc', 'Group=site_ioc',
                 'CacheDirectory=site_ioc/%i', 'StateDirectory=site_ioc/%i', 'RuntimeDirectory=site_ioc/%i',
                 'LogsDirectoryMode=0750', 'UMask=0027',
                 'Environment="DEVIOC_CACHE_DIR=%C/site_ioc/%i" "DEVIOC_STATE_DIR=%S/site_ioc/%i" NO_COLOR=1'):
        assert line + '\n' in unit
    for option in ('--port=unix:::0660:/run/site_ioc/%i/console', '--logfile=/var/log/site_ioc/%i.log',
                   '--pidfile=/run/site_ioc/%i/procServ.pid', '--chdir=%S/site_ioc/%i', '${APP} --device ${DEVICE} $ARGS'):
        assert option in unit
    assert re.findall(r'--port=\S+', unit) == ['--port=unix:::0660:/run/site_ioc/%i/console']
    assert '127.0.0.1' not in unit and 'CONSOLE_PORT' not in unit
    assert '--allow' not in unit and '--noautorestart' not in unit
    env = rendered['instance.env'][0]
    keys = {line.split('=')[0] for line in env.splitlines() if line and not line.startswith('#')}
    assert keys == {'DEVICE', 'APP', 'ARGS', 'HOLDOFF'}
    assert 'APP=/opt/site_ioc/venv/bin/site_ioc-server' in env


def systemd_environment_file(text: str) -> dict:
    """KEY=VALUE as systemd's EnvironmentFile= reads unquoted lines: comments only at a line's start."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and line[0] not in '#;' and '=' in line:
            key, value = line.split('=', 1)
            values[key.strip()] = value.strip()
    return values


def readme_env_example() -> str:
    readme = (REPO_DEPLOY.parent / 'README.md').read_text()
    return re.search(r'MYIOC-001\.env` \(plain[^\n]*\n\s*```sh\n(.*?)```', readme, re.S).group(1)


@pytest.mark.parametrize('source', ['readme', 'instance.env'])
def test_env_examples_have_no_value_with_a_comment(source):
    """The README's env example and the generated instance.env read, by systemd's rules, as plain words."""
    text = readme_env_example() if source == 'readme' else \
        cli.render_tree(cli.template_root(), cli.project_context('myioc'), 'deploy')['instance.env'][0]
    values = systemd_environment_file(text)
    assert {'DEVICE', 'APP', 'HOLDOFF'} <= set(values)
    for key, value in values.items():
        assert '#' not in value, f'{key}={value!r}: systemd keeps the comment in the value'
        if key != 'ARGS':
            assert value.split() == [value], f'{key}={value!r} is not one word'
    assert values['HOLDOFF'] == '5'


def run_exec_start_pre(env_text: str, tmp_path):
    """The unit's ExecStartPre (the env-file check) run on an env file with env_text, as systemd would."""
    rendered = cli.render_tree(cli.template_root(), cli.project_context('myioc'), 'deploy')['myioc@.service'][0]
    line = next(l for l in rendered.splitlines() if l.startswith('ExecStartPre='))[len('ExecStartPre='):]
    env_file = tmp_path / 'INST.env'
    env_file.write_text(env_text)
    argv = [word.replace('/etc/myioc/%i.env', str(env_file)).replace('%i', 'INST') for word in shlex.split(line)]
    assert argv[:2] == ['/bin/sh', '-c'] and '$' not in line and '%%' not in line   # nothing systemd would expand
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_unit_refuses_an_env_file_with_a_comment_after_a_value(tmp_path):
    """ExecStartPre fails, naming the line, when a value carries a comment; the README example passes."""
    good = run_exec_start_pre(readme_env_example(), tmp_path)
    assert good.returncode == 0, good.stderr
    bad = run_exec_start_pre('DEVICE=X1\nHOLDOFF=5      # seconds\n', tmp_path)
    assert bad.returncode == 1
    assert '2:HOLDOFF=5      # seconds' in bad.stderr and 'comment after the value' in bad.stderr


def run_init_script(env_text: str, tmp_path):
    """start of the generated SysV script with a stand-in procServ that records its arguments."""
    project = cli.start_project('myioc', tmp_path / 'proj')
    script = tmp_path / 'myioc-MYIOC-001'
    shutil.copy(project / 'deploy' / 'init-template', script)
    fake = tmp_path / 'fake-procServ'
    argv_file = tmp_path / 'argv'
    fake.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > {argv_file}\nexit 0\n')
    fake.chmod(0o755)
    etc = tmp_path / 'etc'
    etc.mkdir()
    user = subprocess.run(['id', '-un'], capture_output=True, text=True).stdout.strip()
    (etc / 'MYIOC-001.env').write_text(env_text + f'\nRUN_AS={user}\nPROCSERV={fake}\nRUN_DIR={tmp_path}/run\n'
                                       f'LOG_DIR={tmp_path}/log\nWORKDIR={tmp_path}/state\n'
                                       f'DEVIOC_CACHE_DIR={tmp_path}/cache\n')
    result = subprocess.run(['sh', str(script), 'start'], env={'PATH': '/usr/bin:/bin', 'ENV_DIR': str(etc)},
                            capture_output=True, text=True, timeout=30)
    return result, (argv_file.read_text().splitlines() if argv_file.exists() else None)


def test_init_script_reads_the_readme_example(tmp_path):
    """The README's env example gives procServ --holdoff=5, the console socket and the app's arguments."""
    result, argv = run_init_script(readme_env_example(), tmp_path)
    assert argv is not None, result.stdout + result.stderr
    assert '--holdoff=5' in argv
    assert f'--port=unix:::0660:{tmp_path}/run/console' in argv
    assert argv[-5:] == ['/opt/myioc/venv/bin/myioc-server', '--device', 'MYIOC-001', '--macro', 'KEY=VALUE']


def test_init_script_refuses_a_comment_after_a_value(tmp_path):
    """A value with a trailing comment stops the script (exit 6) with the file, line and the fix."""
    result, argv = run_init_script('DEVICE=MYIOC-001\nAPP=/bin/true\nHOLDOFF=5   # seconds\n', tmp_path)
    assert argv is None
    assert result.returncode == 6
    assert 'MYIOC-001.env line 3 has a comment after the value: HOLDOFF=5   # seconds' in result.stderr
    assert 'lines of their own' in result.stderr


def test_unit_passes_systemd_analyze_verify(tmp_path):
    """systemd-analyze verify accepts the rendered unit (instance MYIOC-001)."""
    tool = shutil.which('systemd-analyze')
    if tool is None:
        pytest.skip('systemd-analyze is not installed')
    rendered = cli.render_tree(cli.template_root(), cli.project_context('myioc'), 'deploy')
    unit = tmp_path / 'myioc@MYIOC-001.service'
    unit.write_text(rendered['myioc@.service'][0])
    result = subprocess.run([tool, 'verify', '--man=no', str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'myioc@MYIOC-001.service' not in result.stderr, result.stderr   # no warnings about our unit
