"""End-to-end: values exactly as the records hold them, and records that start defined (live softIoc,
C caget/caput)."""
import enum
import re
import subprocess

import pytest

from devioc import models
from devioc.testing import caget, epics_tool, wait_for


class Shutter(enum.IntEnum):
    OPEN = 1
    CLOSED = 2


class Values(models.Model):
    counts = models.IntegerInput('counts', default=5)
    offset = models.Integer('offset', default=7)
    shutter = models.Enum('shutter', choices=Shutter, default=Shutter.CLOSED)
    mode = models.Enum('mode', choices=['ZERO', 'ONE', 'TWO'], default=1)
    where = models.Enum('where', choices=['$(first)', 'CLOSED'])
    go = models.Toggle('go', zname='IDLE', oname='GO', high=0)
    label = models.String('label', max_length=40)
    text = models.String('text', max_length=80, default='$(device) ready')
    shorts = models.Array('shorts', type='SHORT', length=4)
    level = models.Float('level')
    linked = models.Enum('linked', choices=['A', 'B'], out='$(device):mode PP')
    flag = models.BoolInput('flag')
    state = models.EnumInput('state', choices=['IDLE', 'BUSY'])
    temp = models.FloatInput('temp')
    message = models.StringInput('message', max_length=100)
    bits = models.BinaryInput('bits')
    out_bits = models.BinaryOutput('out_bits')
    sum = models.Calc('sum', calc='A+B')


@pytest.fixture
def ioc(run_model):
    model = run_model(Values, macros={'first': 'HUTCH'})
    wait_for(lambda: all(pv.connected for pv in model._pvs.values()), 10, 'every field connected')
    return model


def test_integers_beyond_int32_are_refused_and_the_record_keeps_its_value(ioc):
    ioc.counts.put(5, wait=True)
    for pv, value, keep in ((ioc.counts, 3_000_000_000, '5'), (ioc.offset, -2**31 - 1, '7')):
        with pytest.raises(ValueError, match=pv.name):
            pv.put(value, wait=True)
        with pytest.raises(ValueError, match=pv.name):
            pv.put(value)  # the fast path too: a c_int would wrap it
        assert caget(pv.name) == keep
    ioc.offset.put(2**31 - 1, wait=True)
    assert caget(ioc.offset.name) == '2147483647'


def test_enum_member_selects_its_state(ioc):
    assert caget(ioc.shutter.name) == 'CLOSED'
    ioc.shutter.put(Shutter.OPEN, wait=True)
    assert caget(ioc.shutter.name) == 'OPEN'
    ioc.shutter.put('CLOSED', wait=True)
    assert caget(ioc.shutter.name) == 'CLOSED'


def test_states_beyond_the_declared_ones_are_refused(ioc):
    for pv, value, keep in ((ioc.mode, 3, 'ONE'), (ioc.mode, 5, 'ONE'), (ioc.go, 2, 'IDLE')):
        with pytest.raises(ValueError, match=pv.name):
            pv.put(value, wait=True)
        assert caget(pv.name) == keep


def test_state_names_with_macros_are_the_expanded_ones(ioc):
    assert caget(ioc.where.name) == 'HUTCH'
    assert ioc.where.get(as_string=True) == 'HUTCH'
    ioc.where.put('CLOSED', wait=True)
    ioc.where.put('HUTCH', wait=True)
    assert caget(ioc.where.name) == 'HUTCH'


def test_strings_are_bytes_of_utf8(ioc):
    ioc.label.put('é' * 19, wait=True)  # 38 bytes: fits the stringout's 39
    assert ioc.label.get() == 'é' * 19
    with pytest.raises(ValueError, match=ioc.label.name):
        ioc.label.put('é' * 20)
    assert ioc.text.get() == f'{ioc.device_name} ready'  # a long String's default, macros expanded


def test_arrays_refuse_elements_beyond_their_type(ioc):
    ioc.shorts.put([1, 2, 3], wait=True)
    with pytest.raises(ValueError, match=ioc.shorts.name):
        ioc.shorts.put([40000])
    assert caget(ioc.shorts.name).split()[:4] == ['4', '1', '2', '3']


def alarm_and_time(name):
    out = subprocess.run([epics_tool('caget'), '-w', '3', '-d', 'DBR_TIME_STRING', name], capture_output=True,
                         text=True, timeout=10).stdout
    status = re.search(r'Status:\s*(\S+)', out)
    severity = re.search(r'Severity:\s*(\S+)', out)
    stamp = re.search(r'Time(?:stamp)?:\s*(\S+)', out)
    return (status and status.group(1), severity and severity.group(1), stamp and stamp.group(1), out)


def test_records_start_defined_with_a_valid_timestamp(ioc):
    """NO_ALARM and a timestamp of today, not UDF/INVALID and 1990 (String default '' included)."""
    for attname in ('counts', 'offset', 'shutter', 'mode', 'go', 'label', 'text', 'shorts', 'level', 'flag',
                    'state', 'temp', 'message', 'bits', 'out_bits', 'sum', 'where'):
        status, severity, stamp, out = alarm_and_time(getattr(ioc, attname).name)
        assert (status, severity) == ('NO_ALARM', 'NO_ALARM'), out
        assert stamp and not stamp.startswith('1990') and '<undefined>' not in out, out


def test_a_record_with_an_output_link_is_not_processed_at_start(ioc):
    """PINI would write through OUT (to another IOC, a shutter) at every start of the app."""
    assert caget(f'{ioc.linked.name}.PINI') == 'NO'
    assert caget(ioc.mode.name) == 'ONE'  # linked (state A = 0) did not write through to mode
