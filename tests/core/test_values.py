"""Each record kind converts what the app puts to what the record holds, or says no (unit tests)."""
import enum

import numpy as np
import pytest

from devioc import models

PV = 'DEV:f'


class Shutter(enum.IntEnum):
    OPEN = 1
    CLOSED = 2


class Flags(enum.IntFlag):
    A = 1
    B = 2


class Color(enum.Enum):
    RED = 'r'
    BLUE = 'b'


@pytest.mark.parametrize('kind', [models.Integer, models.IntegerInput, models.BinaryOutput, models.BinaryInput])
def test_integer_kinds_hold_int32_and_never_wrap(kind):
    record = kind('f')
    assert record.to_ca(2**31 - 1, PV) == 2**31 - 1 and record.to_ca(-2**31, PV) == -2**31
    assert record.to_ca(True, PV) == 1 and record.to_ca(np.int64(7), PV) == 7
    assert record.to_ca(Flags.A | Flags.B, PV) == 3 and type(record.to_ca(Flags.A, PV)) is int
    assert record.to_ca(7.9, PV) == 7 and record.to_ca(-7.9, PV) == -7  # truncated toward zero, as C
    for bad in (2**31, -2**31 - 1, 3_000_000_000, float('nan'), float('inf'), 'abc', None, [1]):
        with pytest.raises(ValueError, match=PV):
            record.to_ca(bad, PV)
    assert record.put_range() == (-2**31, 2**31 - 1)


def test_float_kinds_hold_doubles():
    record = models.Float('f')
    assert record.to_ca(3, PV) == 3.0 and type(record.to_ca(3, PV)) is float
    assert record.to_ca(np.float32(1.5), PV) == 1.5
    for bad in ('1.5', None, 10**400, [1.0]):
        with pytest.raises(ValueError, match=PV):
            record.to_ca(bad, PV)


def test_enum_takes_states_by_index_name_or_declared_member():
    record = models.Enum('f', choices=Shutter, default=Shutter.CLOSED)
    choices = tuple(record.choices())
    assert choices == ('OPEN', 'CLOSED')
    assert record.to_ca(Shutter.OPEN, PV, choices) == 0  # the member's state, not its value 1
    assert record.to_ca(Shutter.CLOSED, PV, choices) == 1
    assert record.to_ca('CLOSED', PV, choices) == 1 and record.to_ca(1, PV, choices) == 1
    for bad in (2, 5, -1, 'HALF', 1.5, Color.RED, 70000):
        with pytest.raises(ValueError, match=PV):
            record.to_ca(bad, PV, choices)
    assert record.put_range(len(choices)) == (0, 1)


def test_enum_with_intflag_choices_takes_single_flags_only():
    record = models.Enum('f', choices=Flags)
    choices = tuple(record.choices())
    assert choices == ('NONE', 'A', 'B')
    assert record.to_ca(Flags.B, PV, choices) == 2 and record.to_ca(Flags(0), PV, choices) == 0
    with pytest.raises(ValueError, match='not one of its states'):
        record.to_ca(Flags.A | Flags.B, PV, choices)


def test_toggle_holds_zero_or_one():
    record = models.Toggle('f', zname='IDLE', oname='GO')
    choices = tuple(record.choices())
    assert record.to_ca(1, PV, choices) == 1 and record.to_ca('IDLE', PV, choices) == 0
    with pytest.raises(ValueError, match=f'{PV}: it has 2 states'):
        record.to_ca(2, PV, choices)
    assert record.put_range() == (0, 1)


def test_strings_are_counted_in_utf8_bytes():
    short = models.String('f', max_length=40)
    assert short.capacity == 39
    assert short.to_ca('x' * 39, PV) == b'x' * 39 and short.to_ca(5, PV) == b'5'
    assert short.to_ca('é' * 19, PV) == 'é'.encode() * 19
    with pytest.raises(ValueError, match='at most 39 bytes'):
        short.to_ca('é' * 20, PV)
    long = models.String('f', max_length=100)
    assert long.capacity == 100 and long.to_ca('y' * 100, PV) == b'y' * 100
    with pytest.raises(ValueError, match=PV):
        long.to_ca('µ' * 51, PV)


