"""write_<field>(pv, value, ioc): called for every client write to a field (same value or not, every
record kind), never for the initial value, the app's own puts, or processing that is no write (a
Toggle's return to 0); do_<field> keeps its meaning beside it. Live softIoc and the C caput."""
import pytest
import pytest_twisted
from twisted.internet import reactor, task

from devioc import models
from devioc.checks import ModelError, check_callbacks
from devioc.testing import caget, caput


class Panel(models.Model):
    level = models.Float('level', max_val=100, min_val=0)
    count = models.Integer('count')
    mode = models.Enum('mode', choices=['IDLE', 'RUN', 'STOP'])
    go = models.Toggle('go', high=0.3)
    label = models.String('label', max_length=20)
    note = models.String('note', max_length=80)
    wave = models.Array('wave', type=float, length=4)
    chained = models.Integer('chained', FLNK='$(device):after')
    after = models.Calc('after', calc='A+1', inpa='$(device):chained NPP')
    plain = models.Integer('plain')


class App:
    def __init__(self):
        self.writes = []
        self.changes = []

    def write_level(self, pv, value, ioc):
        self.writes.append(('level', float(value)))

    def write_count(self, pv, value, ioc):
        self.writes.append(('count', int(value)))

    def write_mode(self, pv, value, ioc):
        self.writes.append(('mode', int(value)))

    def write_go(self, pv, value, ioc):
        self.writes.append(('go', int(value)))

    def write_label(self, pv, value, ioc):
        self.writes.append(('label', value))

    def write_note(self, pv, value, ioc):
        self.writes.append(('note', value))

    def write_wave(self, pv, value, ioc):
        self.writes.append(('wave', [float(v) for v in value]))

    def write_chained(self, pv, value, ioc):
        self.writes.append(('chained', int(value), pv is ioc.chained))

    def do_count(self, pv, value, ioc):
        self.changes.append(('count', int(value)))


@pytest_twisted.inlineCallbacks
def settle(app, seconds=0.4):
    """Let the reactor run until no callback came for ``seconds``."""
    count = -1
    while count != len(app.writes) + len(app.changes):
        count = len(app.writes) + len(app.changes)
        yield task.deferLater(reactor, seconds, lambda: None)


@pytest.fixture
def panel(run_model, ca_port):
    app = App()
    return run_model(Panel, callbacks=app, ca_port=ca_port), app


@pytest_twisted.inlineCallbacks
def test_every_client_write_is_reported_same_value_too(panel, ca_env):
    """Two writes of one value are two calls, for ao, longout, mbbo, bo, stringout, a long string
    (CHAR waveform) and a DOUBLE waveform; the initial values are not reported."""
    ioc, app = panel
    yield settle(app)
    assert app.writes == []
    dev = ioc.device_name
    for _ in range(2):
        caput(f'{dev}:level', '12.5', ca_env)
        caput(f'{dev}:count', '7', ca_env)
        caput(f'{dev}:mode', 'RUN', ca_env)
        caput(f'{dev}:label', 'hello', ca_env)
        caput(f'{dev}:note', 'x' * 60, ca_env, '-S')
        caput(f'{dev}:wave', [1, 2, 3], ca_env)
    yield settle(app)
    expected = [('level', 12.5), ('count', 7), ('mode', 1), ('label', 'hello'), ('note', 'x' * 60),
                ('wave', [1.0, 2.0, 3.0])]
    assert app.writes == expected * 2


@pytest_twisted.inlineCallbacks
def test_the_apps_own_puts_are_not_reported_but_still_reach_the_record(panel, ca_env):
    """ioc.<field>.put() writes the record (caget sees it, do_<field> runs) but calls no write_<field>."""
    ioc, app = panel
    yield settle(app)
    del app.changes[:]
    ioc.count.put(41)
    ioc.label.put('from app')
    ioc.mode.put('STOP')
    ioc.wave.put([5.0, 6.0])
    ioc.note.put('y' * 50)
    assert ioc.level.put(3.25, wait=True)
    yield settle(app)
    assert app.writes == []
    assert app.changes == [('count', 41)]
    dev = ioc.device_name
    assert caget(f'{dev}:count', ca_env) == '41'
    assert caget(f'{dev}:label', ca_env) == 'from app'
    assert caget(f'{dev}:mode', ca_env) == 'STOP'
    assert caget(f'{dev}:level', ca_env) == '3.25'
    assert caget(f'{dev}:note', ca_env, '-S') == 'y' * 50
    assert ioc.level.get() == 3.25
    # a client write after the app's put is reported again
    caput(f'{dev}:count', '41', ca_env)
    yield settle(app)
    assert app.writes == [('count', 41)]


