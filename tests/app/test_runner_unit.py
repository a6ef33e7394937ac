"""devioc.runner without an IOC: the command line it builds, the model it finds, and its usage errors."""
import sys
import textwrap

import click
import pytest
from click.testing import CliRunner

from devioc import cli, models, runner


class Beamline(models.Model):
    site = models.String('site', max_length=20, default='$(site)')
    gonio = models.Float('gonio', DOL='$(gonio=BL-GONIO):pos')
    mode = models.Enum('mode', choices=['$(first=A)', 'B'])
    link = models.Calc('link', calc='A', inpa={'pva': '${remote}:x'})
    nested = models.String('nested', max_length=20, default='$(outer=$(inner))')


class BeamlineApp:
    """The beamline app: one line of help.

    More text that is not shown in the usage line.
    """

    def __init__(self, device, macros=None, command=None):
        self.ioc = Beamline(device, callbacks=self, macros=macros, command=command)


class NoMacros:
    def __init__(self, device):
        self.ioc = Beamline(device)


class NeedsPort:
    def __init__(self, device, port, macros=None):
        self.ioc = Beamline(device, macros=macros)


def test_used_macros_with_their_defaults():
    """Every macro of names, fields, JSON links, defaults and state names; None where one has no default."""
    assert runner.used_macros([Beamline]) == {
        'site': None, 'gonio': 'BL-GONIO', 'first': 'A', 'remote': None, 'inner': None, 'outer': '$(inner)'}


def test_the_model_class_is_found_from_the_apps_init():
    assert runner.model_classes(BeamlineApp) == [Beamline]
    assert runner.model_classes(Beamline) == [Beamline]
    assert runner.model_classes(dict) == []


def invoke(target, *args, **kwargs):
    return CliRunner().invoke(runner.command(target, **kwargs), list(args))


def test_list_pvs_with_macro_flags_and_macro_options():
    """--site is a flag of its own; --macro sets the others; --list-pvs starts nothing."""
    result = invoke(BeamlineApp, '--device', 'BL1', '--site', 'hutch', '--macro', 'remote=R', '-m', 'inner=i',
                    '--list-pvs')
    assert result.exit_code == 0, result.output
    assert result.output.split() == ['BL1:site', 'BL1:gonio', 'BL1:mode', 'BL1:link', 'BL1:nested']


def test_help_lists_the_macro_flags_with_their_defaults():
    result = invoke(BeamlineApp, '--help')
    assert result.exit_code == 0
    assert 'The beamline app: one line of help.' in result.output
    for flag in ('--site VALUE', '--gonio VALUE', '--remote VALUE', '--list-pvs', '--softioc', '--macro KEY=VALUE'):
        assert flag in result.output
    assert "(default: 'BL-GONIO')" in result.output


