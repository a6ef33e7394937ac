"""The deploy files: the repository's generic deploy/ is the project template rendered for 'devioc'."""
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
    """The unit reads /etc/<project>/%i.env, binds the console to 127.0.0.1, restarts, logs and writes a PID file."""
    rendered = cli.render_tree(cli.template_root(), cli.project_context('site_ioc'), 'deploy')
    unit = rendered['site_ioc@.service'][0]
    for line in ('EnvironmentFile=/etc/site_ioc/%i.env', 'Type=forking', 'Restart=on-failure',
                 'PIDFile=/run/site_ioc/%i/procServ.pid', 'User=site_ioc'):
        assert line + '\n' in unit
    for option in ('--port=127.0.0.1:${CONSOLE_PORT}', '--logfile=/var/log/site_ioc/%i.log',
                   '--pidfile=/run/site_ioc/%i/procServ.pid', '${APP} --device ${DEVICE} $ARGS'):
        assert option in unit
    assert '--allow' not in unit and '--noautorestart' not in unit
    env = rendered['instance.env'][0]
    keys = {line.split('=')[0] for line in env.splitlines() if line and not line.startswith('#')}
    assert keys == {'DEVICE', 'CONSOLE_PORT', 'APP', 'ARGS', 'WORKDIR', 'HOLDOFF'}
    assert 'APP=/opt/site_ioc/venv/bin/site_ioc-server' in env


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