@pytest_twisted.inlineCallbacks
def test_a_toggles_return_to_zero_is_no_write(panel, ca_env):
    """caput go 1: one call with 1; the bo's own HIGH reset to 0 is not a client write."""
    ioc, app = panel
    yield settle(app)
    caput(f'{ioc.device_name}:go', '1', ca_env)
    yield task.deferLater(reactor, 0.8, lambda: None)   # HIGH is 0.3 s
    yield settle(app)
    assert app.writes == [('go', 1)]
    assert ioc.go.get() == 0


@pytest_twisted.inlineCallbacks
def test_clamped_write_reports_the_value_the_record_holds_and_the_models_flnk_still_runs(panel, ca_env):
    """A write beyond DRVH reports the clamped value; a field's own FLNK runs after the detector."""
    ioc, app = panel
    yield settle(app)
    dev = ioc.device_name
    caput(f'{dev}:level', '250', ca_env)
    caput(f'{dev}:chained', '9', ca_env)
    yield settle(app)
    assert app.writes == [('level', 100.0), ('chained', 9, True)]
    assert caget(f'{dev}:after', ca_env) == '10'


def test_write_callbacks_are_checked_as_do_callbacks():
    """write_<name> matching no field is E011 with a did-you-mean; a wrong signature is E010; the
    lower-case form is accepted; a write_ method that is no callback (other arguments) is left alone."""
    class Model(models.Model):
        Gain = models.Float('gain')
        value = models.Float('value')

    class Bad:
        def write_valeu(self, pv, value, ioc):
            pass

        def write_value(self, pv):
            pass

    class Good:
        def write_gain(self, pv, value, ioc):
            pass

        def write_file(self, path):   # an ordinary method of an app written before write_<field>
            pass

    messages = check_callbacks(Model, Bad())
    assert sorted(m.id for m in messages) == ['devioc.E010', 'devioc.E011']
    assert [m.hint for m in messages if m.id == 'devioc.E011'] == ['did you mean write_value?']
    assert check_callbacks(Model, Good()) == []


def test_a_name_without_room_for_the_hidden_records_is_refused(run_model):
    """The hidden records' names (<pv>:_app) must fit EPICS' 60 bytes too: E001 naming write_<field>."""
    class Long(models.Model):
        field = models.Integer('f' * 50)

    class LongApp:
        def write_field(self, pv, value, ioc):
            pass

    with pytest.raises(ModelError, match=r'devioc.E001.*write_'):
        run_model(Long, device_name='DEV12', callbacks=LongApp())


class Inputs(models.Model):
    # client writes are the point here: the *Input kinds are read-only by default since issue 14 (E011)
    f = models.FloatInput('f', read_only=False)
    i = models.IntegerInput('i', read_only=False)
    b = models.BoolInput('b', read_only=False)
    e = models.EnumInput('e', choices=['A', 'B', 'C'], read_only=False)
    s = models.StringInput('s', max_length=20, read_only=False)
    bits = models.BinaryOutput('bits')
    bi = models.BinaryInput('bi', read_only=False)


class InputsApp:
    def __init__(self):
        self.writes = []
        self.changes = []

    def __getattr__(self, name):
        if name.startswith('write_') and name[6:] in Inputs._fields:
            return lambda pv, value, ioc: self.writes.append((name[6:], value))
        raise AttributeError(name)


