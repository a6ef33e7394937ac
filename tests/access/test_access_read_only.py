"""Read-only fields: every CA and PVA client's write is refused, the app's own put() writes at full
speed through softIoc's shell, and what it writes is exactly what a CA put would have written."""
import logging
import math
import subprocess

import numpy as np
import pytest
import pytest_twisted

from devioc import models
from devioc.testing import caget, epics_tool, wait_for


class Published(models.Model):
    temp = models.FloatInput('temp', prec=6)                 # read-only by default
    count = models.IntegerInput('count')
    flag = models.BoolInput('flag')
    state = models.EnumInput('state', choices=['IDLE', 'it\'s "q",x', '1', ''])
    bits = models.BinaryInput('bits')
    note = models.StringInput('note')                          # stringin, 39 bytes
    text = models.StringInput('text', max_length=120)          # CHAR waveform
    trace = models.Array('trace', type=float, length=8, read_only=True)
    names = models.Array('names', type=str, length=3, read_only=True)
    setpoint = models.Float('setpoint')                        # writable, as before
    opened = models.FloatInput('opened', read_only=False)      # an input a client may write


@pytest.fixture
def ioc(device, ca_port):
    model = Published(device, ca_port=ca_port)
    yield model
    model.shutdown()


def _caput(name, value, env, *args):
    return subprocess.run([epics_tool('caput'), '-c', '-w', '3', *args, name, *value], env=env,
                          capture_output=True, text=True, timeout=15)


def test_c_caput_of_the_same_user_is_refused_and_the_value_stays(ioc, ca_env):
    """caput run by the same user on the same host as the app gets "Write access denied" on every
    read-only field; the records keep the app's values."""
    assert ioc.temp.put(4.25, wait=True)
    for att, value in (('temp', ['999']), ('count', ['5']), ('flag', ['1']), ('state', ['0']), ('bits', ['3']),
                       ('note', ['x']), ('text', ['-S', 'x']), ('trace', ['-a', '2', '1', '2'])):
        args = [v for v in value if v in ('-S', '-a')]
        values = [v for v in value if v not in ('-S', '-a')]
        result = _caput(f'{ioc.device_name}:{att}', values, ca_env, *args)
        assert result.returncode != 0, f'{att}: {result.stdout}'
        assert 'Write access denied' in result.stderr + result.stdout, f'{att}: {result.stderr}'
    assert caget(f'{ioc.device_name}:temp', ca_env) == '4.25'


def test_writable_fields_stay_writable(ioc, ca_env):
    """A plain output kind and an input declared read_only=False take a client's caput."""
    assert _caput(f'{ioc.device_name}:setpoint', ['7.5'], ca_env).returncode == 0
    assert _caput(f'{ioc.device_name}:opened', ['2.5'], ca_env).returncode == 0
    assert caget(f'{ioc.device_name}:opened', ca_env) == '2.5'


def test_pyepics_client_write_is_refused(ioc, ca_env):
    """A pyepics client in another process (same user, same host) sees no write access, and its put
    is refused; the record keeps the app's value."""
    import sys

    code = """if 1:
        import sys, epics
        pv = epics.PV(sys.argv[1])
        assert pv.wait_for_connection(5)
        print('write_access', pv.write_access)
        try:
            print('put', pv.put(9.0, wait=True, timeout=3))
        except Exception as err:
            print('refused', type(err).__name__)
        """
    assert ioc.temp.put(2.0, wait=True)
    result = subprocess.run([sys.executable, '-c', code, f'{ioc.device_name}:temp'], capture_output=True,
                            text=True, timeout=30, env=ca_env)
    assert 'write_access False' in result.stdout, result.stdout + result.stderr
    assert ioc.temp.get() == 2.0 and caget(f'{ioc.device_name}:temp', ca_env) == '2'


@pytest.mark.parametrize('value', ['plain', "it's", 'a "quoted" one', '$(HOME) ${HOME} $', 'back\\slash\\',
                                   'a,b c', '  leading and trailing  ', '#not a comment', 'tab\there', 'éµ€',
                                   '', 'x' * 39])
def test_strings_round_trip_through_the_shell(ioc, value):
    """Any text a stringin holds arrives exactly as put: quotes, $(macros), backslashes, commas, UTF-8."""
    assert ioc.note.put(value, wait=True)
    assert ioc.note.get() == value


def test_long_strings_round_trip(ioc, ca_env):
    value = "long $(X) 'q' \"dq\" \\ " + 'é' * 40
    assert ioc.text.put(value, wait=True)
    assert ioc.text.get() == value
    plain = 'a long one, ' + 'x' * 80   # caget -S escapes quotes and UTF-8: compare plain text there
    assert ioc.text.put(plain, wait=True)
    assert caget(f'{ioc.device_name}:text', ca_env, '-S') == plain
    assert ioc.text.put('', wait=True) and ioc.text.get() == ''


@pytest.mark.parametrize('value', [0.1 + 0.2, 1e300, -2.5e-300, 2.2250738585072014e-308, -0.0, 12345678.123456789,
                                   float('inf'), float('-inf')])
