"""Blocking writes: a client's ``caput -c`` on a field declared ``blocking=True`` completes only when
the app's ``do_<field>`` for that write has finished (including a Deferred or coroutine it returns).

How: the field's record gets DTYP "Async Soft Channel" and ``OUT "<hidden PV> CA"``. That device
support (EPICS base ``devAoSoftCallback``, ``devBoSoftCallback``, ...) keeps the record active
(PACT=1) until the put on its CA output link completes, and a put with callback completes when the
record does. The hidden PV is served by the app's own CA server (:class:`devioc.appserver.AppServer`):
its put hands the value to the reactor (``callFromThread``), calls ``do_<field>(pv, value, ioc)``
there, and answers once the handler and the Deferred or coroutine it returns are done.

Rules (all follow from EPICS base's record processing):

- ``do_<field>`` of a blocking field runs once per processing of the record: every client write,
  same value or not, and the app's own puts; it also gets the initial value, as other fields' do.
  Other monitor updates of the record do not call it again (the write already did).
- A write made while the record is held (PACT=1) is not lost: softIoc marks the record for
  reprocessing (RPRO) and, when the held write completes, processes it once more with the latest
  value. Plain puts (no callback) made meanwhile are therefore coalesced: the handler sees the last
  one. Puts with callback are queued by softIoc (dbNotify) and each completes after its own turn.
- A field that also has ``write_<field>`` (or only that) holds a client's write until it has
  finished too: ``do_<field>`` runs first, then ``write_<field>``, each awaited. The app's own puts
  never call ``write_<field>``. On a blocking field devioc tells a client's write from the app's by
  the marks the app's puts leave (below), not by the hidden records of :mod:`devioc.writes`, which
  would only see the write after it completed.
- A handler that raises, or whose Deferred fails, completes the put anyway; the traceback is logged.
  The client's put still reports success: base's CA link put (``dbCaPutLinkCallback``) carries no
  status back to the record. The record shows it instead: Float, Integer, Toggle and String fields
  complete that write in UDF alarm (severity UDFS, INVALID by default) until the next write clears
  it. (A helper record ``<device>:_blockingN`` per such field sets the record's UDF, without
  processing it, before the write completes; mbbo and mbboDirect do not check UDF then, so Enum
  and BinaryOutput fields only log the failure.)
- A handler that does not finish within ``blocking_timeout`` seconds (default 60) releases the put:
  it completes in the same alarm, an error is logged, and the handler goes on running; its late end
  is ignored.
- The app's own puts to a blocking field (``ioc.<field>.put``, any thread) are never held for the
  app: they call ``do_<field>`` but complete at once, so ``put(wait=True)`` from the reactor thread
  does not wait for itself.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import os
import threading
import uuid
from typing import Any, Callable

from . import dbd

logger = logging.getLogger(__name__)

#: record types whose "Async Soft Channel" output device support completes on the link's put
BLOCKING_RECORD_TYPES = {'ao': 'float', 'longout': 'int', 'mbbo': 'int', 'bo': 'int', 'mbboDirect': 'int',
                         'stringout': 'string'}
#: record types that check UDF again when an asynchronous write completes (their second processing
#: phase): a failed or timed-out write leaves them in UDF alarm (severity UDFS) until the next write.
#: mbbo and mbboDirect do not (EPICS base 7.0.8): for Enum and BinaryOutput the failure is only logged.
ALARM_RECORD_TYPES = ('ao', 'longout', 'bo', 'stringout')
MAX_NAME = 60
DEVICE = 'Async Soft Channel'
DEFAULT_TIMEOUT = 60.0
CHECK_ID = 'devioc.E026'


def problems(record: Any) -> list[tuple[str, str, str]]:
    """``(id, message, hint)`` for a record's misuse of ``blocking``/``blocking_timeout`` (E026)."""
    blocking, timeout = getattr(record, 'blocking', False), getattr(record, 'blocking_timeout', None)
    found = []
    if blocking not in (True, False):
        found.append((CHECK_ID, f'blocking must be True or False, not {blocking!r}', 'write blocking=True'))
        return found
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not 0 < timeout < float('inf')):
        found.append((CHECK_ID, f'blocking_timeout must be a positive number of seconds, not {timeout!r}',
                      'e.g. blocking_timeout=120'))
    if not blocking:
        if timeout is not None:
            found.append((CHECK_ID, 'blocking_timeout is given but the field is not blocking',
                          'add blocking=True, or drop blocking_timeout'))
        return found
    rtype = record.record
    if rtype not in BLOCKING_RECORD_TYPES or DEVICE not in dbd.devices(rtype):
        what = 'a long String (a CHAR waveform)' if rtype == 'waveform' and record.value_kind == 'string' else \
            f'a {type(record).__name__} ({rtype} record)'
        found.append((CHECK_ID, f'blocking=True on {what}: only Float, Integer, Enum, Toggle, BinaryOutput and '
                      'String up to max_length 40 can hold a client\'s put (EPICS base has an "Async Soft Channel" '
                      f'output device support for ao, longout, mbbo, bo, mbboDirect and stringout, none for {rtype})',
                      'drop blocking=True, or use one of those kinds (e.g. a String of max_length 39 as the trigger)'))
    for key in ('OUT', 'DTYP'):
        if record.fields.get(key) not in (None, ''):
            found.append((CHECK_ID, f'blocking=True with {key}={record.fields[key]!r}: a blocking field\'s '
                          f'{key} is devioc\'s (DTYP "{DEVICE}", OUT to the app)', f'drop {key.lower()}=/{key}=, '
                          'or drop blocking=True and link the record yourself'))
    return found