@pytest_twisted.inlineCallbacks
def test_every_record_kind_reports_client_writes(run_model, ca_port, ca_env):
    """Input kinds (ai, longin, bi, mbbi, stringin, mbbiDirect) and mbboDirect load with their hidden
    records and report a client write each, with the record's value type."""
    app = InputsApp()
    ioc = run_model(Inputs, callbacks=app, ca_port=ca_port)
    yield settle(app, 0.3)
    assert app.writes == []
    dev = ioc.device_name
    for name, value in [('f', '1.5'), ('i', '3'), ('b', '1'), ('e', 'C'), ('s', 'text'), ('bits', '5'),
                        ('bi', '6')]:
        caput(f'{dev}:{name}', value, ca_env)
    yield settle(app, 0.3)
    assert sorted(app.writes) == sorted([('f', 1.5), ('i', 3), ('b', 1), ('e', 2), ('s', 'text'), ('bits', 5),
                                         ('bi', 6)])


def test_write_on_a_calc_is_refused(run_model):
    """A client put to a calc's VAL never processes it: write_<calc> is E011, said before softIoc runs."""
    class Sum(models.Model):
        total = models.Calc('total', calc='A+B')

    class SumApp:
        def write_total(self, pv, value, ioc):
            pass

    with pytest.raises(ModelError, match=r'(?s)devioc.E011.*write_total can never be called.*calc record'):
        run_model(Sum, callbacks=SumApp())


def test_hidden_records_as_rendered():
    """For a field with write_<field>: the field's FLNK goes to the detector, the model's own FLNK moves
    after it, and the twin, gate and detector are rendered as the module says; other fields unchanged."""
    from devioc import access, render, writes

    class Two(models.Model):
        a = models.Integer('a', FLNK='$(device):b')
        b = models.Integer('b')

    class TwoApp:
        def write_a(self, pv, value, ioc):
            pass

    records = render.expand_model(Two, 'D')
    plans, extra = writes.plan(Two, TwoApp(), records)
    assert list(plans) == ['a'] and plans['a'].app_name == 'D:a:_app' and plans['a'].watch_name == 'D:a:_w'
    assert records['a'][1]['FLNK'] == 'D:a:_w' and 'FLNK' not in records['b'][1]
    assert extra == [
        ('longout', 'D:a:_app', {'DESC': "devioc: the app's puts", 'OUT': 'D:a PP', 'ASG': 'DEVIOC_RO'}),
        ('calc', 'D:a:_wc', {'DESC': 'devioc: 1 on a client put', 'INPA': 'D:a.PUTF NPP',
                             'INPB': 'D:a:_app.PACT NPP', 'CALC': 'A&&!B'}),
        ('longin', 'D:a:_w', {'DESC': 'devioc: client writes', 'INP': 'D:a NPP', 'SDIS': 'D:a:_wc PP', 'DISV': 0,
                              'MDEL': -1, 'FLNK': 'D:b'}),
    ]
    # no client writes a hidden record (devioc.access): the model renders them all in DEVIOC_RO
    assert [fields['ASG'] for _, _, fields in access.guard_hidden(extra)] == ['DEVIOC_RO'] * 3
    text = render.render_db(Two, 'D', records=records, extra=extra)
    assert 'record(longin, "D:a:_w")' in text and 'field(FLNK, "D:a:_w")' in text
    assert writes.plan(Two, object(), render.expand_model(Two, 'D')) == ({}, [])   # no write_: nothing added


class Dial(models.Model):
    sp = models.Integer('SP')


class DialLogic:
    def __init__(self):
        self.writes = []
        self.changes = []

    def write_sp(self, pv, value, ioc):
        self.writes.append((pv.name, int(value), ioc.sp is pv))


dial_logic = DialLogic()


class Dials(models.Model):
    left = models.Group(Dial, prefix='L:', callbacks=dial_logic)


@pytest_twisted.inlineCallbacks
def test_a_groups_callbacks_object_gets_write_callbacks_with_the_group_as_ioc(run_model, ca_port, ca_env):
    """Group(..., callbacks=obj): obj.write_sp gets each client write to <device>:L:SP, with the group's
    view as ioc (ioc.sp is the PV)."""
    ioc = run_model(Dials, ca_port=ca_port)
    for value in ('4', '4'):
        caput(f'{ioc.device_name}:L:SP', value, ca_env)
    ioc.left.sp.put(9)
    yield settle(dial_logic)
    assert dial_logic.writes == [(f'{ioc.device_name}:L:SP', 4, True)] * 2