def test_floats_round_trip_exactly(ioc, value):
    """A double goes through the shell as repr(): the record holds the same bits."""
    assert ioc.temp.put(value, wait=True)
    assert ioc.temp.get() == value and math.copysign(1, ioc.temp.get()) == math.copysign(1, value)


def test_nan_and_integers(ioc):
    assert ioc.temp.put(float('nan'), wait=True) and math.isnan(ioc.temp.get())
    for value in (-2**31, 2**31 - 1, 0, 7):
        assert ioc.count.put(value, wait=True) and ioc.count.get() == value
    assert ioc.bits.put(0b1011, wait=True) and ioc.bits.get() == 0b1011


def test_enum_states_by_index_and_name(ioc):
    """States are written by name, so a state named "1" and one with quotes and a comma are told apart."""
    for index in range(3):
        assert ioc.state.put(index, wait=True)
        assert ioc.state.get() == index
    assert ioc.state.put('1', wait=True) and ioc.state.get() == 2
    assert ioc.flag.put(1, wait=True) and ioc.flag.get() == 1
    assert ioc.flag.put('OFF', wait=True) and ioc.flag.get() == 0


def test_a_state_with_no_name_after_the_last_named_one_is_a_clear_error(ioc):
    """State 3 is named '': the IOC shell takes it neither by name nor by index (softIoc's string to
    enum conversion knows states up to the last named one), so the put is a ValueError saying so,
    not a put that fails inside softIoc."""
    with pytest.raises(ValueError, match='name state 3'):
        ioc.state.put(3)


def test_arrays(ioc, ca_env):
    assert ioc.trace.put([1.5, -2, 0.1 + 0.2, float('nan')], wait=True)
    got = ioc.trace.get()
    assert got[:3].tolist() == [1.5, -2.0, 0.1 + 0.2] and math.isnan(got[3]) and len(got) == 4
    assert ioc.names.put(["it's", 'a "b"', '$(HOME)'], wait=True)
    assert list(ioc.names.get()) == ["it's", 'a "b"', '$(HOME)']


def test_bad_values_are_refused_before_the_shell(ioc):
    """The record kind decides what it holds, as for a CA put; what a shell line cannot carry is a
    ValueError naming the PV and what to do."""
    with pytest.raises(ValueError, match='count'):
        ioc.count.put(2**40)
    with pytest.raises(ValueError, match='line break'):
        ioc.note.put('two\nlines')
    with pytest.raises(ValueError, match='subnormal'):
        ioc.temp.put(5e-324)
    with pytest.raises(ValueError, match='state'):
        ioc.state.put('NOPE')
    assert ioc.temp.put(1.0, wait=True) and ioc.temp.get() == 1.0   # nothing half-sent


def test_many_puts_in_order_end_with_the_last(ioc):
    """Unwaited puts keep their order: after 20,000 the record holds the last, seen by a C caget."""
    for i in range(20000):
        ioc.count.put(i)
    assert ioc.count.put(-1, wait=True)
    assert ioc.count.get() == -1


def test_put_from_threads_lines_never_interleave(ioc):
    """Four threads writing strings at once: every line reaches the shell whole (no 'not found')."""
    import threading

    errors = []

    def writer(k):
        try:
            for i in range(500):
                ioc.note.put(f'thread {k} value {i} ' + 'x' * 10)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert ioc.note.put('done', wait=True) and ioc.note.get() == 'done'
    assert not [line for line in ioc.process.tail if 'not found' in line or 'Unbalanced' in line]


def test_prompts_and_markers_never_reach_the_console_or_the_log(ioc, caplog):
    """The console sees none of the app's shell lines: no prompts for them, no done markers; the log
    neither. The operator's own command still shows its output."""
    shown = []
    ioc.process.console = shown.append
    with caplog.at_level(logging.DEBUG, logger='devioc.softioc'):
        for i in range(200):
            ioc.temp.put(float(i))
        assert ioc.temp.put(1.5, wait=True)
        ioc.process.send(f'dbgf {ioc.device_name}:temp\n'.encode())
        wait_for(lambda: b'DBF_DOUBLE' in b''.join(shown), what='the operator command output')
        assert ioc.temp.put(2.5, wait=True)
    ioc.process.console = None
    output = b''.join(shown)
    assert b'devioc-done' not in output and b'dbpf' not in output
    assert output.count(b'epics> ') <= 2, output
    assert not [r for r in caplog.records if 'devioc-done' in r.getMessage()]


@pytest_twisted.inlineCallbacks
def test_put_deferred_on_a_read_only_field(ioc):
    """put_deferred fires on the reactor with the PV once the record holds the value."""
    pv = yield ioc.temp.put_deferred(3.75)
    assert pv is ioc.temp and pv.get() == 3.75


