"""devioc startproject / devioc-startproject: the rendered tree, name validation, no overwriting."""
import ast
import os
import stat
import tomllib

import pytest
from click.testing import CliRunner

from devioc import cli

EXPECTED_FILES = {
    'README.md', 'pyproject.toml', 'bin/app.server',
    'myioc/__init__.py', 'myioc/ioc.py', 'myioc/server.py',
    'tests/conftest.py', 'tests/test_ioc.py',
    'deploy/myioc@.service', 'deploy/instance.env', 'deploy/init-template',
    '.gitignore',
}


def tree(root):
    return {os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files}


@pytest.fixture
def runner(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_startproject_renders_the_whole_tree(runner, tmp_path):
    """The project has app.server, the package, tests and deploy files, with no template leftovers."""
    result = runner.invoke(cli.main, ['startproject', 'myioc'])
    assert result.exit_code == 0, result.output
    assert "devioc project 'myioc' created in myioc" in result.output
    root = tmp_path / 'myioc'
    assert tree(root) == EXPECTED_FILES
    for rel in EXPECTED_FILES:
        text = (root / rel).read_text()
        assert '{{' not in text and '{%' not in text, f'{rel} has unrendered template text'
        if rel.endswith('.py') or rel == 'bin/app.server':
            ast.parse(text, rel)   # valid Python
    assert (root / 'bin/app.server').stat().st_mode & stat.S_IXUSR
    assert (root / 'deploy/init-template').stat().st_mode & stat.S_IXUSR
    assert not (root / 'deploy/instance.env').stat().st_mode & stat.S_IXUSR
    assert {'.venv/', '__pycache__/', '*.egg-info/'} <= set((root / '.gitignore').read_text().split())


def test_rendered_names_follow_the_project_name(runner, tmp_path):
    """my_ioc gives model MyIoc, app MyIocApp, console script my_ioc-server and unit my_ioc@.service."""
    assert runner.invoke(cli.main, ['startproject', 'my_ioc']).exit_code == 0
    root = tmp_path / 'my_ioc'
    ioc_source = (root / 'my_ioc/ioc.py').read_text()
    assert 'class MyIoc(models.Model):' in ioc_source
    assert 'class MyIocApp:' in ioc_source
    meta = tomllib.loads((root / 'pyproject.toml').read_text())
    assert meta['project']['name'] == 'my_ioc'
    assert meta['project']['scripts'] == {'my_ioc-server': 'my_ioc.server:main'}
    assert meta['project']['dependencies'][0].startswith('devioc')
    unit = (root / 'deploy/my_ioc@.service').read_text()
    assert 'EnvironmentFile=/etc/my_ioc/%i.env' in unit
    assert '--port=unix:::0660:/run/my_ioc/%i/console' in unit and 'User=my_ioc' in unit


def test_startproject_into_a_given_empty_directory(runner, tmp_path):
    """DIR may be an existing empty directory (e.g. '.'); the package is created inside it."""
    (tmp_path / 'here').mkdir()
    result = runner.invoke(cli.main, ['startproject', 'myioc', 'here'])
    assert result.exit_code == 0, result.output
    assert tree(tmp_path / 'here') == EXPECTED_FILES


def test_devioc_startproject_is_the_same_command(tmp_path, monkeypatch):
    """The original's command name, devioc-startproject NAME, creates the same tree."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.startproject, ['myioc'], prog_name='devioc-startproject')
    assert result.exit_code == 0, result.output
    assert tree(tmp_path / 'myioc') == EXPECTED_FILES


def test_existing_directory_is_never_overwritten(runner, tmp_path):
    """A non-empty target directory is refused with exit status 1, and its files are untouched."""
    root = tmp_path / 'myioc'
    root.mkdir()
    (root / 'README.md').write_text('mine')
    result = runner.invoke(cli.main, ['startproject', 'myioc'])
    assert result.exit_code == 1
    assert 'already exists and is not empty; devioc never overwrites files' in result.output
    assert (root / 'README.md').read_text() == 'mine'
    assert tree(root) == {'README.md'}


def test_target_that_cannot_be_made_is_an_error_not_a_traceback(runner, tmp_path):
    """A directory that cannot be made (here: under a file; as a user, under a read-only directory)
    gives exit status 1 and a message naming the path, not an OSError traceback."""
    (tmp_path / 'afile').write_text('a file')
    result = runner.invoke(cli.main, ['startproject', 'myioc', str(tmp_path / 'afile' / 'myioc')])
    assert result.exit_code == 1, result.output
    assert f'cannot write the project into {tmp_path}/afile/myioc' in result.output
    assert 'Traceback' not in result.output and not isinstance(result.exception, OSError)


def test_target_that_is_a_file_is_refused(runner, tmp_path):
    """A target path that is a file is refused, not replaced."""
    (tmp_path / 'myioc').write_text('a file')
    result = runner.invoke(cli.main, ['startproject', 'myioc'])
    assert result.exit_code == 1
    assert 'is not a directory' in result.output
    assert (tmp_path / 'myioc').read_text() == 'a file'


@pytest.mark.parametrize('name, reason', [
    ('1abc', 'it begins with a digit; make sure the name begins with a letter or underscore'),
    ('my-ioc', "it contains \"-\"; use an underscore instead, e.g. 'my_ioc'"),
    ('my ioc', 'use only letters, digits and underscores'),
    ('class', "'class' is a Python keyword"),
    ('MyIOC', "'MyIOC' has capital letters; Python package names are lowercase, e.g. 'myioc'"),
    ('devioc', "'devioc' conflicts with the name of an existing Python module"),
    ('epics', "'epics' conflicts with the name of an existing Python module"),
    ('os', "'os' conflicts with the name of an existing Python module"),
    ('', 'the project name is empty'),
])
def test_bad_names_are_refused_with_a_reason(runner, tmp_path, name, reason):
    """A name that cannot be a package is a usage error (exit 2) naming the reason; nothing is written."""
    result = runner.invoke(cli.main, ['startproject', name])
    assert result.exit_code == 2
    assert 'Invalid value for NAME' in result.output
    assert reason in result.output
    assert os.listdir(tmp_path) == []


def test_template_files_are_not_importable():
    """The template tree holds no .py files but its package marker, so nothing in it is imported or collected."""
    root = cli.template_root()
    python_files = [p.relative_to(root).as_posix() for p in root.rglob('*.py')]
    assert python_files == ['__init__.py']
    assert (root / '{{project_name}}' / 'ioc.py-tpl').is_file()
