"""Access security levels: clients write values (ASL0) by default, not configuration (ASL1), so no
client can rewire a link to make the database write a read-only record; ``Meta.access_level = 1``
or a group's ``'level': 1`` opens the configuration fields; the app writes every field whatever the
clients' level (through softIoc's shell beyond it)."""
import getpass
import subprocess

import pytest
import pytest_twisted

from devioc import access, dbd, models
from devioc.checks import ModelError
from devioc.testing import caget, epics_tool, tool_as_other_user, until, wait_for

ME = getpass.getuser()


class Plant(models.Model):
    w = models.Float('w')                               # ao: VAL for clients, OUT/HIHI/PROC not
    calc = models.CalcOut('calc', calc='A+1')           # calcout: VAL and OVAL are ASL0
    ro = models.Float('ro', read_only=True)
    temp = models.FloatInput('temp')                    # read-only by default


class OpenPlant(Plant):
    class Meta:
        access_level = 1


class Levels(models.Model):
    ops = models.Float('ops', ASG='OPS')                # this user, values and configuration
    vals = models.Float('vals', ASG='VALS')             # this user, values only (the group does not say)
    ro = models.Float('ro', read_only=True)

    class Meta:
        access = {'OPS': {'users': [ME], 'level': 1}, 'VALS': {'users': [ME]}}


def _put(argv, name, value, env, *args):
    return subprocess.run([*argv, '-c', '-w', '3', *args, name, value], env={**env, 'HOME': '/tmp'},
                          capture_output=True, text=True, timeout=20)


def _refused(result):
    return result.returncode != 0 and 'Write access denied' in result.stdout + result.stderr


# -- the table, the file, the checks


def test_the_dbd_table_knows_each_fields_level():
    """The .dbd's asl(ASL0) fields are level 0, every other field level 1 (EPICS base 7.0.8.1)."""
    ao, calcout, mbbo = dbd.fields('ao'), dbd.fields('calcout'), dbd.fields('mbbo')
    assert (ao['VAL'].asl, ao['OUT'].asl, ao['HIHI'].asl, ao['PROC'].asl, ao['SCAN'].asl, ao['DOL'].asl) == \
        (0, 1, 1, 1, 1, 1)
    assert (calcout['VAL'].asl, calcout['OVAL'].asl, calcout['OUT'].asl, calcout['INPA'].asl) == (0, 0, 1, 1)
    assert (mbbo['VAL'].asl, mbbo['ZRST'].asl, mbbo['FLNK'].asl) == (0, 1, 1)
    assert all(fields['VAL'].asl == 0 for fields in map(dbd.fields, dbd.record_types()) if 'VAL' in fields)


def test_default_is_written_at_level_0_unless_the_model_opens_level_1():
    plain = access.render_acf(Plant, 'DEV')
    default = plain[plain.index('ASG(DEFAULT)'):plain.index('ASG(DEVIOC_RO)')]
    assert 'RULE(0, WRITE)' in default and 'RULE(1, READ)' in default and 'RULE(1, WRITE)' not in default
    opened = access.render_acf(OpenPlant, 'DEV')
    default = opened[opened.index('ASG(DEFAULT)'):opened.index('ASG(DEVIOC_RO)')]
    assert 'RULE(1, WRITE)' in default and 'RULE(0, WRITE)' not in default


def test_a_group_writes_up_to_its_level():
    text = access.render_acf(Levels, 'DEV')
    ops = text[text.index('ASG(OPS)'):text.index('ASG(VALS)')]
    vals = text[text.index('ASG(VALS)'):]
    assert 'RULE(1, WRITE) {' in ops and 'UAG(OPS_users)' in ops
    assert 'RULE(0, WRITE) {' in vals and 'RULE(1, WRITE)' not in vals


@pytest.mark.parametrize('level', ['1', True, 2, -1, None, 1.0])
def test_a_bad_level_is_refused_when_the_class_is_built(level):
    with pytest.raises(ModelError) as err:
        class BadModel(models.Model):
            w = models.Float('w')

            class Meta:
                access_level = level
    assert [(m.id, m.obj) for m in err.value.messages] == [('devioc.E027', 'BadModel.Meta.access_level')]
    assert 'ASL1' in err.value.messages[0].hint
    with pytest.raises(ModelError) as err:
        class BadGroup(models.Model):
            w = models.Float('w', ASG='OPS')

            class Meta:
                access = {'OPS': {'users': ['ops'], 'level': level}}
    assert [m.id for m in err.value.messages] == ['devioc.E027'] and "group 'OPS'" in str(err.value)


