"""The deploy files: the repository's generic deploy/ is the project template rendered for 'devioc'."""
from pathlib import Path

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
