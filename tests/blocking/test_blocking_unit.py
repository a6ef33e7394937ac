"""blocking=True without an IOC: the checks (E026), the rendered record, and the hand-over of a write
to the handler (its result, Deferred, coroutine or exception decide when and how the put completes)."""
import concurrent.futures
import logging

import pytest
from twisted.internet import defer

from devioc import blocking, models
from devioc.appserver import AppServer
from devioc.checks import CHECKS, ModelError
from devioc.render import render_db


def e026(**fields):
    """The E026 messages of a one-field model built from ``fields`` (name -> record)."""
    try:
        type('Probe', (models.Model,), dict(fields))
    except ModelError as err:
        return [m.msg for m in err.messages if m.id == 'devioc.E026']
    return []


@pytest.mark.parametrize('record, what', [
    (models.Array('a', blocking=True), 'Array (waveform record)'),
    (models.String('s', max_length=80, blocking=True), 'a long String (a CHAR waveform)'),
    (models.FloatInput('f', blocking=True), 'FloatInput (ai record)'),
    (models.StringInput('si', blocking=True), 'StringInput (stringin record)'),
    (models.Calc('c', calc='A', blocking=True), 'Calc (calc record)'),
    (models.CalcOut('co', calc='A', blocking=True), 'CalcOut (calcout record)'),
    (models.BinaryInput('bi', blocking=True), 'BinaryInput (mbbiDirect record)'),
])
def test_kinds_that_cannot_hold_a_put_are_e026(record, what):
    """Kinds with no "Async Soft Channel" output device support are refused, naming the kind and
    the kinds that can."""
    messages = e026(x=record)
    assert len(messages) == 1 and what in messages[0]
    assert 'only Float, Integer, Enum, Toggle, BinaryOutput and String up to max_length 40' in messages[0]


@pytest.mark.parametrize('record, key', [
    (models.Enum('e', choices=['A', 'B'], out='OTHER:pv PP', blocking=True), 'OUT'),
    (models.Float('f', OUT='OTHER:pv', blocking=True), 'OUT'),
    (models.BinaryOutput('b', out='OTHER:pv', blocking=True), 'OUT'),
    (models.Integer('i', DTYP='Soft Channel', blocking=True), 'DTYP'),
])
def test_out_or_dtyp_with_blocking_is_e026(record, key):
    """A blocking field's OUT and DTYP are devioc's: giving one is an error naming it."""
    messages = e026(x=record)
    assert len(messages) == 1 and messages[0].startswith(f'blocking=True with {key}=')


@pytest.mark.parametrize('kwargs, text', [
    ({'blocking': True, 'blocking_timeout': 0}, 'positive number of seconds, not 0'),
    ({'blocking': True, 'blocking_timeout': -5}, 'positive number of seconds, not -5'),
    ({'blocking': True, 'blocking_timeout': 'long'}, "positive number of seconds, not 'long'"),
    ({'blocking': True, 'blocking_timeout': True}, 'positive number of seconds, not True'),
    ({'blocking': True, 'blocking_timeout': float('inf')}, 'positive number of seconds, not inf'),
    ({'blocking_timeout': 5}, 'blocking_timeout is given but the field is not blocking'),
    ({'blocking': 'yes'}, "blocking must be True or False, not 'yes'"),
])
def test_bad_blocking_arguments_are_e026(kwargs, text):
    messages = e026(x=models.Float('f', **kwargs))
    assert len(messages) == 1 and text in messages[0]


def test_every_output_kind_may_block():
    """Float, Integer, Enum, Toggle, BinaryOutput and String (up to 40) build without a message."""
    fields = dict(f=models.Float('f', blocking=True), i=models.Integer('i', blocking=True, blocking_timeout=2.5),
                  e=models.Enum('e', choices=['A', 'B'], blocking=True), t=models.Toggle('t', blocking=True),
                  b=models.BinaryOutput('b', blocking=True), s=models.String('s', max_length=39, blocking=True))
    names = set(fields)
    model = type('AllKinds', (models.Model,), fields)   # (the class takes the fields out of the dict)
    assert set(blocking.blocking_fields(model)) == names
    assert 'devioc.E026' in CHECKS