def test_open_groups_of_a_site_file_carry_their_level(tmp_path):
    site = tmp_path / 'site.acf'
    site.write_text('UAG(ops) { "ops" }\n'
                    'ASG(DEFAULT) { RULE(1, READ) RULE(0, WRITE) RULE(1, WRITE) { UAG(ops) } }\n'
                    'ASG(OPEN) { RULE(0, WRITE) RULE(1, WRITE, TRAPWRITE) }\n'
                    'ASG(SHUT) { RULE(1, READ) }\n')
    assert access.open_groups(site) == {'DEFAULT': 0, 'OPEN': 1}


class SiteUser(models.Model):
    w = models.Float('w')                               # DEFAULT
    sp = models.Float('sp', ASG='OPS')
    ro = models.Float('ro', read_only=True)


@pytest.mark.parametrize('text, warned', [
    ('ASG(DEFAULT) { RULE(1, WRITE) }\n', ['DEFAULT']),                                  # the usual site DEFAULT
    ('ASG(DEFAULT) { RULE(0, WRITE) }\nASG(OPS) { RULE(1, WRITE) { UAG(ops) } }\n', ['OPS']),  # a trusted few
    ('ASG(DEFAULT) { RULE(0, WRITE) }\nASG(OPS) { RULE(0, WRITE) }\nASG(X) { RULE(1, WRITE) }\n', []),  # X unused
    ('ASG(DEFAULT) { RULE(1, READ) RULE(0, WRITE) } # RULE(1, WRITE)\nASG(OPS) { RULE(0,WRITE) }\n', []),
])
def test_a_site_file_that_opens_links_to_clients_is_a_warning(tmp_path, text, warned):
    """devioc.W005: a site's file whose group of a writable field lets clients write level-1 fields
    (links): any such client can point a link at a read-only record and write it through the
    database. Only the groups the model's writable fields use (DEFAULT always) are named."""
    site = tmp_path / 'site.acf'
    site.write_text('UAG(ops) { "ops" }\n' + text + 'ASG(DEVIOC_RO) { RULE(1, READ) }\n')
    messages = access.check_site_level(SiteUser, site)
    assert [m.id for m in messages] == ['devioc.W005'] * bool(warned)
    for name in warned:
        assert f'ASG {name}' in messages[0].msg and 'read-only' in messages[0].msg
    assert access.check_site_level(models.ModelType('NoReadOnly', (models.Model,), {'w': models.Float('w')}),
                                   site, health=False) == []    # nothing read-only: nothing to warn of