def blocking_fields(model_class: type) -> dict[str, Any]:
    """``{attname: record}`` of the model's blocking fields."""
    return {att: rec for att, rec in model_class._fields.items() if getattr(rec, 'blocking', False) is True}


class _Field:
    """One blocking field of a running model: its hidden PV, its handler and its own-put marks."""

    def __init__(self, model: Any, attname: str, record: Any, pv_name: str, hidden: str):
        self.model, self.attname, self.record = model, attname, record
        self.pv_name, self.hidden = pv_name, hidden
        self.kind = BLOCKING_RECORD_TYPES[record.record]
        self.timeout = float(record.blocking_timeout or DEFAULT_TIMEOUT)
        self.handler: Callable | None = None
        #: write_<field>, when the app has one: then it alone is called (and held) for client writes,
        #: and do_<field> keeps its monitor meaning (devioc.writes' hidden records are not rendered)
        self.write_handler: Callable | None = None
        self.pv: Any = None
        #: the helper record that puts this field's record in UDF alarm (None: the kind cannot show it)
        self.flag_name: str | None = None
        self.flag: Any = None
        self._own = 0
        self._lock = threading.Lock()

    # -- the app's own puts (PV.put calls own_put first: any thread)
    def own_put(self) -> None:
        """Mark the next write as the app's own: it calls the handler but is not held for it."""
        with self._lock:
            self._own += 1

    def _take_own(self) -> bool:
        # softIoc coalesces writes made while the record is held into one processing: one write seen
        # here may stand for several of the app's puts, so it takes every mark made so far
        with self._lock:
            own, self._own = self._own > 0, 0
        return own

    # -- the write, on the server's asyncio thread
    def python_value(self, raw: Any) -> Any:
        """The value as ``get()`` and the other callbacks give it: float, int (state index) or str."""
        value = raw[0] if isinstance(raw, (list, tuple)) or getattr(raw, 'ndim', 0) else raw
        if self.kind == 'string':
            text = value if isinstance(value, str) else bytes(value).decode('latin-1')
            return text.encode('latin-1').decode('utf-8', 'replace')  # the record's bytes, as UTF-8
        return float(value) if self.kind == 'float' else int(value)

    async def write(self, raw: Any) -> None:
        """A write through the record's link: call the handler on the reactor, and wait for it."""
        own = self._take_own()
        if self.write_handler is not None:
            if own:   # the app's own put: do_<field> sees it through the monitor, write_<field> never
                return
            handler = self.write_handler
        else:
            handler = self.handler
        if handler is None:
            return
        value = self.python_value(raw)
        from twisted.internet import reactor

        if own:
            reactor.callFromThread(self._call, handler, value, None)
            return
        done: concurrent.futures.Future = concurrent.futures.Future()
        reactor.callFromThread(self._call, handler, value, done)
        try:
            ok = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(done)), self.timeout)
        except asyncio.TimeoutError:
            logger.error('%s: %s(%r) did not finish within blocking_timeout=%g s: the client\'s put is '
                         'completed now, the handler goes on', self.pv_name, self.handler_name, value, self.timeout)
            ok = False
        if not ok:
            await asyncio.get_running_loop().run_in_executor(None, self.raise_alarm)

    @property
    def handler_name(self) -> str:
        return f'{"write_" if self.write_handler is not None else "do_"}{self.attname}'

    def raise_alarm(self) -> None:
        """Put the record in UDF alarm for the write being completed (a worker thread; waits for softIoc)."""
        if self.flag is None:
            return
        try:
            if not self.flag.put(1, wait=True, timeout=5.0):
                logger.error('%s: could not set the alarm of the failed write', self.pv_name)
        except Exception:  # not connected, model shutting down: the failure is logged already
            logger.exception('%s: could not set the alarm of the failed write', self.pv_name)

    # -- the handler, on the reactor thread
    def _call(self, handler: Callable, value: Any, done: concurrent.futures.Future | None) -> None:
        from twisted.internet import defer

        def finish(_: Any = None, ok: bool = True) -> None:
            if done is not None and not done.done():
                try:
                    done.set_result(ok)
                except concurrent.futures.InvalidStateError:  # cancelled meanwhile (server stopping)
                    pass

        def failed(failure: Any) -> None:
            logger.error('%s: %s(%r) failed; the put is completed anyway:\n%s', self.pv_name, self.handler_name,
                         value, failure.getTraceback())
            finish(ok=False)

        try:
            result = handler(self.pv, value, self.model)
        except Exception:
            logger.exception('%s: %s(%r) raised; the put is completed anyway', self.pv_name, self.handler_name,
                             value)
            finish(ok=False)
            return
        if inspect.iscoroutine(result):
            result = defer.ensureDeferred(result)
        elif isinstance(result, asyncio.Future) or inspect.isawaitable(result) and \
                not isinstance(result, defer.Deferred):
            result = defer.Deferred.fromFuture(asyncio.ensure_future(result))
        if isinstance(result, defer.Deferred):
            result.addCallbacks(finish, failed)
        else:
            finish()


