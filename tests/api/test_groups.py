"""models.Group: another model's records served under a prefix, with the group's own macros and
callbacks; checks apply to the expanded names; groups nest; a setpoint/readback pair built on it."""
import pytest
import pytest_twisted
from twisted.internet import reactor, task

from devioc import models
from devioc.checks import ModelError
from devioc.testing import caget, caput


class Axis(models.Model):
    """A setpoint/readback pair: the app moves the readback toward the setpoint."""
    sp = models.Float('SP', max_val='$(limit)', min_val=0, units='$(units)', prec=2)
    rbv = models.FloatInput('RBV', units='$(units)', prec=2)
    moving = models.BoolInput('MOVING')


class AxisLogic:
    """Callbacks of one axis, written for Axis alone: ``ioc`` is the group's view."""

    def __init__(self):
        self.seen = []

    def do_sp(self, pv, value, ioc):
        self.seen.append((pv.name, float(value)))
        ioc.moving.put(1)
        ioc.rbv.put(value)
        ioc.moving.put(0)


x_logic = AxisLogic()


class Stage(models.Model):
    x = models.Group(Axis, prefix='X:', callbacks=x_logic, limit=10, units='mm')
    y = models.Group(Axis, prefix='Y:', limit=5, units='deg')
    enabled = models.Toggle('enabled', high=0)


class StageApp:
    def __init__(self):
        self.writes = []

    def do_y_sp(self, pv, value, ioc):     # the model's own callback of a group's field
        ioc.y.rbv.put(value)

    def write_y_sp(self, pv, value, ioc):
        self.writes.append(float(value))


def test_group_records_are_fields_with_prefixed_names_and_their_own_macros():
    """Each of Axis's records once per group, under the group's prefix, with its macros applied."""
    assert Stage.pv_names('ST') == ['ST:X:SP', 'ST:X:RBV', 'ST:X:MOVING', 'ST:Y:SP', 'ST:Y:RBV', 'ST:Y:MOVING',
                                    'ST:enabled']
    assert Stage._fields['x_sp'].fields['DRVH'] == '10' and Stage._fields['y_sp'].fields['DRVH'] == '5'
    assert Stage._fields['x_rbv'].fields['EGU'] == 'mm' and Stage._fields['y_rbv'].fields['EGU'] == 'deg'
    assert Axis._fields['sp'].fields['DRVH'] == '$(limit)'        # the included class is unchanged


@pytest_twisted.inlineCallbacks
def test_setpoint_readback_pair_live(run_model, ca_port, ca_env):
    """A client's setpoint reaches the readback through the group's callbacks object (x) and the
    model's do_y_sp (y); ioc.x.<field> and ioc.x_<field> are one PV; DRVH comes from the macro."""
    app = StageApp()
    ioc = run_model(Stage, callbacks=app, ca_port=ca_port)
    dev = ioc.device_name
    assert ioc.x.sp is ioc.x_sp and ioc.y.rbv is ioc.y_rbv
    caput(f'{dev}:X:SP', '3.5', ca_env)
    caput(f'{dev}:Y:SP', '9', ca_env)          # clamped to DRVH 5
    for _ in range(100):
        if caget(f'{dev}:X:RBV', ca_env) == '3.5' and caget(f'{dev}:Y:RBV', ca_env) == '5':
            break
        yield task.deferLater(reactor, 0.05, lambda: None)
    assert caget(f'{dev}:X:RBV', ca_env) == '3.5'
    assert caget(f'{dev}:Y:RBV', ca_env) == '5'
    assert caget(f'{dev}:X:RBV.EGU', ca_env) == 'mm'
    assert (f'{dev}:X:SP', 3.5) in x_logic.seen
    assert app.writes == [5.0]
    assert ioc.x.sp.field('DRVH').get() == 10.0


def test_groups_nest():
    """A model with a group included as a group: names and attributes compose."""
    class Pair(models.Model):
        left = models.Group(Axis, prefix='L:', limit=1, units='mm')

    class Rig(models.Model):
        a = models.Group(Pair, prefix='A:')

    assert Rig.pv_names('R') == ['R:A:L:SP', 'R:A:L:RBV', 'R:A:L:MOVING']
    assert list(Rig._fields) == ['a_left_sp', 'a_left_rbv', 'a_left_moving']