def test_a_model_and_devioc_check_say_w005(tmp_path, device, monkeypatch, caplog):
    from click.testing import CliRunner

    from devioc.cli import main
    from devioc.models import _site_acf

    site = tmp_path / 'site.acf'
    site.write_text('ASG(DEFAULT) { RULE(1, WRITE) }\nASG(OPS) { RULE(1, READ) }\nASG(DEVIOC_RO) { RULE(1, READ) }\n')
    with caplog.at_level('WARNING', logger='devioc.checks'):
        assert _site_acf(SiteUser, site, {'device': device}, True) == site.resolve()
    assert 'devioc.W005' in caplog.text and 'ASG DEFAULT' in caplog.text
    (tmp_path / 'site_user.py').write_text("from devioc import models\n\n\nclass S(models.Model):\n"
                                           "    x = models.Float('x')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(main, ['check', 'site_user:S', '--device', 'DEV', '--acf', str(site)])
    assert result.exit_code == 0 and 'devioc.W005' in result.output, result.output   # health records are read-only


# -- live: clients of this user and of another


@pytest.fixture
def plant(device, ca_port):
    model = Plant(device, ca_port=ca_port)
    yield model
    model.shutdown()


def test_no_client_can_rewire_a_link_to_write_a_read_only_record(plant, ca_env):
    """The reviewer's bypass: point a writable record's OUT (or a calcout's OUT) at a read-only
    record, then write the writable one. Both rewires are refused, to this user and to uid 65534;
    the read-only records keep the app's values; the values themselves stay writable."""
    device = plant.device_name
    assert plant.ro.put(1.5, wait=True) and plant.temp.put(2.5, wait=True)
    users = [[epics_tool('caput')]]
    try:
        users.append(tool_as_other_user('caput'))
    except pytest.skip.Exception:
        pass   # not root: the same-user client is still checked
    for caput in users:
        for link, target in (('w.OUT', 'ro'), ('calc.OUT', 'temp'), ('w.FLNK', 'ro'), ('calc.INPA', 'ro')):
            result = _put(caput, f'{device}:{link}', f'{device}:{target} PP', ca_env)
            assert _refused(result), (caput[-1], link, result.stdout, result.stderr)
        for name, value in (('w', '666'), ('calc', '7'), ('calc.OVAL', '8')):
            result = _put(caput, f'{device}:{name}', value, ca_env)
            assert result.returncode == 0, (caput[-1], name, result.stdout, result.stderr)
        for name in ('w.HIHI', 'w.SCAN', 'w.PROC', 'w.DESC', 'w.DISA'):
            value = {'w.SCAN': '1 second', 'w.DESC': 'x'}.get(name, '1')
            assert _refused(_put(caput, f'{device}:{name}', value, ca_env)), (caput[-1], name)
    assert caget(f'{device}:ro', ca_env) == '1.5' and caget(f'{device}:temp', ca_env) == '2.5'
    assert caget(f'{device}:w.OUT', ca_env) == '' and caget(f'{device}:w', ca_env) == '666'


def test_the_app_writes_configuration_fields_clients_may_not(plant, ca_env):
    """The app's own field puts beyond the clients' level go through softIoc's shell and land."""
    device = plant.device_name
    assert plant.w.field('HIHI').put(9.5, wait=True)
    assert plant.w.field('HHSV').put('MAJOR', wait=True)
    assert plant.w.field('DESC').put('gap, set by app', wait=True)
    assert plant.ro.field('HIGH').put(3.0, wait=True)
    assert caget(f'{device}:w.HIHI', ca_env) == '9.5' and caget(f'{device}:w.DESC', ca_env) == 'gap, set by app'
    assert caget(f'{device}:ro.HIGH', ca_env) == '3'
    assert plant.w.put(10.0, wait=True)
    wait_for(lambda: caget(f'{device}:w.SEVR', ca_env) == 'MAJOR', what='the HIHI alarm the app configured')


def test_the_same_rewire_over_pva_is_refused(device, ca_port, ca_env):
    """softIocPVA's QSRV checks the same levels: pvput to a link field is refused, to VAL accepted."""
    try:
        pvput = epics_tool('pvput')
    except Exception:
        pytest.skip('no pvput')
    model = Plant(device, ca_port=ca_port, pva=True)
    try:
        assert model.ro.put(1.5, wait=True)
        link = subprocess.run([pvput, '-w', '5', f'{device}:w.OUT', f'{device}:ro PP'], env=ca_env,
                              capture_output=True, text=True, timeout=20)
        value = subprocess.run([pvput, '-w', '5', f'{device}:w', '4'], env=ca_env, capture_output=True, text=True,
                               timeout=20)
        assert link.returncode != 0, link.stdout + link.stderr
        assert value.returncode == 0, value.stdout + value.stderr
        assert caget(f'{device}:w.OUT', ca_env) == '' and caget(f'{device}:ro', ca_env) == '1.5'
    finally:
        model.shutdown()


def test_access_level_1_gives_clients_the_configuration_back(device, ca_port, ca_env):
    """``Meta.access_level = 1``: the original devioc's open fields (a client sets HIHI and SCAN)."""
    model = OpenPlant(device, ca_port=ca_port)
    try:
        caput = [epics_tool('caput')]
        for name, value in (('w.HIHI', '4'), ('w.SCAN', '1 second'), ('w.DESC', 'ops')):
            result = _put(caput, f'{device}:{name}', value, ca_env)
            assert result.returncode == 0, (name, result.stdout, result.stderr)
        assert caget(f'{device}:w.HIHI', ca_env) == '4' and caget(f'{device}:w.SCAN', ca_env) == '1 second'
        assert _refused(_put(caput, f'{device}:ro', '9', ca_env))   # read_only holds at every level
    finally:
        model.shutdown()


def test_a_groups_level_is_its_own(device, ca_port, ca_env):
    """A group with 'level': 1 lets its writers set HIHI; a group without it, values only; another
    user writes neither."""
    model = Levels(device, ca_port=ca_port)
    try:
        mine = [epics_tool('caput')]
        assert _put(mine, f'{device}:ops.HIHI', '5', ca_env).returncode == 0
        assert _put(mine, f'{device}:vals', '6', ca_env).returncode == 0
        assert _refused(_put(mine, f'{device}:vals.HIHI', '5', ca_env))
        assert caget(f'{device}:ops.HIHI', ca_env) == '5'
        try:
            other = tool_as_other_user('caput')
        except pytest.skip.Exception:
            return
        assert _refused(_put(other, f'{device}:ops', '1', ca_env))
        assert _refused(_put(other, f'{device}:ops.HIHI', '1', ca_env))
    finally:
        model.shutdown()


def test_a_site_file_open_at_level_0_keeps_the_apps_value_puts_on_ca(device, ca_port, ca_env, tmp_path):
    """A site DEFAULT that every client writes at level 0 only: the app's VAL puts stay CA puts, its
    HIHI put goes through the shell, and both land."""
    site = tmp_path / 'site.acf'
    site.write_text('ASG(DEFAULT) { RULE(1, READ) RULE(0, WRITE) }\nASG(DEVIOC_RO) { RULE(1, READ) }\n')
    model = Plant(device, ca_port=ca_port, acf=site)
    try:
        assert not model.w._shell and model.ro._shell
        assert model.w.put(3.0, wait=True) and model.w.field('HIHI').put(2.0, wait=True)
        assert caget(f'{device}:w', ca_env) == '3' and caget(f'{device}:w.HIHI', ca_env) == '2'
        assert _refused(_put([epics_tool('caput')], f'{device}:w.HIHI', '8', ca_env))
    finally:
        model.shutdown()


def test_a_waited_shell_put_to_a_disabled_record_is_false(plant, ca_env):
    """DISP=1 makes softIoc refuse puts to a record's fields; dbpf says so only by printing the old
    value, so a waited put through the shell (a configuration field, a read-only record) reads DISP
    and returns False, as a CA put-callback would; DISP itself stays writable."""
    device = plant.device_name
    assert plant.w._shell is False and plant.ro._shell is True
    for pv in (plant.w, plant.ro):
        assert pv.field('DISP').put(1, wait=True)
        assert pv.field('HIHI').put(5.0, wait=True) is False
        assert caget(f'{pv.name}.HIHI', ca_env) == '0'
        assert pv.field('DISP').put(0, wait=True)
        assert pv.field('HIHI').put(5.0, wait=True) is True
    assert plant.ro.field('DISP').put(1, wait=True)
    assert plant.ro.put(7.0, wait=True) is False and caget(f'{device}:ro', ca_env) == '0'
    assert plant.ro.field('DISP').put(0, wait=True) and plant.ro.put(7.0, wait=True)
    assert caget(f'{device}:ro', ca_env) == '7'


class Scanned(models.Model):
    level = models.Float('level', SCAN='.1 second', prec=1)
    shown = models.FloatInput('shown', SCAN='.1 second', prec=1)   # read-only: its PROC through the shell too


class ScanningApp:
    def __init__(self):
        self.count = 0

    def scan_level(self, pv, ioc):
        self.count += 1
        return float(self.count)

    def scan_shown(self, pv, ioc):
        return 2.5


@pytest_twisted.inlineCallbacks
def test_scanned_fields_publish_at_the_default_level(run_model, ca_env):
    """scan_<field> writes VAL then PROC, a configuration field clients may not write at level 0:
    the app's PROC goes through the shell and every scan publishes, read-only fields included."""
    app = ScanningApp()
    ioc = run_model(Scanned, callbacks=app)
    assert ioc._hooks.proc['level']._shell and ioc._hooks.proc['shown']._shell
    yield until(lambda: app.count >= 5, 'five scans')
    yield until(lambda: float(caget(f'{ioc.device_name}:level', ca_env)) >= 4, 'the scanned values published')
    yield until(lambda: caget(f'{ioc.device_name}:shown', ca_env) == '2.5', 'the read-only scanned value')
    assert _refused(_put([epics_tool('caput')], f'{ioc.device_name}:level.SCAN', 'Passive', ca_env))


def test_a_site_file_must_keep_the_hidden_alarm_record_read_only(tmp_path, device):
    """An alarm=True field's hidden record is in DEVIOC_RO: a site file without that group is E027
    (softIoc would put the record in DEFAULT, where a client could set its HIHI or INP)."""
    class Alarmed(models.Model):
        heater = models.Float('heater', alarm=True)

    site = tmp_path / 'site.acf'
    site.write_text('ASG(DEFAULT) { RULE(1, READ) RULE(0, WRITE) }\n')
    with pytest.raises(ModelError) as err:
        Alarmed(device, acf=site)
    assert [(m.id, m.obj) for m in err.value.messages] == [('devioc.E027', 'Alarmed.heater')]
    assert 'ASG(DEVIOC_RO) { RULE(1, READ) }' in str(err.value)
    assert access.uses_access(Alarmed)   # the rendered file is loaded for it without acf= too


def test_access_level_1_warns_that_links_reach_read_only_records():
    """devioc.W005 for devioc's own file: every client may rewire links at level 1 while the model
    has read-only records (health records count); none at level 0, none when DEFAULT is a group of
    its own, none without any read-only record."""
    from devioc.checks import check_class

    def w005(model_class):
        return [m for m in check_class(model_class) if m.id == 'devioc.W005']

    warned = w005(OpenPlant)
    assert len(warned) == 1 and 'ro, temp' in warned[0].msg and warned[0].obj == 'OpenPlant.Meta.access_level'
    assert w005(Plant) == []

    class Bare(models.Model):
        w = models.Float('w')

        class Meta:
            access_level = 1
            health = False

    class Grouped(OpenPlant):
        class Meta:
            access_level = 1
            access = {'DEFAULT': {'users': ['ops']}}

    assert w005(Bare) == [] and w005(Grouped) == []
    Bare.Meta.health = True
    assert 'the health records' in w005(Bare)[0].msg
