"""ioc.<field>.field(NAME): a channel to any field of the record, typed by the field's DBF type
(menus as their choice strings, integers as int, floats as float, strings and links as str, whole),
checked against the record type's fields; get/put/add_callback from the reactor or any thread."""
import threading

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from devioc import models
from devioc.field_access import FieldChannel, UnknownField
from devioc.testing import caget, caput


class Meter(models.Model):
    temp = models.Float('temp', HIHI=90, HHSV='MAJOR', units='degC', prec=2)
    mode = models.Enum('mode', choices=['IDLE', 'RUN'])
    total = models.Calc('total', calc='A+B', inpa='$(device):temp CP NMS')

    class Meta:
        access_level = 1   # clients edit configuration fields here (ASL1: HIGH)


@pytest.fixture
def meter(run_model, ca_port):
    return run_model(Meter, ca_port=ca_port)


def test_reads_are_typed_by_the_fields_dbf_type(meter):
    """HIHI float, HHSV and SCAN menu strings, EGU str, PREC int, ZRST str, a long CALC and a link whole."""
    assert meter.temp.field('HIHI').get() == 90.0
    assert meter.temp.field('HHSV').get() == 'MAJOR'
    assert meter.temp.field('scan').get() == 'Passive'     # any case
    assert meter.temp.field('EGU').get() == 'degC'
    assert meter.temp.field('PREC').get() == 2 and isinstance(meter.temp.field('PREC').get(), int)
    assert meter.mode.field('ONST').get() == 'RUN'
    assert meter.total.field('CALC').get() == 'A+B'
    assert meter.total.field('INPA').get() == f'{meter.device_name}:temp CP NMS'


def test_writes_reach_the_record(meter, ca_env):
    """put() changes the field as a client sees it: limits, SCAN by name or index, units, a long CALC."""
    dev = meter.device_name
    assert meter.temp.field('HIHI').put(50, wait=True)
    assert caget(f'{dev}:temp.HIHI', ca_env) == '50'
    assert meter.temp.field('SCAN').put('1 second', wait=True)
    assert caget(f'{dev}:temp.SCAN', ca_env) == '1 second'
    assert meter.temp.field('SCAN').put(0, wait=True)
    assert caget(f'{dev}:temp.SCAN', ca_env) == 'Passive'
    assert meter.temp.field('EGU').put('K', wait=True)
    assert caget(f'{dev}:temp.EGU', ca_env) == 'K'
    long_calc = '(A+B)*2+' + '+'.join(['A'] * 20)
    assert meter.total.field('CALC').put(long_calc, wait=True)
    assert caget(f'{dev}:total.CALC$', ca_env, '-S') == long_calc
    assert meter.total.field('CALC').get() == long_calc


def test_bad_names_and_values_are_clear_errors(meter):
    """An unknown field names the record type and a close match; a bad value names the field and
    what it holds; nothing is sent."""
    with pytest.raises(UnknownField, match=r'\(ao record\): the ao record type has no field .HIHG.; did you mean HIHI'):
        meter.temp.field('HIHG')
    with pytest.raises(ValueError, match=r"the choices are \['Passive'"):
        meter.temp.field('SCAN').put('2 seconds')
    with pytest.raises(ValueError, match=r'DBF_SHORT field holds -32768..32767'):
        meter.temp.field('PREC').put(70000)
    with pytest.raises(ValueError, match=r'holds 15 bytes'):
        meter.temp.field('EGU').put('x' * 16)
    with pytest.raises(ValueError, match='holds a number'):
        meter.temp.field('HIHI').put('high')
    assert meter.temp.field('HIHI').get() == 90.0


def test_one_channel_per_field():
    """field() gives the same channel for a field however it is spelt."""
    channel = FieldChannel('X:temp', 'ao', 'hihi')
    assert channel.name == 'X:temp.HIHI' and channel.field == 'HIHI'
    assert FieldChannel('X:c', 'calc', 'CALC').name == 'X:c.CALC$'     # 80 bytes: read whole
    assert FieldChannel('X:c', 'calc', 'INPA').name == 'X:c.INPA$'     # a link


@pytest_twisted.inlineCallbacks
def test_callbacks_run_on_the_reactor_with_each_value_and_puts_work_from_threads(meter, ca_env):
    """add_callback gets the current value, then each change, on the reactor thread; a worker
    thread's put reaches the IOC."""
    seen = []
    channel = meter.temp.field('HIGH')
    channel.add_callback(lambda ch, value: seen.append((value, threading.current_thread() is threading.main_thread())))
    for _ in range(50):
        if seen:
            break
        yield task.deferLater(reactor, 0.05, lambda: None)
    caput(f'{meter.device_name}:temp.HIGH', '40', ca_env)
    worker = threading.Thread(target=lambda: meter.temp.field('HIGH').put(45.5, wait=True))
    worker.start()
    worker.join(10)
    for _ in range(100):
        if len(seen) >= 3:
            break
        yield task.deferLater(reactor, 0.05, lambda: None)
    assert seen == [(0.0, True), (40.0, True), (45.5, True)]


def test_a_refused_put_with_wait_is_false(meter, ca_env):
    """With DISP=1 the IOC refuses puts to the record's fields: put(wait=True) says False, the field
    keeps its value; DISP itself stays writable."""
    assert meter.temp.field('DISP').put(1, wait=True)
    assert meter.temp.field('HIHI').put(5, wait=True) is False
    assert caget(f'{meter.device_name}:temp.HIHI', ca_env) == '90'
    assert meter.temp.field('DISP').put(0, wait=True)
    assert meter.temp.field('HIHI').put(5, wait=True) is True
    assert meter.temp.field('HIHI').get() == 5.0
