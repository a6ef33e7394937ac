"""A generated project installs with pip into a fresh venv, and its own tests pass there."""
import os
import site
import subprocess
import sys
import sysconfig

import pytest

from devioc import cli


def run(args, **kwargs):
    result = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f'{" ".join(map(str, args))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}'
    return result


def build_isolation():
    """Build with this interpreter's setuptools when it can make editable wheels (it has wheel, or is >= 70.1);
    else let pip fetch the build requirements from the package index as a user's pip would."""
    try:
        import setuptools
        version = tuple(int(x) for x in setuptools.__version__.split('.')[:2])
        if version >= (70, 1):
            return ['--no-build-isolation']
        import wheel  # noqa: F401  (setuptools < 70.1 needs it for PEP 660 editable installs)
        return ['--no-build-isolation']
    except ImportError:
        return []


@pytest.mark.slow
def test_fresh_venv_pip_install_then_pytest(tmp_path, ca_env):
    """pip install -e of a new project succeeds, its console script runs, and its pytest suite passes."""
    project = cli.start_project('freshioc', tmp_path / 'freshioc')
    venv = tmp_path / 'venv'
    run([sys.executable, '-m', 'venv', '--without-pip', str(venv)])
    python = venv / 'bin' / 'python'
    # The new venv sees this interpreter's packages (devioc, twisted, pytest, ...) the way
    # --system-site-packages would, and nothing of the project: that is installed next.
    purelib = run([str(python), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])']).stdout.strip()
    parents = [p for p in site.getsitepackages() + [sysconfig.get_paths()['purelib']] if os.path.isdir(p)]
    with open(os.path.join(purelib, '_parent_site.pth'), 'w') as handle:
        handle.write('import site; ' + '; '.join(f'site.addsitedir({p!r})' for p in dict.fromkeys(parents)) + '\n')
    run([sys.executable, '-m', 'pip', '--python', str(python), 'install', '--no-deps', *build_isolation(),
         '--disable-pip-version-check', '-q', '-e', str(project)])

    location = run([str(python), '-c', 'import freshioc.ioc; print(freshioc.ioc.__file__)'], cwd=tmp_path)
    assert location.stdout.strip() == str(project / 'freshioc' / 'ioc.py')
    listed = run([str(venv / 'bin' / 'freshioc-server'), '--device', 'FRESH-1', '--list-pvs'], cwd=tmp_path)
    assert listed.stdout.split()[:2] == ['FRESH-1:enum', 'FRESH-1:toggle']

    helped = run([str(venv / 'bin' / 'freshioc-server'), '--help'], cwd=tmp_path)
    assert 'freshioc-server [OPTIONS]' in helped.stdout and '--list-pvs' in helped.stdout
    # the same app through devioc's own runner, as a module path
    listed = run([str(python), '-m', 'devioc', 'run', 'freshioc.ioc:FreshiocApp', '-d', 'FRESH-2', '--list-pvs'],
                 cwd=tmp_path)
    assert listed.stdout.split()[:2] == ['FRESH-2:enum', 'FRESH-2:toggle']

    env = {k: v for k, v in ca_env.items() if k != 'PYTEST_ADDOPTS'}
    result = run([str(python), '-m', 'pytest', '-q', '-p', 'no:cacheprovider'], cwd=project, env=env)
    assert '4 passed' in result.stdout, result.stdout