@pytest.mark.parametrize('args, message', [
    (('--device', 'BL1', '--list-pvs'), 'the model uses $(site): give --site VALUE or --macro site=VALUE'),
    (('--list-pvs', '--site', 'x'), "Missing option '-d' / '--device'"),
    (('--device', 'BL1', '--macro', 'oops'), "'oops' has no \"=\""),
    (('--device', 'BL1', '--softioc', '/nonexistent/softIoc'), "'/nonexistent/softIoc' does not exist"),
])
def test_bad_command_lines_exit_2_and_say_why(args, message):
    result = invoke(BeamlineApp, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_model_class_runs_bare():
    result = invoke(Beamline, '-d', 'X', '--site', 's', '--remote', 'r', '--inner', 'i', '--list-pvs')
    assert result.exit_code == 0 and result.output.split()[0] == 'X:site'


def test_the_apps_own_options_reach_it():
    made = {}

    class PortApp:
        def __init__(self, device, port, macros=None):
            made.update(device=device, port=port, macros=macros)

    make = runner.factory(PortApp, 'D', {'a': '1'}, None, {'port': 99})
    make()
    assert made == {'device': 'D', 'port': 99, 'macros': {'a': '1'}}
    cmd = runner.command(PortApp, model=Beamline, options=[click.option('--port', type=int, default=14242)])
    assert '--port INTEGER' in CliRunner().invoke(cmd, ['--help']).output


@pytest.mark.parametrize('target, kwargs, message', [
    (NoMacros, {'macros': {'site': 'x'}}, 'NoMacros() takes no macros argument'),
    (NoMacros, {'softioc': '/bin/true'}, 'NoMacros() takes no command argument, so --softioc cannot be passed'),
    (NeedsPort, {}, "missing a required argument: 'port'"),
])
def test_an_app_the_runner_cannot_make_is_a_usage_error(target, kwargs, message):
    with pytest.raises(click.UsageError, match=message.replace('(', r'\(').replace(')', r'\)')):
        runner.factory(target, 'D', kwargs.get('macros', {}), kwargs.get('softioc'), {})


@pytest.mark.parametrize('spec, message', [
    ('nosuchmodule_xyz:App', "no module named 'nosuchmodule_xyz'"),
    ('json:NoSuchApp', "module 'json' has no 'NoSuchApp'"),
    ('no_colon', "'no_colon' is not MODULE:App or path/to/app.py:App"),
    ('missing/file.py:App', "no file 'missing/file.py'"),
    ('json:__doc__', 'is str, not an app class or model class'),
])
def test_bad_targets_are_usage_errors_saying_what_to_write(spec, message):
    """`devioc run` with a bad MODULE:App exits 2 with a message naming what is wrong."""
    result = CliRunner().invoke(cli.main, ['run', spec, '--device', 'X'])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_file_in_a_package_is_imported_as_part_of_it(tmp_path, monkeypatch):
    """path/to/pkg/app.py:App imports pkg.app, so its relative imports work."""
    pkg = tmp_path / 'runnerpkg_abc'
    pkg.mkdir()
    (pkg / '__init__.py').write_text('')
    (pkg / 'base.py').write_text('from devioc import models\nclass M(models.Model):\n'
                                 "    x = models.Integer('x$(n)')\n")
    (pkg / 'app.py').write_text(textwrap.dedent('''
        from .base import M

        class App:
            def __init__(self, device, macros=None):
                self.ioc = M(device, macros=macros)
    '''))
    monkeypatch.setattr(sys, 'path', list(sys.path))
    result = CliRunner().invoke(cli.main, ['run', f'{pkg}/app.py:App', '-d', 'D', '--n', '7', '--list-pvs'])
    assert result.exit_code == 0, result.output
    assert result.output.split() == ['D:x7']


def test_a_module_that_raises_on_import_is_reported_with_status_1(tmp_path, monkeypatch):
    (tmp_path / 'broken_runner_mod.py').write_text('raise RuntimeError("half-written")\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'path', list(sys.path))
    result = CliRunner().invoke(cli.main, ['run', 'broken_runner_mod:App', '-d', 'X'])
    assert result.exit_code == 1, result.output
    assert "importing 'broken_runner_mod' failed (RuntimeError): half-written" in result.output


def test_devioc_run_without_a_target_prints_its_help():
    result = CliRunner().invoke(cli.main, ['run'])
    assert result.exit_code == 0 and 'MODULE:App' in result.output


def test_serve_finds_the_model_the_app_holds():
    """The app's ioc, else its first attribute holding a model, else the app itself if it is one."""
    from devioc.shell import find_model

    first, second = Beamline.__new__(Beamline), Beamline.__new__(Beamline)

    class Holder:
        pass

    app = Holder()
    app.other, app.ioc = first, second
    assert find_model(app) is second
    del app.ioc
    assert find_model(app) is first
    assert find_model(first) is first
    with pytest.raises(TypeError, match=r'Holder holds no devioc model in an attribute: keep the model it makes as '
                                        r'self.ioc'):
        find_model(Holder())
