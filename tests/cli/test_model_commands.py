"""devioc render / list-pvs / check work on a MODULE:Class without running it."""
import sys
import textwrap
import uuid

import pytest
from click.testing import CliRunner

from devioc import cli

GOOD = '''
from devioc import models

class Demo(models.Model):
    enum = models.Enum('enum', choices=['ZERO', 'ONE'], default=0, desc='Enum at $(location)')
    intval = models.Integer('intval', max_val=10, min_val=0, default=1)
    calc = models.Calc('calc', calc='A*2', inpa='$(device):intval CP NMS')

class NotAModel:
    pass
'''

SEVENTEEN_STATES = '''
from devioc import models

class Bad(models.Model):
    enum = models.Enum('enum', choices=[f'S{i}' for i in range(17)])
'''

LONG_NAME = '''
from devioc import models

class Long(models.Model):
    value = models.Integer('a_rather_long_record_name_that_is_fine_alone')
'''


@pytest.fixture
def module(tmp_path, monkeypatch):
    """Write a model module into a temporary directory made current; return its unique name."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    names = []

    def write(source):
        name = f'model_{uuid.uuid4().hex[:8]}'
        (tmp_path / f'{name}.py').write_text(textwrap.dedent(source))
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


def invoke(*args):
    return CliRunner().invoke(cli.main, list(args))


def test_list_pvs_prints_one_name_a_line(module):
    """list-pvs prints <device>:<name> for every record, in declaration order."""
    name = module(GOOD)
    result = invoke('list-pvs', f'{name}:Demo', '--device', 'DEV-1', '--macro', 'location=hutch')
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ['DEV-1:enum', 'DEV-1:intval', 'DEV-1:calc']


def test_render_writes_db_and_cmd_with_macros_expanded(module, tmp_path):
    """render writes <Class>.db and <Class>.cmd to -o DIR; device and --macro values are expanded."""
    name = module(GOOD)
    result = invoke('render', f'{name}:Demo', '-d', 'DEV-1', '-m', 'location=hutch', '-o', 'out')
    assert result.exit_code == 0, result.output
    assert 'wrote out/Demo.db' in result.output and 'wrote out/Demo.cmd' in result.output
    db = (tmp_path / 'out/Demo.db').read_text()
    assert 'record(mbbo, "DEV-1:enum")' in db
    assert 'Enum at hutch' in db
    assert 'DEV-1:intval CP NMS' in db
    assert '$(' not in db
    cmd = (tmp_path / 'out/Demo.cmd').read_text()
    assert 'dbLoadRecords("Demo.db")' in cmd
    assert 'iocInit' in cmd


def test_undefined_macro_is_a_model_error(module):
    """A macro the model uses but nobody defined fails with exit status 1 and its check id."""
    name = module(GOOD)
    result = invoke('render', f'{name}:Demo', '--device', 'DEV-1')
    assert result.exit_code == 1
    assert 'devioc.E016' in result.output
    assert 'location' in result.output


def test_check_passes_a_good_model(module):
    """check reports no problems and exits 0 for a valid model and device."""
    name = module(GOOD)
    result = invoke('check', f'{name}:Demo', '--device', 'DEV-1', '--macro', 'location=hutch')
    assert result.exit_code == 0, result.output
    assert f'{name}:Demo: no problems found (3 records for device DEV-1)' in result.output


def test_check_reports_class_errors_with_ids_and_hints(module):
    """A model class with 17 enum states fails check with exit 1 and the E004 message."""
    name = module(SEVENTEEN_STATES)
    result = invoke('check', f'{name}:Bad', '--device', 'DEV-1')
    assert result.exit_code == 1
    assert f'Error: {name}:Bad has 1 problem(s):' in result.output
    assert 'devioc.E004' in result.output
    assert 'HINT:' in result.output


def test_check_reports_device_dependent_errors(module):
    """A name over 60 characters once the device is prepended fails check with E001."""
    name = module(LONG_NAME)
    assert invoke('check', f'{name}:Long', '--device', 'D').exit_code == 0
    result = invoke('check', f'{name}:Long', '--device', 'A_VERY_LONG_DEVICE_NAME_FOR_THIS')
    assert result.exit_code == 1
    assert 'devioc.E001' in result.output


@pytest.mark.parametrize('spec, message', [
    ('no_colon', "'no_colon' is not MODULE:Class"),
    ('nonexistent_module_xyz:Demo', "cannot import 'nonexistent_module_xyz'"),
])
def test_bad_model_spec_is_reported(module, spec, message):
    """A spec without ':' is a usage error (2); a module that cannot be imported is a failure (1)."""
    result = invoke('list-pvs', spec, '--device', 'D')
    assert result.exit_code == (2 if spec == 'no_colon' else 1)
    assert message in result.output


def test_class_that_is_not_a_model_is_refused(module):
    """MODULE:Class must name a devioc model class."""
    name = module(GOOD)
    result = invoke('list-pvs', f'{name}:NotAModel', '--device', 'D')
    assert result.exit_code == 1
    assert 'is not a devioc model class' in result.output
    result = invoke('list-pvs', f'{name}:Missing', '--device', 'D')
    assert result.exit_code == 1
    assert "has no 'Missing'" in result.output


@pytest.mark.parametrize('macro, message', [
    ('novalue', "'novalue' has no \"=\""),
    ('1x=2', "'1x' is not a macro name"),
])
def test_malformed_macro_is_a_usage_error(module, macro, message):
    """--macro must be KEY=VALUE with a valid key (exit status 2)."""
    name = module(GOOD)
    result = invoke('list-pvs', f'{name}:Demo', '--device', 'D', '--macro', macro)
    assert result.exit_code == 2
    assert message in result.output


def test_device_is_required(module):
    """--device is required (exit status 2)."""
    name = module(GOOD)
    result = invoke('list-pvs', f'{name}:Demo')
    assert result.exit_code == 2
    assert "Missing option '-d' / '--device'" in result.output


WARNED = '''
from devioc import models

class Legacy(models.Model):
    name = models.String('name', max_length=40)
    mode = models.Enum('mode', choices=['A', 'B'], mdel=0)
'''


def test_check_prints_warnings_and_exits_0(module):
    """check prints each warning with its id, counts them, and exits 0: warnings alone are no failure."""
    name = module(WARNED)
    result = invoke('check', f'{name}:Legacy', '--device', 'DEV-1')
    assert result.exit_code == 0, result.output
    assert 'Legacy.name: (devioc.W002)' in result.output
    assert 'Legacy.mode: (devioc.W003)' in result.output
    assert f'{name}:Legacy: no errors, 2 warnings (2 records for device DEV-1)' in result.output


def test_render_into_a_directory_that_cannot_be_made_is_an_error(module, tmp_path):
    """devioc render -o PATH that cannot be made: exit status 1 naming the path, no traceback."""
    name = module(GOOD)
    (tmp_path / 'afile').write_text('a file')
    result = invoke('render', f'{name}:Demo', '-d', 'D', '-m', 'location=hutch', '-o', str(tmp_path / 'afile' / 'out'))
    assert result.exit_code == 1, result.output
    assert f'cannot write into {tmp_path}/afile/out' in result.output
    assert not isinstance(result.exception, OSError)
