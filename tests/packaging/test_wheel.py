"""What users install: the wheel holds every file devioc needs, and CI tests that installed package.

CI (.ci/test-wheel) builds the wheel, installs it into a fresh venv and runs this suite from outside
the checkout with DEVIOC_EXPECT_INSTALLED=1 and DEVIOC_WHEEL=<the wheel>.
"""
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import devioc

REPO = Path(__file__).resolve().parents[2]
SKIP_PARTS = {'__pycache__'}


def source_files() -> set[str]:
    """Every file of the package as the wheel must hold it: devioc/ and project_template/ (dotfiles too)."""
    expected = set()
    for top, prefix in (('devioc', 'devioc'), ('project_template', 'devioc/project_template')):
        for path in (REPO / top).rglob('*'):
            rel = path.relative_to(REPO / top)
            if path.is_file() and not SKIP_PARTS & set(rel.parts) and path.suffix not in ('.pyc', '.pyo'):
                expected.add(f'{prefix}/{rel.as_posix()}')
    return expected


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Path:
    """The wheel CI installed (DEVIOC_WHEEL), else one built from this checkout now."""
    given = os.environ.get('DEVIOC_WHEEL')
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp('wheel')
    result = subprocess.run([sys.executable, '-m', 'build', '--wheel', '--outdir', str(out), str(REPO)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return next(out.glob('devioc-*.whl'))


@pytest.mark.slow
def test_wheel_holds_every_package_file(wheel):
    """Templates, dbd_fields.json, the project template with its dotfiles: each source file is in the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = source_files()
    for needed in ('devioc/dbd_fields.json', 'devioc/templates/model.db.j2', 'devioc/templates/model.cmd.j2',
                   'devioc/project_template/.gitignore-tpl',
                   'devioc/project_template/deploy/{{project_name}}@.service.j2'):
        assert needed in expected, f'{needed} is no longer in the source tree: update this test'
    missing = sorted(expected - names)
    assert not missing, f'the wheel lacks {missing}: add them to [tool.setuptools.package-data] in pyproject.toml'
    stray = sorted(n for n in names if n.startswith('devioc/') and n not in expected)
    assert not stray, f'the wheel holds files that are not in the source tree: {stray}'


@pytest.mark.slow
def test_wheel_metadata_carries_the_readme(wheel):
    """The README is the long description (PyPI shows it; the deploy docs are read from it)."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith('.dist-info/METADATA'))).decode()
    assert 'License-Expression: MIT' in metadata
    assert '## Deploy an IOC' in metadata and '## Two commands' in metadata


def test_suite_imports_the_installed_package_when_ci_says_so():
    """Under CI, devioc comes from the venv's site-packages, not from the checkout next to the tests."""
    if os.environ.get('DEVIOC_EXPECT_INSTALLED') != '1':
        pytest.skip('not testing an installed wheel (CI sets DEVIOC_EXPECT_INSTALLED=1)')
    where = Path(devioc.__file__).resolve()
    assert REPO not in where.parents, f'devioc was imported from the checkout: {where}'
    assert where.parent.parent == Path(sysconfig.get_paths()['purelib']).resolve(), where
    assert 'site-packages' in where.parts
    assert not (where.parent.parent / '__editable__.devioc-2026.11.0.pth').exists()


def readme_commands() -> list[str]:
    """The commands of the README's "Two commands" section, one per ```bash block line (comments dropped)."""
    text = (REPO / 'README.md').read_text()
    section = text.split('## Two commands', 1)[1].split('\n## ', 1)[0]
    commands = []
    for block in re.findall(r'```bash\n(.*?)```', section, re.S):
        commands += [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith('#')]
    return commands


def test_ci_runs_the_readme_test_command_as_written():
    """.ci/run runs the README's test command verbatim, and that command tests the installed wheel."""
    commands = readme_commands()
    tests = [c for c in commands if '.ci/test-wheel' in c]
    assert len(tests) == 1, commands
    ci = (REPO / '.ci' / 'run').read_text().splitlines()
    assert tests[0] in ci, f'.ci/run does not run the README test command {tests[0]!r}'
    assert 'python3-venv' in tests[0] and 'procserv' in tests[0]
    script = (REPO / '.ci' / 'test-wheel').read_text()
    assert '--import-mode=importlib' in script and 'DEVIOC_EXPECT_INSTALLED=1' in script
    assert '-e ' not in script and '--editable' not in script


def test_readme_install_command_is_not_editable():
    """The README's first command installs devioc as users get it (pip install ., not -e)."""
    first = readme_commands()[0]
    assert 'pip install .' in first and 'pip install -e' not in first, first