def test_checks_apply_to_expanded_names():
    """Names too long once prefixed (E001), two groups with one prefix (E009), a clash between a
    group's field and a declared field (E009), a group named as a Model method (E020)."""
    with pytest.raises(ModelError, match='devioc.E001'):
        class Long(models.Model):
            g = models.Group(Axis, prefix='P' * 60 + ':', limit=1, units='mm')
        Long.pv_names('DEV')
    with pytest.raises(ModelError, match=r"devioc.E009.*'X:SP'"):
        class Twice(models.Model):
            a = models.Group(Axis, prefix='X:', limit=1, units='mm')
            b = models.Group(Axis, prefix='X:', limit=1, units='mm')
    with pytest.raises(ModelError, match=r"devioc.E009.*'g_sp'"):
        class Clash(models.Model):
            g = models.Group(Axis, prefix='G:', limit=1, units='mm')
            g_sp = models.Float('other')
    with pytest.raises(ModelError, match='devioc.E020'):
        class Reserved(models.Model):
            shutdown = models.Group(Axis, prefix='S:', limit=1, units='mm')


def test_bad_group_arguments_are_clear_errors():
    """Group of something that is no model class, a non-string prefix, a group callbacks object with
    a do_ that matches none of the group's fields."""
    with pytest.raises(TypeError, match='must be a model class'):
        models.Group(models.Float('x'))
    with pytest.raises(TypeError, match='prefix must be a string'):
        models.Group(Axis, prefix=3)

    class Wrong:
        def do_spp(self, pv, value, ioc):
            pass

    with pytest.raises(ModelError, match=r'(?s)devioc.E011.*did you mean do_sp'):
        models.Group(Axis, prefix='Z:', callbacks=Wrong())


def test_a_group_macro_no_record_uses_is_refused():
    """A keyword argument of Group is a macro of the group's records: one that none of them uses (a
    typo, limt=10 for $(limit)) would be dropped silently, so it is a TypeError naming the macros."""
    with pytest.raises(TypeError, match=r"limt.*Axis uses: limit, units"):
        models.Group(Axis, prefix='Z:', limt=10, units='mm')

    class Defaulted(models.Model):
        sp = models.Float('SP', max_val='$(limit=5)')

    with pytest.raises(TypeError, match=r"limt.*Defaulted uses: limit"):
        models.Group(Defaulted, prefix='Z:', limt=10)

    class Outer(models.Model):       # a macro of a nested group's records counts as used
        a = models.Group(Defaulted, prefix='A:')

    assert models.Group(Outer, prefix='O:', limit=3).records()['a_sp'].fields['DRVH'] == '3'


class _FakeModel:
    """Stands for a running model: attributes named as its fields."""

    def __init__(self, names):
        for name in names:
            setattr(self, name, f'<PV {name}>')
        self._device_name = 'FAKE'


def test_nested_views_and_callbacks_reach_the_innermost_fields():
    """ioc.a.left.sp is the model's a_left_sp; an inner group's callbacks object gets a view on which
    ioc.sp is that same PV; an unknown name is an AttributeError listing what the group has."""
    seen = []

    class Inner:
        def do_sp(self, pv, value, ioc):
            seen.append((ioc.sp, ioc.rbv, ioc.device_name))

    class Pair(models.Model):
        left = models.Group(Axis, prefix='L:', callbacks=Inner(), limit=1, units='mm')

    class Rig(models.Model):
        a = models.Group(Pair, prefix='A:')

    model = _FakeModel(Rig._fields)
    view = Rig.a.__get__(model, Rig)
    assert view.left.sp == '<PV a_left_sp>' and view.left.rbv == '<PV a_left_rbv>'
    with pytest.raises(AttributeError, match=r'has no field or group .spp.; it has moving, rbv, sp'):
        view.left.spp
    from devioc import groups
    callback = groups.callback_for(Rig, 'a_left_sp')
    callback('pv', 1.0, model)
    assert seen == [('<PV a_left_sp>', '<PV a_left_rbv>', 'FAKE')]
    assert groups.callback_for(Rig, 'a_left_rbv') is None