class _InitialOnly:
    """The monitor callback of a blocking field: its first value (the initial callback) only.

    Every later value comes from a write, which the app's server hands to the handler itself.
    """

    def __init__(self, handler: Callable):
        self.handler = handler
        self.called = False

    def __call__(self, pv: Any, value: Any, ioc: Any) -> Any:
        if self.called:
            return None
        self.called = True
        result = self.handler(pv, value, ioc)
        if inspect.iscoroutine(result):  # an async do_<field>: run it, as its writes' calls are
            from twisted.internet import defer

            defer.ensureDeferred(result).addErrback(
                lambda failure: logger.error('do_%s(%r) (initial value) failed:\n%s', pv.record.attname, value,
                                             failure.getTraceback()))
            return None
        return result


class Blocking:
    """The blocking fields of one running model and the app server that holds their writes."""

    def __init__(self, model: Any, records: dict[str, tuple[str, dict]]):
        from .appserver import AppServer, softioc_pid

        self.server = AppServer(peer_pid=softioc_pid(model))
        token = uuid.uuid4().hex[:8]
        self.fields: dict[str, _Field] = {}
        taken = {name for name, _ in records.values()}
        for index, (attname, record) in enumerate(blocking_fields(type(model)).items()):
            pv_name = records[attname][0]
            field = _Field(model, attname, record, pv_name, f'{pv_name}:_app{os.getpid()}{token}')
            flag = f'{model._device_name}:_blocking{index}'
            if record.record in ALARM_RECORD_TYPES and len(flag.encode()) <= MAX_NAME and flag not in taken:
                field.flag_name = flag
            self.fields[attname] = field
            self.server.add(field.hidden, field.kind, field.write)

    def start(self, records: dict[str, tuple[str, dict]]) -> None:
        """Start the server and point each blocking record's OUT at its hidden PV (in ``records``)."""
        self.server.start()
        for attname, field in self.fields.items():
            records[attname][1]['OUT'] = f'{field.hidden} CA'

    def extra_db(self) -> str:
        """The .db text of the helper records that put a blocking record in alarm (appended to the model's)."""
        from .access import RO_GROUP

        text = []
        for field in self.fields.values():
            if field.flag_name:
                text.append(f'record(longout, "{dbd.dbstring(field.flag_name)}") {{\n'
                            f'    field(DESC, "devioc: UDF alarm of a failed write")\n'
                            f'    field(ASG, "{RO_GROUP}")\n'   # no client's: the app writes it through the shell
                            f'    field(OUT, "{dbd.dbstring(field.pv_name)}.UDF NPP")\n}}\n')
        return '\n'.join(text)

    def connect(self, reactor: Any) -> None:
        """Make the channels of the helper records (they connect while the model's others do)."""
        from .channels import PV
        from .records import Integer

        for field in self.fields.values():
            if field.flag_name:
                field.flag = PV(field.flag_name, Integer(field.flag_name, read_only=True), field.model)
                field.flag.connect(reactor)

    def environ(self, env: dict[str, str]) -> None:
        """Add the server to softIoc's EPICS_CA_ADDR_LIST (the user's list is kept)."""
        addresses = env.get('EPICS_CA_ADDR_LIST', '').split()
        env['EPICS_CA_ADDR_LIST'] = ' '.join(addresses + [self.server.address])

    def bind(self, attname: str, pv: Any, callback: Callable | None,
             write_callback: Callable | None = None) -> Callable | None:
        """Give a blocking field's PV its handler; returns the PV's monitor callback.

        With ``write_callback`` (the app's write_<field>), it is the handler of client writes and
        ``callback`` (do_<field>) stays the monitor callback of every posted value; without, do_<field>
        is the handler and the monitor gives it the initial value only.
        """
        field = self.fields.get(attname)
        if field is None:
            return callback
        field.pv, field.handler, field.write_handler = pv, callback, write_callback
        pv._blocking = field
        if write_callback is not None:
            return callback
        return _InitialOnly(callback) if callback is not None else None

    def stop(self) -> None:
        """Stop the server (its thread and port) and drop the helper channels."""
        self.server.stop()
        for field in self.fields.values():
            if field.flag is not None:
                field.flag.disconnect()
                field.flag = None


def attach(model: Any, records: dict[str, tuple[str, dict]]) -> Blocking | None:
    """Start the app server of a model with blocking fields (None when it has none).

    Raises:
        devioc.appserver.AppServerError: the server could not start.
    """
    if not blocking_fields(type(model)):
        return None
    state = Blocking(model, records)
    state.start(records)
    return state