def test_arrays_hold_at_most_length_items_within_their_type():
    shorts = models.Array('f', type='SHORT', length=4)
    assert list(shorts.to_ca([1, -2, 32767], PV)) == [1, -2, 32767]
    assert list(shorts.to_ca(5, PV)) == [5]
    for bad in ([1] * 5, [40000], [-40000], [float('nan')], ['a'], [[1, 2]]):
        with pytest.raises(ValueError, match=PV):
            shorts.to_ca(bad, PV)
    uchar = models.Array('f', type='UCHAR', length=3)
    with pytest.raises(ValueError, match='0..255'):
        uchar.to_ca([256], PV)
    words = models.Array('f', type=str, length=2)
    assert words.to_ca(['a', 'bé'], PV) == [b'a', 'bé'.encode()]
    with pytest.raises(ValueError, match='holds 2 elements, not 3'):
        words.to_ca(['a', 'b', 'c'], PV)
    with pytest.raises(ValueError, match='at most 39 bytes'):
        words.to_ca(['x' * 40], PV)
    doubles = models.Array('f', type=float, length=3)
    assert doubles.to_ca(np.array([1.5, 2.5]), PV).tolist() == [1.5, 2.5]


def test_state_names_are_the_expanded_ones():
    record = models.Enum('f', choices=['$(first)', 'CLOSED'], ZRST='$(first)')
    assert record.choices({'first': 'HUTCH', 'device': 'D'}) == ['HUTCH', 'CLOSED']
    toggle = models.Toggle('f', zname='$(z)', oname='ON')
    assert toggle.choices({'z': 'OFF'}) == ['OFF', 'ON']


def _bare_pv(record, ftype):
    """A PV whose native type is known without a live channel (as after its first put)."""
    import threading

    from devioc.channels import PV
    pv = PV('DEV:f', record, None)
    pv._chid = object()
    pv._native = (ftype, 1)
    pv._scalar = threading.local()
    pv._fast_range = record.put_range(len(pv.enum_strs))
    pv._fast_float = False
    return pv


def test_fast_path_refuses_what_the_kind_refuses():
    """Plain ints beyond the kind's range leave the fast path for to_ca, which says no."""
    from epics import dbr
    pv = _bare_pv(models.Integer('f'), dbr.LONG)
    assert pv._data(5)[2][0] == 5
    with pytest.raises(ValueError, match='DEV:f'):
        pv._data(2**31)
    enum_pv = _bare_pv(models.Enum('f', choices=['A', 'B', 'C']), dbr.ENUM)
    assert enum_pv._data(2)[2][0] == 2
    with pytest.raises(ValueError, match='DEV:f'):
        enum_pv._data(3)


def test_fast_path_buffers_are_per_thread():
    """A put from another thread never sends this thread's value: each thread has its own buffer."""
    import threading

    from epics import dbr
    pv = _bare_pv(models.Integer('f'), dbr.LONG)
    mine = pv._data(1)[2]
    theirs = []
    worker = threading.Thread(target=lambda: theirs.append(pv._data(2)[2]))
    worker.start()
    worker.join()
    assert mine is not theirs[0] and mine[0] == 1 and theirs[0][0] == 2


def test_enum_declared_with_an_enum_class_refuses_members_of_another():
    class Other(enum.IntEnum):
        X = 0
        Y = 1
    record = models.Enum('f', choices=Shutter)
    choices = tuple(record.choices())
    with pytest.raises(ValueError, match=PV):
        record.to_ca(Other.X, PV, choices)  # an int 0, but no state of Shutter: would select OPEN
    assert models.Enum('f', choices=['A', 'B']).to_ca(Other.Y, PV, ('A', 'B')) == 1  # list choices: an index


@pytest.mark.parametrize('kind, length', [(models.String, 20), (models.String, 60), (models.StringInput, 20)])
def test_strings_refuse_a_nul_inside_but_take_trailing_padding(kind, length):
    record = kind('f', max_length=length)
    with pytest.raises(ValueError, match=PV):
        record.to_ca('a\x00b', PV)  # the record would hold 'a'
    assert record.to_ca(b'abc\x00\x00', PV) == b'abc'