def test_a_blocking_record_renders_async_soft_channel_and_no_pini():
    """The .db gives a blocking record DTYP "Async Soft Channel" and no PINI (processing it at start
    would write to the app before it runs); a plain field keeps PINI YES."""
    class Rendered(models.Model):
        sp = models.Float('sp', blocking=True)
        plain = models.Float('plain')

    text = render_db(Rendered, 'DEV')
    sp = text[text.index('record(ao, "DEV:sp")'):text.index('record(ao, "DEV:plain")')]
    plain = text[text.index('record(ao, "DEV:plain")'):]
    assert 'field(DTYP, "Async Soft Channel")' in sp and 'PINI' not in sp
    assert 'field(PINI, "YES")' in plain and 'DTYP' not in plain


class _Record:
    def __init__(self, rtype, timeout=None):
        self.record, self.blocking_timeout = rtype, timeout


def field(rtype='ao'):
    return blocking._Field(model=object(), attname='x', record=_Record(rtype), pv_name='DEV:x', hidden='DEV:x:_h')


def call(handler, value=1.0):
    """Run ``_Field._call`` as the reactor would; the future it completes."""
    done = concurrent.futures.Future()
    field()._call(handler, value, done)
    return done


def test_a_plain_handler_completes_the_put_when_it_returns():
    seen = []
    done = call(lambda pv, value, ioc: seen.append(value))
    assert seen == [1.0] and done.result(0) is True


def test_a_deferred_handler_completes_the_put_when_it_fires():
    d = defer.Deferred()
    done = call(lambda pv, value, ioc: d)
    assert not done.done()
    d.callback('anything')
    assert done.result(0) is True


def test_a_coroutine_handler_completes_the_put_when_it_ends():
    gate = defer.Deferred()

    async def handler(pv, value, ioc):
        await gate

    done = call(handler)
    assert not done.done()
    gate.callback(None)
    assert done.result(0) is True


@pytest.mark.parametrize('make', [
    lambda: (lambda pv, value, ioc: 1 / 0),
    lambda: (lambda pv, value, ioc: defer.fail(ZeroDivisionError('division by zero'))),
])
def test_a_failing_handler_completes_the_put_as_failed_and_logs(make, caplog):
    """A handler that raises, or whose Deferred fails, completes the put with False (the record is
    put in alarm) and logs the traceback naming the PV and do_<field>."""
    with caplog.at_level(logging.ERROR, logger='devioc.blocking'):
        done = call(make(), 3.0)
    assert done.result(0) is False
    assert 'DEV:x: do_x(3.0)' in caplog.text and 'ZeroDivisionError' in caplog.text


def test_a_late_end_after_the_put_was_dropped_is_ignored():
    """The server may cancel a held put (shutdown): the handler ending later raises nothing."""
    d = defer.Deferred()
    done = concurrent.futures.Future()
    field()._call(lambda pv, value, ioc: d, 1.0, done)
    done.cancel()
    d.callback(None)   # no InvalidStateError
    assert done.cancelled()


@pytest.mark.parametrize('rtype, raw, value', [
    ('ao', [2.5], 2.5), ('longout', [-7], -7), ('mbbo', [3], 3), ('bo', [1], 1), ('mbboDirect', [255], 255),
    ('stringout', ['mount h\xc3\xa9xa'], 'mount héxa'),   # softIoc's UTF-8 bytes, read as latin-1 by caproto
])
def test_the_handler_gets_the_value_as_the_fields_python_type(rtype, raw, value):
    got = field(rtype).python_value(raw)
    assert got == value and type(got) is type(value)


def test_the_apps_own_puts_are_marked_and_taken_together():
    """Several own puts coalesced by softIoc into one processing are taken by that one write."""
    f = field()
    assert f._take_own() is False
    f.own_put()
    f.own_put()
    assert f._take_own() is True
    assert f._take_own() is False


def test_the_monitor_calls_a_blocking_handler_for_the_initial_value_only():
    calls = []
    initial = blocking._InitialOnly(lambda pv, value, ioc: calls.append(value))
    initial(None, 1, None)
    initial(None, 2, None)
    assert calls == [1]


def test_the_app_server_refuses_unknown_kinds_and_late_pvs():
    server = AppServer()
    with pytest.raises(ValueError, match="kind must be float, int or string, not 'array'"):
        server.add('X', 'array', None)
    server.add('X', 'float', None)
    server.start()
    try:
        assert server.running and server.address == f'127.0.0.1:{server.port}'
        with pytest.raises(RuntimeError, match='add PVs before start'):
            server.add('Y', 'int', None)
    finally:
        server.stop()
    assert not server.running
