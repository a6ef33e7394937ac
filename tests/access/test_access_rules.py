"""Access rules from the model: class Meta: access renders an .acf that the .cmd loads; clients of
other users and hosts write where a rule allows and are refused elsewhere; acf= loads a site's file;
devioc check refuses an ASG no rule defines (devioc.E027)."""
import getpass
import socket
import subprocess

import pytest
from click.testing import CliRunner

from devioc import access, checks, models, render
from devioc.checks import ModelError
from devioc.testing import caget, epics_tool, tool_as_other_user

def run_as_other(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run ``argv`` (from :func:`tool_as_other_user`) with ``env``, HOME pointed at /tmp."""
    return subprocess.run(argv, env={**env, 'HOME': '/tmp', 'USER': 'nobody'}, capture_output=True, text=True,
                          timeout=20)

ME = getpass.getuser()


class Guarded(models.Model):
    ops = models.Float('ops', ASG='OPS')              # written by this user only
    hosts = models.Float('hosts', ASG='HERE')         # written from this host only
    away = models.Float('away', ASG='AWAY')           # written from a host that is not this one
    nobody = models.Float('nobody', ASG='LOCKED')     # a group with neither list: nobody writes
    free = models.Float('free')                       # DEFAULT: everyone writes
    temp = models.FloatInput('temp')                  # read-only

    class Meta:
        access = {
            'OPS': {'users': [ME]},
            'HERE': {'hosts': [socket.gethostname()]},
            'AWAY': {'hosts': ['elsewhere.invalid']},
            'LOCKED': {},
        }


def _put(argv, name, value, env):
    return subprocess.run([*argv, '-c', '-w', '3', name, value], env=env, capture_output=True, text=True, timeout=20)


@pytest.fixture
def guarded(device, ca_port):
    model = Guarded(device, ca_port=ca_port)
    yield model
    model.shutdown()


def _refused(result):
    return result.returncode != 0 and 'Write access denied' in result.stderr + result.stdout


def test_rules_by_user_and_host_for_this_user(guarded, ca_env):
    """This user on this host: OPS, HERE and DEFAULT take its caput; AWAY, LOCKED and read-only refuse it."""
    caput = [epics_tool('caput')]
    device = guarded.device_name
    for field in ('ops', 'hosts', 'free'):
        assert _put(caput, f'{device}:{field}', '1.5', ca_env).returncode == 0, field
        assert caget(f'{device}:{field}', ca_env) == '1.5'
    for field in ('away', 'nobody', 'temp'):
        assert _refused(_put(caput, f'{device}:{field}', '1.5', ca_env)), field
        assert caget(f'{device}:{field}', ca_env) == '0'


def test_rules_by_user_for_another_user(guarded, ca_env, tmp_path):
    """The C caput run as uid 65534 (another user, same host): refused on OPS (not its user), allowed
    on HERE (its host) and DEFAULT; everyone reads."""
    caput = tool_as_other_user('caput')
    caget_other = tool_as_other_user('caget')
    device = guarded.device_name
    assert _refused(_put(caput, f'{device}:ops', '2', ca_env))
    assert _put(caput, f'{device}:hosts', '3', ca_env).returncode == 0
    assert _put(caput, f'{device}:free', '4', ca_env).returncode == 0
    assert _refused(_put(caput, f'{device}:temp', '5', ca_env))
    read = run_as_other([*caget_other, '-w', '3', '-t', f'{device}:hosts'], ca_env)
    assert read.stdout.strip() == '3', read.stderr
    assert caget(f'{device}:ops', ca_env) == '0'


def test_the_app_writes_every_group(guarded):
    """The app's own puts go through whatever the rules say to clients: through the shell for every
    restricted group (this process's user is not among AWAY's or LOCKED's writers), CA for DEFAULT."""
    assert [f for f in ('ops', 'hosts', 'away', 'nobody', 'free', 'temp') if getattr(guarded, f)._shell] == \
        ['ops', 'hosts', 'away', 'nobody', 'temp']
    for field in ('ops', 'hosts', 'away', 'nobody', 'free', 'temp'):
        assert getattr(guarded, field).put(6.5, wait=True)
        assert getattr(guarded, field).get() == 6.5


def test_the_rendered_acf_and_the_cmd_that_loads_it(guarded):
    """The .acf sits beside the .db; the .cmd loads it with asSetFilename before dbLoadRecords and
    iocInit; EPICS' ascheck accepts it."""
    directory = guarded.directory
    acf = directory / 'Guarded.acf'
    cmd = (directory / 'Guarded.cmd').read_text().splitlines()
    assert f'asSetFilename("{acf}")' in cmd
    assert cmd.index(f'asSetFilename("{acf}")') < cmd.index('dbLoadRecords("Guarded.db")') < cmd.index('iocInit()')
    text = acf.read_text()
    assert text == render.render_acf(Guarded, guarded.device_name)
    checked = subprocess.run([epics_tool('ascheck'), str(acf)], capture_output=True, text=True, timeout=20)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), checked.stderr


def test_acf_text():
    """The groups as EPICS access security: everyone reads, writers per group."""
    text = access.render_acf(Guarded, 'DEV')
    assert f'UAG(OPS_users) {{ "{ME}" }}' in text
    assert 'HAG(AWAY_hosts) { "elsewhere.invalid" }' in text
    assert 'ASG(DEFAULT) {\n    RULE(1, READ)\n    RULE(0, WRITE)\n}' in text   # values, not configuration
    assert 'ASG(DEVIOC_RO) {\n    RULE(1, READ)\n}' in text
    assert 'ASG(LOCKED) {\n    RULE(1, READ)\n}' in text
    assert 'ASG(OPS) {\n    RULE(1, READ)\n    RULE(0, WRITE) {\n        UAG(OPS_users)\n    }\n}' in text


def test_default_group_can_be_restricted():
    class Strict(models.Model):
        level = models.Float('level')

        class Meta:
            access = {'DEFAULT': {'users': ['ops'], 'hosts': ['console1']}}

    text = access.render_acf(Strict, 'DEV')
    assert 'ASG(DEFAULT) {\n    RULE(1, READ)\n    RULE(0, WRITE) {\n        UAG(DEFAULT_users)\n' \
           '        HAG(DEFAULT_hosts)\n    }\n}' in text


def test_a_model_without_access_renders_no_acf(device, ca_port):
    """Old models (no read-only field, no Meta.access) run as before: no .acf, no asSetFilename."""
    class Plain(models.Model):
        level = models.Float('level')

    assert not access.uses_access(Plain)
    assert 'asSetFilename' not in render.render_cmd(Plain, 'DEV')


def _ids(messages):
    return [(m.id, m.obj) for m in messages]


def test_e027_an_asg_no_rule_defines():
    """With Meta.access, an ASG it does not define is refused when the class is built."""
    with pytest.raises(ModelError) as err:
        class Typo(models.Model):
            level = models.Float('level', ASG='OSP')

            class Meta:
                access = {'OPS': {'users': ['ops']}}
    assert _ids(err.value.messages) == [('devioc.E027', 'Typo.level')]
    assert "ASG='OSP'" in str(err.value) and 'OPS' in str(err.value)


@pytest.mark.parametrize('bad', [
    ['OPS'], {'OPS': ['ops']}, {'OPS': {'users': 'ops'}}, {'OPS': {'user': ['ops']}}, {'OPS': {'users': ['a"b']}},
    {'bad name': {}}, {access.RO_GROUP: {}}, {'OPS': {'hosts': ['']}},
])
def test_e027_malformed_meta_access(bad):
    with pytest.raises(ModelError) as err:
        class Bad(models.Model):
            level = models.Float('level')

            class Meta:
                access = bad
    assert {m.id for m in err.value.messages} == {'devioc.E027'}


def test_w004_without_any_rules_stays_a_warning():
    """No Meta.access and no acf=: an ASG is only a warning (the original devioc's models keep running),
    which says how to define it."""
    class Old(models.Model):
        temp = models.FloatInput('temp', ASG='RO')

    messages = checks.check_class(Old)
    assert _ids(messages) == [('devioc.W004', 'Old.temp')]
    assert 'Meta' in messages[0].hint and 'acf=' in messages[0].hint


def test_read_only_and_asg_contradict():
    with pytest.raises(ModelError, match='contradict'):
        class Both(models.Model):
            level = models.Float('level', read_only=True, ASG='OPS')

            class Meta:
                access = {'OPS': {}}
    with pytest.raises(ModelError, match='read_only must be True or False'):
        class Odd(models.Model):
            level = models.Float('level', read_only='yes')


def test_an_input_with_an_asg_follows_its_group():
    """An *Input kind given ASG= is not read-only: the group's rules decide."""
    class Grouped(models.Model):
        temp = models.FloatInput('temp', ASG='OPS')

        class Meta:
            access = {'OPS': {'users': ['ops']}}

    assert not Grouped._fields['temp'].read_only
    assert 'field(ASG, "OPS")' in render.render_db(Grouped, 'D')


SITE = """UAG(staff) { "ops" }
ASG(DEFAULT) { RULE(1, WRITE) }
ASG(OPS) { RULE(1, READ) RULE(1, WRITE) { UAG(staff) } }
ASG(DEVIOC_RO) { RULE(1, READ) }
"""


class SiteModel(models.Model):
    level = models.Float('level', ASG='OPS')
    temp = models.FloatInput('temp')


def test_site_acf_is_loaded_instead(device, ca_port, ca_env, tmp_path):
    """Model(acf=path) loads the site's file: its OPS group (user 'ops' only) refuses this user."""
    site = tmp_path / 'site.acf'
    site.write_text(SITE)
    model = SiteModel(device, ca_port=ca_port, acf=site)
    try:
        cmd = (model.directory / 'SiteModel.cmd').read_text()
        assert f'asSetFilename("{site}")' in cmd
        assert not (model.directory / 'SiteModel.acf').exists()
        assert _refused(_put([epics_tool('caput')], f'{device}:level', '3', ca_env))
        assert model.level.put(3.0, wait=True) and caget(f'{device}:level', ca_env) == '3'   # the app owns it
        assert model.temp.put(2.0, wait=True) and caget(f'{device}:temp', ca_env) == '2'
    finally:
        model.shutdown()


def test_site_acf_must_define_the_groups(tmp_path, device):
    site = tmp_path / 'site.acf'
    site.write_text('ASG(DEFAULT) { RULE(1, WRITE) }\n')
    with pytest.raises(ModelError) as err:
        SiteModel(device, acf=site)
    assert _ids(err.value.messages) == [('devioc.E027', 'SiteModel.level'), ('devioc.E027', 'SiteModel.temp')]
    assert 'ASG(DEVIOC_RO) { RULE(1, READ) }' in str(err.value)
    with pytest.raises(FileNotFoundError, match='missing.acf'):
        SiteModel(device, acf=tmp_path / 'missing.acf')


def test_cli_render_writes_the_acf_and_check_refuses(tmp_path, monkeypatch):
    from devioc.cli import main

    module = tmp_path / 'guarded_model.py'
    module.write_text('from devioc import models\n\n\nclass G(models.Model):\n'
                      "    level = models.Float('level', ASG='OPS')\n    temp = models.FloatInput('temp')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    runner = CliRunner()
    out = tmp_path / 'out'
    result = runner.invoke(main, ['render', 'guarded_model:G', '--device', 'DEV', '-o', str(out)])
    assert result.exit_code == 0, result.output
    assert (out / 'G.acf').read_text() == access.render_acf(
        __import__('guarded_model').G, 'DEV')
    assert 'asSetFilename("G.acf")' in (out / 'G.cmd').read_text()
    result = runner.invoke(main, ['check', 'guarded_model:G', '--device', 'DEV'])
    assert result.exit_code == 0 and 'devioc.W004' in result.output
    site = tmp_path / 'site.acf'
    site.write_text('ASG(DEFAULT) { RULE(1, WRITE) }\n')
    result = runner.invoke(main, ['check', 'guarded_model:G', '--device', 'DEV', '--acf', str(site)])
    assert result.exit_code == 1 and 'devioc.E027' in result.output and 'W004' not in result.output
    site.write_text(SITE)   # its groups open links (level 1) to clients while temp is read-only: W005 only
    result = runner.invoke(main, ['check', 'guarded_model:G', '--device', 'DEV', '--acf', str(site)])
    assert result.exit_code == 0 and 'no errors, 1 warning' in result.output, result.output
    assert 'devioc.W005' in result.output and 'ASG DEFAULT, OPS' in result.output
    site.write_text(SITE.replace('RULE(1, WRITE)', 'RULE(0, WRITE)'))
    result = runner.invoke(main, ['check', 'guarded_model:G', '--device', 'DEV', '--acf', str(site)])
    assert result.exit_code == 0 and 'no problems found' in result.output, result.output


def test_client_write_hooks_on_read_only_fields_are_refused():
    """write_/validate_ of a read-only field would never run, nor would blocking: refused at start."""
    from devioc.checks import ModelError

    class Readout(models.Model):
        temp = models.FloatInput('temp')                       # read-only by default
        level = models.FloatInput('level', read_only=False)
        held = models.Float('held', blocking=True, read_only=True)

    class App:
        def write_temp(self, pv, value, ioc): ...
        def validate_temp(self, pv, value, ioc): ...
        def write_level(self, pv, value, ioc): ...            # writable: fine

    with pytest.raises(ModelError) as info:
        Readout('NOSTART', callbacks=App())
    found = sorted((m.id, m.obj) for m in info.value.messages)
    assert found == [('devioc.E011', 'Readout.temp'), ('devioc.E011', 'Readout.temp'),
                     ('devioc.E026', 'Readout.held')], found
    assert 'read_only=False' in str(info.value)


def test_site_groups_ignore_comments_and_strings(tmp_path):
    """An ASG named only in a comment, or inside a quoted name, is not defined: softIoc would put that
    group's records in DEFAULT, where every client writes, so the check must not count it."""
    site = tmp_path / 'site.acf'
    site.write_text('# ASG(OPS) { RULE(1, WRITE) }  was removed\n'
                    'UAG(admins) { "ASG(FAKE)", "ops" }  # ASG(LATER)\n'
                    'ASG(DEFAULT) {\n    RULE(1, WRITE)\n}\n'
                    'ASG( DEVIOC_RO ) { RULE(1, READ) }\n'
                    'ASG("QUOTED") { RULE(1, READ) }\n')
    assert access.site_groups(site) == {'DEFAULT', 'DEVIOC_RO', 'QUOTED'}

    class Ops(models.Model):
        x = models.Float('x', ASG='OPS')

    with pytest.raises(ModelError, match="ASG='OPS'"):
        checks.raise_if(access.check_access(Ops, access.site_groups(site)))


class Written(models.Model):
    level = models.Float('level', ASG='OPS')
    mode = models.Enum('mode', choices=['AUTO', 'MANUAL', 'SERVICE'], ASG='OPS')
    text = models.String('text', ASG='OPS')
    valve = models.Toggle('valve', ASG='OPS')

    class Meta:
        access = {'OPS': {'users': [ME]}}


class WriteLog:
    def __init__(self):
        self.writes = []

    def write_level(self, pv, value, ioc):
        self.writes.append(('level', value))

    def write_mode(self, pv, value, ioc):
        self.writes.append(('mode', value))

    def write_text(self, pv, value, ioc):
        self.writes.append(('text', value))

    def write_valve(self, pv, value, ioc):
        self.writes.append(('valve', value))


def test_write_callbacks_of_a_restricted_group_see_clients_not_the_app(device, ca_port, ca_env):
    """A field of a restricted group is written by the app through the shell; its write_<field> must
    still see only client writes (the README: never the app's own puts), enum states by name too."""
    from twisted.internet import reactor

    app = WriteLog()
    model = Written(device, callbacks=app, ca_port=ca_port)
    try:
        assert all(getattr(model, f)._shell for f in ('level', 'mode', 'text', 'valve'))
        for value in (1.5, 2.5):
            assert model.level.put(value, wait=True) and model.level.get() == value
        for state in ('MANUAL', 2, 'AUTO'):
            assert model.mode.put(state, wait=True)
        assert model.mode.get() == 0
        assert model.text.put("it's $(x)", wait=True) and model.text.get() == "it's $(x)"
        assert model.valve.put(1, wait=True)
        # a client of an allowed user: seen
        caput = [epics_tool('caput')]
        assert _put(caput, f'{device}:level', '7', ca_env).returncode == 0
        assert _put(caput, f'{device}:mode', 'SERVICE', ca_env).returncode == 0
        deadline = __import__('time').monotonic() + 10
        while len(app.writes) < 2 and __import__('time').monotonic() < deadline:
            reactor.iterate(0.02)
        for _ in range(50):   # and a while more: any app put reported late would show now
            reactor.iterate(0.02)
        assert app.writes == [('level', 7.0), ('mode', 2)], app.writes
        assert caget(f'{device}:level', ca_env) == '7'
    finally:
        model.shutdown()


class ByMacro(models.Model):
    level = models.Float('level', ASG='$(group)')

    class Meta:
        access = {'OPS': {'users': ['someone-else']}}


def test_an_asg_given_by_a_macro_is_checked_and_written_as_it_expands(device, ca_port, ca_env, tmp_path,
                                                                      monkeypatch):
    """ASG='$(group)': with group=OPS the app still writes the field (through the shell: the group's
    rule refuses this user's CA put) and a client of this user is refused; with a group no rule
    defines, Model() and devioc check refuse it (E027) instead of softIoc putting it in DEFAULT."""
    model = ByMacro(device, ca_port=ca_port, macros={'group': 'OPS'})
    try:
        assert model.level._shell
        assert model.level.put(2.5, wait=True) and model.level.get() == 2.5
        assert _refused(_put([epics_tool('caput')], f'{device}:level', '9', ca_env))
        assert caget(f'{device}:level', ca_env) == '2.5'
    finally:
        model.shutdown()
    with pytest.raises(ModelError, match=r"ASG='\$\(group\)' \(that is 'TYPO'\)"):
        ByMacro(device, ca_port=ca_port, macros={'group': 'TYPO'})

    from devioc.cli import main

    (tmp_path / 'macro_model.py').write_text(
        'from devioc import models\n\n\nclass M(models.Model):\n'
        "    level = models.Float('level', ASG='$(group)')\n\n    class Meta:\n        access = {'OPS': {}}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    runner = CliRunner()
    result = runner.invoke(main, ['check', 'macro_model:M', '--device', 'DEV', '-m', 'group=TYPO'])
    assert result.exit_code == 1 and 'devioc.E027' in result.output, result.output
    result = runner.invoke(main, ['check', 'macro_model:M', '--device', 'DEV', '-m', 'group=OPS'])
    assert result.exit_code == 0 and 'no problems found' in result.output, result.output
    site = tmp_path / 'site.acf'
    site.write_text('ASG(DEFAULT) { RULE(1, WRITE) }\nASG(SITE) { RULE(1, READ) }\n')
    result = runner.invoke(main, ['check', 'macro_model:M', '--device', 'DEV', '-m', 'group=OPS', '--acf', str(site)])
    assert result.exit_code == 1 and 'devioc.E027' in result.output, result.output
    result = runner.invoke(main, ['check', 'macro_model:M', '--device', 'DEV', '-m', 'group=SITE', '--acf', str(site)])
    assert result.exit_code == 0, result.output


OPS_DEFAULT = """# a common site file: operators write, everyone else reads
UAG(ops) { "ops" }
ASG(DEFAULT) {
    RULE(1, READ)
    RULE(1, WRITE) {
        UAG(ops)
    }
}
ASG(OPEN) { RULE(1, WRITE, TRAPWRITE) }
ASG(CALCED) { RULE(1, WRITE) { CALC("1") } }
ASG(DEVIOC_RO) { RULE(1, READ) }
"""


def test_open_groups_of_a_site_file(tmp_path):
    """Only an unconditional RULE(1, WRITE) (or RULE(0, WRITE): values only) opens a group to every writer."""
    site = tmp_path / 'site.acf'
    site.write_text(OPS_DEFAULT + '# ASG(COMMENTED) { RULE(1, WRITE) }\n')
    assert access.open_groups(site) == {'OPEN': 1}
    site.write_text(SITE)
    assert access.open_groups(site) == {'DEFAULT': 1}


class SitePlain(models.Model):
    sp = models.Float('sp')                        # no ASG: the site's DEFAULT
    free = models.Float('free', ASG='OPEN')
    temp = models.FloatInput('temp')


def test_a_site_file_that_restricts_default_leaves_the_app_its_own_fields(device, ca_port, ca_env, tmp_path):
    """A site's DEFAULT written by its operators only: the app still writes its plain fields (through
    the shell; its CA put was refused, 'Write access denied'), clients of other users are refused,
    and a group the site opens to all stays a CA put."""
    site = tmp_path / 'site.acf'
    site.write_text(OPS_DEFAULT)
    model = SitePlain(device, ca_port=ca_port, acf=site)
    try:
        assert (model.sp._shell, model.free._shell, model.temp._shell) == (True, False, True)
        for att, value in (('sp', 2.5), ('free', 3.5), ('temp', 4.5)):
            pv = getattr(model, att)
            assert pv.put(value, wait=True) and pv.get() == value, att
            assert pv.field('HIHI').put(90, wait=True), att
        caput = [epics_tool('caput')]
        assert _refused(_put(caput, f'{device}:sp', '9', ca_env))
        assert _put(caput, f'{device}:free', '9', ca_env).returncode == 0
        assert caget(f'{device}:sp', ca_env) == '2.5'
    finally:
        model.shutdown()


def test_a_site_file_without_default_is_refused(tmp_path, device, monkeypatch):
    """softIoc gives records without an ASG no access at all when the file defines no DEFAULT (the
    app's own monitors then get no value): Model(acf=) and devioc check --acf refuse it."""
    site = tmp_path / 'site.acf'
    site.write_text('ASG(OPS) { RULE(1, READ) }\nASG(DEVIOC_RO) { RULE(1, READ) }\n')
    with pytest.raises(ModelError, match=r'defines no ASG\(DEFAULT\)'):
        SiteModel(device, acf=site)
    from devioc.cli import main

    (tmp_path / 'plain_model.py').write_text("from devioc import models\n\n\nclass P(models.Model):\n"
                                             "    x = models.Float('x')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(main, ['check', 'plain_model:P', '--device', 'DEV', '--acf', str(site)])
    assert result.exit_code == 1 and 'ASG(DEFAULT)' in result.output, result.output