def test_read_only_over_pva_is_refused(device, ca_port, ca_env):
    """softIocPVA's QSRV applies the same access security: pvput is refused; pvget reads."""
    try:
        pvput = epics_tool('pvput')
    except Exception:
        pytest.skip('no pvput')
    model = Published(device, ca_port=ca_port, pva=True)
    try:
        assert model.temp.put(1.25, wait=True)
        put = subprocess.run([pvput, '-w', '5', f'{device}:temp', '9'], env=ca_env, capture_output=True, text=True,
                             timeout=20)
        got = subprocess.run([epics_tool('pvget'), '-w', '5', f'{device}:temp'], env=ca_env, capture_output=True,
                             text=True, timeout=20)
        assert put.returncode != 0, put.stdout + put.stderr
        assert '1.25' in got.stdout, got.stdout + got.stderr
    finally:
        model.shutdown()


class Big(models.Model):
    trace = models.Array('trace', type=float, length=5000, read_only=True)
    text = models.StringInput('text', max_length=3000)


def test_long_arrays_and_strings_go_in_one_shell_line(device, ca_port):
    """A 5,000-element array (a ~120 kB dbpf line) and a 3,000-byte string arrive whole and exact."""
    model = Big(device, ca_port=ca_port)
    try:
        data = np.random.default_rng(7).normal(size=5000)
        assert model.trace.put(data, wait=True)
        assert np.array_equal(model.trace.get(), data)
        assert model.text.put('é' * 1500, wait=True) and model.text.get() == 'é' * 1500
    finally:
        model.shutdown()


class Limits(models.Model):
    temp = models.FloatInput('temp', prec=2)                   # read-only by default
    mode = models.Float('mode', ASG='OPS')                     # restricted: nobody but 'ops' writes
    open = models.Float('open')                                # writable, as before

    class Meta:
        access = {'OPS': {'users': ['ops']}}


def test_the_app_changes_fields_of_read_only_and_restricted_records(device, ca_port, ca_env):
    """``ioc.temp.field('HIHI').put(90)`` (the README's example, temp a FloatInput) writes the field of
    a read-only record, and of a restricted group's record, as it does on a writable one: the app owns
    its records; menus by choice, text with quotes and $(x), numbers exact, wait=True read back."""
    model = Limits(device, ca_port=ca_port)
    try:
        for att in ('temp', 'mode', 'open'):
            pv = getattr(model, att)
            assert pv.field('HIHI').put(90, wait=True), att
            assert pv.field('HIHI').get() == 90.0, att
            assert pv.field('HHSV').put('MAJOR', wait=True) and pv.field('HHSV').get() == 'MAJOR', att
            assert pv.field('SCAN').put(6, wait=True) and pv.field('SCAN').get() == '1 second', att
            assert pv.field('EGU').put("it's $(x)", wait=True) and pv.field('EGU').get() == "it's $(x)", att
            assert pv.field('PREC').put(5, wait=True) and pv.field('PREC').get() == 5, att
            assert pv.field('HIGH').put(1 / 3) is True, att
            wait_for(lambda: pv.field('HIGH').get() == 1 / 3, what=f'{att}.HIGH')
            assert pv.field('DESC').put('a, b; c', wait=True) and caget(f'{device}:{att}.DESC', ca_env) == 'a, b; c'
            if att != 'open':   # one shell line per value
                with pytest.raises(ValueError, match='line break'):
                    pv.field('DESC').put('a\nb')
        # clients still cannot write any field of the read-only and restricted records
        for att in ('temp', 'mode'):
            result = _caput(f'{device}:{att}.HIHI', ['1'], ca_env)
            assert result.returncode != 0 and 'Write access denied' in result.stderr + result.stdout, att
        assert caget(f'{device}:temp.HIHI', ca_env) == '90'
    finally:
        model.shutdown()


class Buttons(models.Model):
    go = models.Toggle('go', high=None, read_only=True)          # ZNAM 'go', ONAM '' (the original's default)
    bare = models.Toggle('bare', zname='', high=None, read_only=True)   # neither state named
    named = models.Toggle('named', zname='OFF', oname='ON', high=None, read_only=True)
    flag = models.BoolInput('flag')


def test_the_app_puts_both_states_of_read_only_toggles(device, ca_port, ca_env):
    """A Toggle's state 1 has no name by default (ONAM ''): the app still sets it through the shell,
    and state 0; with neither state named, and with both named, too."""
    model = Buttons(device, ca_port=ca_port)
    try:
        for att in ('go', 'bare', 'named', 'flag'):
            pv = getattr(model, att)
            for state in (1, 0, 1):
                assert pv.put(state, wait=True), (att, state)
                assert pv.get() == state, (att, state)
        assert caget(f'{device}:named', ca_env) == 'ON'
    finally:
        model.shutdown()


class Many(models.Model):
    locals().update({f'c{i}': models.IntegerInput(f'c{i}') for i in range(60)})


def test_the_first_get_after_shell_puts_returns_the_last_put(device, ca_port):
    """get() subscribes on its first call and returns the IOC's current value, every earlier put
    included: puts to a read-only field go through softIoc's shell, not the CA circuit the read
    uses, so the first read waits for the shell's lines (60 fields, each read once right after)."""
    model = Many(device, ca_port=ca_port)
    try:
        for i in range(60):
            pv = getattr(model, f'c{i}')
            assert not pv.monitored
            pv.put(1000 + i)
            pv.put(2000 + i)
            assert pv.get() == 2000 + i, f'c{i}'
    finally:
        model.shutdown()
