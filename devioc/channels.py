"""Channel Access channels to the model's own records, on pyepics' libca.

Each field of a running model is a :class:`PV`. Its channel is made in libca directly once the IOC
serves its records, with no Python connection callback: libca connects them all in C while the
constructor watches each channel's own state (``ca_state``). Every method may be called from any
thread: the process's CA context is attached to a thread on its first call (:mod:`devioc.ca`).
A field is monitored only when it needs to be: at once when it
has a ``do_<field>`` callback, else from its first ``get()``. So the values an app publishes to
records it never reads do not come back to it as monitor events (the echo costs a round trip ~0.2 ms
at the median and milliseconds at the tail). Monitor events arrive on libca's thread; they update the
cached value there and are queued for the reactor thread (one ``callFromThread`` wake-up a batch),
where ``do_<field>(pv, value, ioc)`` runs, in order, once per posted value.

Puts without ``wait`` are queued in libca and flushed once per reactor turn (or at once when called
outside the running reactor), so a publishing loop never pends on CA I/O per value.
"""
from __future__ import annotations

import collections
import ctypes
import itertools
import logging
import threading
from threading import get_ident as _get_ident
from typing import Any, Callable

import numpy as np
from epics import ca, dbr
from twisted.python import threadable

from . import ca as ca_context
from .ca import _tls

logger = logging.getLogger(__name__)

#: what drives ``get()`` and ``do_<field>``: value events only, as ``camonitor -m v`` sees them; an
#: alarm-only event (a HIHI crossing, UDF clearing on a same-value write) carries no new value
MONITOR_MASK = dbr.DBE_VALUE
#: a second subscription keeps ``severity`` and ``status`` current without calling back
ALARM_MASK = dbr.DBE_ALARM
# DBR type of the VAL field served over CA, by record type (waveforms: by FTVL)
_RECORD_DBR = {
    'ao': dbr.DOUBLE, 'ai': dbr.DOUBLE, 'calc': dbr.DOUBLE, 'calcout': dbr.DOUBLE,
    'longout': dbr.LONG, 'longin': dbr.LONG, 'mbboDirect': dbr.LONG, 'mbbiDirect': dbr.LONG,
    'mbbo': dbr.ENUM, 'mbbi': dbr.ENUM, 'bo': dbr.ENUM, 'bi': dbr.ENUM,
    'stringout': dbr.STRING, 'stringin': dbr.STRING,
}
_FTVL_DBR = {
    'STRING': dbr.STRING, 'CHAR': dbr.CHAR, 'UCHAR': dbr.CHAR, 'SHORT': dbr.SHORT, 'USHORT': dbr.LONG,
    'LONG': dbr.LONG, 'ULONG': dbr.DOUBLE, 'INT64': dbr.DOUBLE, 'UINT64': dbr.DOUBLE, 'FLOAT': dbr.FLOAT,
    'DOUBLE': dbr.DOUBLE, 'ENUM': dbr.ENUM,
}
_NUMPY = {dbr.SHORT: np.int16, dbr.FLOAT: np.float32, dbr.CHAR: np.uint8, dbr.LONG: np.int32,
          dbr.DOUBLE: np.float64, dbr.ENUM: np.uint16}


class _Flusher:
    """Flush libca's send queue once per reactor turn, however many puts were queued in it."""

    def __init__(self):
        #: the id of the thread (the reactor's) whose puts a flush scheduled for the end of this
        #: reactor turn will send; 0 when none is scheduled
        self.pending = 0
        self.reactor = None

    def request(self) -> None:
        # The flush scheduled for the end of this reactor turn covers the reactor thread's puts only:
        # a worker thread's put must not wait for a reactor turn that may go on for seconds (a slow
        # do_<field>), so other threads never take this shortcut.
        if self.pending == _get_ident():
            return
        reactor = self.reactor
        if reactor is None:
            from twisted.internet import reactor
            self.reactor = reactor
        if reactor.running and threadable.isInIOThread():
            self.pending = _get_ident()
            reactor.callLater(0, self.flush)
        else:
            ca_flush()

    def flush(self) -> None:
        self.pending = 0
        ca_flush()


flusher = _Flusher()


class _Dispatcher:
    """Hands monitor events from libca's thread to the reactor thread: in order, one wake-up a batch.

    libca's thread only appends to a deque; the reactor is woken (a pipe write) only when no drain is
    scheduled yet, so a burst of client writes costs one wake-up, not one each.
    """

    def __init__(self):
        self.events: collections.deque = collections.deque()
        self.scheduled = False

    def post(self, reactor, pv: 'PV', value: Any) -> None:
        """Queue ``pv``'s callback with ``value`` (libca's thread)."""
        self.events.append((pv, value))
        if not self.scheduled:
            self.scheduled = True
            reactor.callFromThread(self.drain)

    def drain(self) -> None:
        """Run the queued callbacks, then send what they wrote (reactor thread)."""
        self.scheduled = False  # first: an event queued from here on schedules the next drain
        events = self.events
        for _ in range(len(events)):  # those queued now: a flood of writes never starves the reactor
            pv, value = events.popleft()
            pv._dispatch(value)
        if flusher.pending:  # send now, not one reactor iteration later
            flusher.flush()


dispatcher = _Dispatcher()


def ensure_context() -> None:
    """Load libca, make the process's CA context if not done yet, and attach it to this thread."""
    ca_context.attach()


def clear_channels(chids: list) -> None:
    """Clear the channel ids :meth:`PV.renew` retired (any thread), once no put can be using them."""
    try:
        ca_context.attach()
    except Exception:  # libca already finalized at interpreter exit
        return
    for chid in chids:
        try:
            ca.libca.ca_clear_channel(chid)
        except Exception:  # the context may already be gone at interpreter exit
            pass
    chids.clear()


def ca_flush() -> None:
    """Send everything libca has queued now (in this thread's CA context, attached if need be)."""
    ca_context.flush()


class PutFailed(RuntimeError):
    """The IOC refused a put (its put-completion status was not ECA_NORMAL), e.g. a DISP=1 record."""


_pending_puts: dict[int, Any] = {}
_put_keys = itertools.count()
_subscribe_lock = threading.Lock()
CS_CONN = 2  # ca_state() of a connected channel


def _unpack_event(args: Any) -> tuple | None:
    """(value, severity, status, timestamp) of a DBR_TIME_* event or get reply; None if unusable."""
    if args.status != dbr.ECA_NORMAL:
        return None
    pv = args.usr
    try:
        head = ctypes.cast(args.raw_dbr, pv._time_pointer).contents  # status, severity, stamp, first value
        if pv._scalar_event and args.count == 1:  # the common case, read straight from the struct
            value = head.value
            if pv.ftype == dbr.STRING:
                value = value.decode('utf-8', 'replace')
        else:
            value = _unpack(dbr.cast_args(args)[1], args.count, dbr.native_type(args.type), pv.nelm)
        stamp = head.stamp
        timestamp = stamp.secs + dbr.EPICS2UNIX_EPOCH + stamp.nsec * 1e-9
    except Exception:
        logger.exception('cannot unpack a monitor update of %s', getattr(pv, 'name', '?'))
        return None
    return value, head.severity, head.status, timestamp


def _monitor_event(args: Any) -> None:
    """libca value monitor callback (libca's thread): hand the value to the PV."""
    event = _unpack_event(args)
    if event is not None:
        args.usr._on_monitor(*event)


def _alarm_event(args: Any) -> None:
    """libca alarm monitor callback (libca's thread): update the PV's severity and status only."""
    event = _unpack_event(args)
    if event is not None:
        pv = args.usr
        pv.severity, pv.status = event[1], event[2]


def _fresh_event(args: Any) -> None:
    """libca get callback of the read that follows a completed put (libca's thread)."""
    pv, done = args.usr
    event = _unpack_event(_Args(args, pv)) if args.status == dbr.ECA_NORMAL else None
    try:
        if event is not None:
            pv._on_fresh(*event)
    finally:
        done()


class _Args:
    """An event_handler_args look-alike whose ``usr`` is the PV (for :func:`_unpack_event`)."""

    def __init__(self, args: Any, pv: Any):
        self.status, self.raw_dbr, self.count, self.type, self.usr = args.status, args.raw_dbr, args.count, \
            args.type, pv
        self.chid = args.chid


def _put_event(args: Any) -> None:
    """libca put-completion callback (libca's thread): call the waiter with the completion status."""
    args.usr(args.status)


def _unpack(data: Any, count: int, ntype: int, nelm: int) -> Any:
    """Python value of a monitor's data: a scalar, a str, a list of str, or a numpy array."""
    if ntype == dbr.STRING:
        items = [data[i].value.split(b'\0', 1)[0].decode('utf-8', 'replace') for i in range(count)]
        return items[0] if nelm == 1 and count == 1 else items
    if count == 1 and nelm == 1:
        return data[0]
    out = np.empty(count, dtype=_NUMPY[ntype])
    ctypes.memmove(out.ctypes.data, data, out.nbytes)
    return out


_EVENT_CB = dbr.make_callback(_monitor_event, dbr.event_handler_args)
_ALARM_CB = dbr.make_callback(_alarm_event, dbr.event_handler_args)
_FRESH_CB = dbr.make_callback(_fresh_event, dbr.event_handler_args)
_PUT_CB = dbr.make_callback(_put_event, dbr.event_handler_args)


def dbr_type(record_type: str, ftvl: str | None = None) -> int:
    """The CA DBR type a record's VAL is served as."""
    if record_type == 'waveform':
        return _FTVL_DBR.get(ftvl or 'DOUBLE', dbr.DOUBLE)
    return _RECORD_DBR.get(record_type, dbr.DOUBLE)


class PV:
    """A field of a running model: a Channel Access channel to ``<device>:<name>``.

    Compatible with the original's PV objects: ``get()``, ``put(value, wait=False)``, ``name``.
    ``get()`` returns the latest monitored value: int (state index) for enums and toggles, str for
    strings, numpy array for arrays, float or int for numbers. A field without a callback is
    monitored from its first ``get()`` on (that first call waits for the IOC's current value).
    """

    def __init__(self, name: str, record: Any, model: Any, callback: Callable | None = None):
        self.name = self.pvname = name
        self.record = record
        self.model = model
        self.callback = callback
        self._value: Any = None
        self.severity = 0
        self.status = 0
        self.timestamp = 0.0
        self.ftype = dbr_type(record.record, record.fields.get('FTVL'))
        self.is_string = record.value_kind == 'string'
        self.is_array = record.value_kind == 'array'
        self.enum_strs = tuple(record.choices(getattr(model, 'macros', None)))  # as the IOC shows them
        self.nelm = int(record.fields.get('NELM', 1))
        self._chid = None
        self._subscription = None
        self._reactor = None
        self._on_first_value: Callable[['PV'], None] | None = None
        self._has_value: threading.Event | None = None
        self._native: tuple[int, int] | None = None
        self._time_pointer: Any = None
        self._scalar_event = False
        self._scalar = None
        self._alarm_subscription = None
        self._fresh_stamp = 0.0  # timestamp of the value read back after the last completed put
        #: called as ``value_hook(pv, value)`` on libca's thread with every value the record posts
        #: (devioc.autosave sets it); must be quick and must not raise
        self.value_hook: Callable[['PV', Any], None] | None = None
        #: write_<field>: the app's twin and the detector (:mod:`devioc.writes`); None without one
        self._writes: Any = None
        self._blocking = None  # a blocking field's state (devioc.blocking): the app's own puts are marked
        #: read-only to CA/PVA clients, in a restricted group, or a field beyond the clients' access
        #: security level (``<pv>.PROC``): the app writes through softIoc's shell
        from .access import through_shell  # (access, issue 14)
        self._shell = through_shell(model, record, name.rpartition('.')[2] if '.' in name else 'VAL')
        #: the validate_<field> state (devioc.validation), None without a hook (issue 14 §4)
        self._validation = None
        #: the alarm the app set (devioc.alarms), None unless the field is declared alarm=True (issue 14 §3)
        from .alarms import AlarmState
        alarmed = getattr(record, 'alarm', False) or getattr(record, 'attname', None) in getattr(model, '_alarmed', ())
        self._alarm = AlarmState(name) if alarmed else None

    # -- channel and monitor
    def connect(self, reactor) -> None:
        """Create the channel in libca; returns at once (``connected`` tells when it is connected).

        libca is called directly: pyepics' create_channel and create_subscription cost ~0.4 ms a
        channel (context checks, caches, two CA pends per subscription), 4 s for 10,000 records.
        """
        ensure_context()
        self._reactor = reactor
        chid = dbr.chid_t()
        self._check(ca.libca.ca_create_channel(self.name.encode(), None, None, 0, ctypes.byref(chid)),
                    'create a channel to')
        self._chid = chid
        if self._writes is not None:  # write_<field>: its twin and detector channels
            self._writes.connect(reactor)
        if self._alarm is not None:  # alarms (issue 14 §3): its hidden record (and PROC), over CA too
            self._alarm.connect(self, reactor)

    def subscribe(self, on_first_value: Callable[['PV'], None] | None = None) -> None:
        """Monitor the record: every value it posts updates ``get()`` and goes to the callback.

        ``on_first_value(pv)`` is called (on libca's thread) when the first value has arrived.
        """
        if not _tls.attached:
            ca_context.attach()
        with _subscribe_lock:
            if self._subscription is not None or self._chid is None:
                return
            self._on_first_value = on_first_value
            self._has_value = threading.Event()
            user_arg = ctypes.py_object(self)
            event_id = ctypes.c_void_p()
            ftype = ca.promote_fieldtype(self.ftype, use_time=True)
            self._time_pointer = ctypes.POINTER(dbr.Map[ftype])
            self._scalar_event = self.nelm == 1 and self.ftype != dbr.CHAR
            self._check(ca.libca.ca_create_subscription(ftype, 0, self._chid, MONITOR_MASK, _EVENT_CB, user_arg,
                                                        ctypes.byref(event_id)), 'subscribe to')
            self._subscription = (user_arg, event_id)  # libca holds pointers to both: keep them alive
            alarm_id = ctypes.c_void_p()
            self._check(ca.libca.ca_create_subscription(ftype, 0, self._chid, ALARM_MASK, _ALARM_CB, user_arg,
                                                        ctypes.byref(alarm_id)), 'subscribe to the alarms of')
            self._alarm_subscription = alarm_id

    @property
    def monitored(self) -> bool:
        """True once the record is monitored (a callback, or a ``get()`` has been made)."""
        return self._subscription is not None

    @property
    def connected(self) -> bool:
        """True while the channel is connected."""
        chid = self._chid
        return chid is not None and ca.libca.ca_state(chid) == CS_CONN and (
            self._writes is None or self._writes.connected)

    @property
    def _put_chid(self) -> Any:
        """The channel the app's puts go to: the record's own, or its twin's with a write_<field>."""
        return self._chid if self._writes is None or self._chid is None else self._writes.chid

    def _on_monitor(self, value: Any, severity: int = 0, status: int = 0, timestamp: float = 0.0) -> None:
        value = self._from_ca(value)
        if timestamp >= self._fresh_stamp:  # else: posted before a put whose result was already read back
            self._value, self.severity, self.status, self.timestamp = value, severity, status, timestamp
        if not self._has_value.is_set():
            self._has_value.set()
            if self._on_first_value is not None:
                self._on_first_value(self)
        if self.value_hook is not None:
            self.value_hook(self, value)
        if self.callback is not None or self._validation is not None:
            dispatcher.post(self._reactor, self, value)

    def _on_fresh(self, value: Any, severity: int, status: int, timestamp: float) -> None:
        """The value read back after a completed put (libca's thread): ``get()`` returns it at once.

        The IOC may send a put's completion before the monitor event of the value it wrote; without
        this read-back, a ``get()`` right after ``put(wait=True)`` could return the value before.
        """
        self._fresh_stamp = timestamp
        self._value, self.severity, self.status, self.timestamp = self._from_ca(value), severity, status, timestamp

    def _read_back(self, done: Callable[[], None]) -> None:
        """Ask the IOC for the record's value now (a CA get), then call ``done`` (any thread)."""
        if self._subscription is None or self._chid is None:  # unmonitored: the first get() reads it
            done()
            return
        if not _tls.attached:   # a thread's first CA call (an alarm change's read, devioc.alarms): without
            ca_context.attach()  # the context its flush below went to a new, empty one and the read sat unsent
        key = next(_put_keys)

        def finished():
            _pending_puts.pop(key, None)
            done()

        _pending_puts[key] = user_arg = ctypes.py_object((self, finished))
        ftype = ca.promote_fieldtype(self.ftype, use_time=True)
        status = ca.libca.ca_array_get_callback(ftype, 0, self._chid, _FRESH_CB, user_arg)
        if status != dbr.ECA_NORMAL:
            _pending_puts.pop(key, None)
            done()
            return
        ca.libca.ca_flush_io()

    def _from_ca(self, value: Any) -> Any:
        if self.is_string and not isinstance(value, str):
            raw = bytes(np.asarray(value, dtype=np.uint8))
            return raw.split(b'\0', 1)[0].decode('utf-8', 'replace')
        if self.is_array:
            if isinstance(value, str):
                return np.array([value])
            return np.atleast_1d(value)
        return value

    # -- callbacks (reactor thread)
    def _dispatch(self, value: Any) -> None:
        validation = self._validation  # validate_<field> first (issue 14 §4)
        if validation is not None and not validation.check(self, value):
            return
        callback = self.callback
        if callback is None:  # disconnected after the event was queued
            return
        try:
            callback(self, value, self.model)
        except Exception as error:
            # devioc.health: counted (CALLBACK_ERRORS, LAST_ERROR); identical tracebacks logged once, then a count
            errors = getattr(self.model, '_errors', None)
            if errors is None:
                logger.exception('do_%s(%r) raised; later updates are still delivered', self.record.attname, value)
            else:
                errors.report(self.record.attname, value, error)

    # -- reads
    def get(self, as_string: bool = False, timeout: float = 5.0, **_: Any) -> Any:
        """The latest value the IOC posted; ``as_string=True`` gives enums as their state name.

        The first call on a field without a callback subscribes to it and waits (at most
        ``timeout`` seconds) for the IOC's current value, which includes every put made before.
        """
        if not _tls.attached:
            ca_context.attach()
        if self._subscription is None:
            if not self.connected:
                raise RuntimeError(f'{self.name} is not connected: is the IOC running?')
            if self._shell:   # the app's puts went through softIoc's shell, not this CA circuit
                self._shell_sync(timeout)
            self.subscribe()
            ca_flush()
        if not self._has_value.wait(timeout):
            logger.error('%s sent no value within %.1f s', self.name, timeout)
            return None
        value = self._value
        if as_string and self.enum_strs and isinstance(value, (int, np.integer)):
            index = int(value)
            return self.enum_strs[index] if 0 <= index < len(self.enum_strs) else str(index)
        return value

    def _shell_sync(self, timeout: float) -> None:
        """Wait until softIoc's shell has run the lines sent before (the app's puts to a field it
        writes through the shell, :mod:`devioc.access`), so that a read that follows sees them."""
        process = getattr(self.model, '_process', None)
        if process is None or process.exited.is_set():
            return
        done = threading.Event()
        try:
            process.command(b'#\n', lambda ok: done.set())   # a comment line: its echo marker comes after
        except RuntimeError:
            return
        if not done.wait(timeout):
            logger.warning('%s: softIoc did not run its shell lines within %.1f s; reading anyway', self.name,
                           timeout)

    @property
    def value(self) -> Any:
        """The latest value, as ``get()`` (pyepics' PV.value)."""
        return self.get()

    @property
    def char_value(self) -> str:
        """The value as text, as pyepics' PV.char_value."""
        return str(self.get(as_string=True))

    def is_active(self) -> bool:
        """True while the channel is connected (the original's name)."""
        return self.connected

    def is_connected(self) -> bool:
        """True while the channel is connected (pyepics' name)."""
        return self.connected

    # -- writes
    def put(self, value: Any, wait: bool = False, timeout: float = 30.0, *, severity: Any = None,
            status: Any = None, message: Any = None, **_: Any) -> bool:
        """Write ``value`` to the record; callable from any thread.

        Without ``wait`` the put is queued and flushed at the end of the reactor turn (at once when
        called from another thread or outside the running reactor). With ``wait=True`` it blocks until
        the IOC has processed the record, at most ``timeout`` seconds, and a ``get()`` after it returns
        the value the record now holds.

        Args:
            value: the value, in the record's Python type (see ``get()``), or a state name for enums.
            wait: block until the IOC completes the put (CA put-callback, as ``caput -c``).
            timeout: seconds to wait for the completion (with ``wait=True``).
            severity, status, message: with ``severity`` (0-3 or 'NO_ALARM', 'MINOR', 'MAJOR',
                'INVALID') and ``status`` (menuAlarmStat name), the record shows that alarm from
                this value on (:meth:`set_alarm`); only for a field declared ``alarm=True``.

        Returns:
            True once queued (no ``wait``) or completed; False, with an error logged, when the IOC
            refused the put (e.g. DISP=1 or access security: its completion status is not
            ECA_NORMAL, where ``caput -c`` exits 1) or did not complete it within ``timeout``.

        Raises:
            ValueError: the record cannot hold ``value``.
            RuntimeError: the channel is closed or not connected, or ``severity`` is given for a field
                not declared ``alarm=True``.
        """
        if severity is not None or status is not None or message is not None:  # alarms (issue 14 §3)
            alarm = self._alarm  # the same severity as last time, as given: the plain put, under the
            if alarm is not None and status is None and message is None and severity == alarm.given:
                with alarm.lock:  # alarm's lock: another thread's alarm change cannot come between
                    if severity == alarm.given and not (alarm.from_validation or alarm.stale):   # the look, the put
                        return self.put(value, wait=wait, timeout=timeout)
            from . import alarms
            if severity is None:
                raise ValueError(f'put to {self.name}: status= and message= go with severity=')
            return alarms.put(self, value, wait, timeout, severity, status, message)
        if self._shell:  # a read-only field (devioc.access): no CA client may write it, the app included
            from .access import shell_put
            return shell_put(self, value, wait, timeout)
        if not _tls.attached:
            ca_context.attach()
        if not wait:
            ftype, count, data = self._data(value)
            self._check(ca.libca.ca_array_put(ftype, count, self._put_chid, data))
            if self._blocking is not None:  # devioc.blocking: the app's own put is not held for the app
                self._blocking.own_put()
            flusher.request()
            return True
        return self._put_wait(value, timeout)

    # -- alarms set from Python (devioc.alarms, issue 14 §3)
    def set_alarm(self, severity: Any, status: Any = None, message: Any = None, wait: bool = False,
                  timeout: float = 30.0) -> bool:
        """Show an alarm on the record until the app changes it (CA and PVA clients see STAT and SEVR).

        The record is processed once (an output record writes its OUT link and fires FLNK again);
        nothing is sent when severity and status are unchanged. Any thread; it waits (1 to 11 ms
        on loopback) until softIoc holds the new alarm, so that the field's next value carries it.

        Args:
            severity: 0-3 or 'NO_ALARM', 'MINOR', 'MAJOR', 'INVALID' (EPICS menuAlarmSevr).
            status: a name of EPICS menuAlarmStat ('WRITE', 'HIHI', 'COMM', ...); 'STATE' when None.
            message: kept as :attr:`alarm_message` and logged; EPICS base cannot put it in AMSG.
            wait: block until softIoc has processed the record.
            timeout: seconds to wait (with ``wait``).

        Returns:
            True once sent or done; False, with an error logged, at the timeout.

        Raises:
            ValueError: an unknown severity or status (not in menuAlarmSevr / menuAlarmStat).
            RuntimeError: the field is not declared ``alarm=True``, the model was shut down, or its
                softIoc is not connected (dead, or being restarted: raised at once).
        """
        from . import alarms
        return alarms.set_alarm(self, severity, status, message, wait, timeout)

    def clear_alarm(self, wait: bool = False, timeout: float = 30.0) -> bool:
        """``set_alarm('NO_ALARM')``: the record's alarm, set from Python, is cleared."""
        return self.set_alarm('NO_ALARM', wait=wait, timeout=timeout)

    @property
    def alarm_message(self) -> str:
        """The message of the alarm the app set last ('' when none; not in the record's AMSG)."""
        return self._alarm.message if self._alarm is not None else ''

    def _put_wait(self, value: Any, timeout: float) -> bool:
        """put(wait=True): its own method, so that put()'s fast path makes no closure cells."""
        done = threading.Event()
        outcome: list[int] = []

        def completed(status: int) -> None:
            outcome.append(status)
            if status == dbr.ECA_NORMAL:
                self._read_back(done.set)
            else:
                done.set()

        self._put_callback(value, completed)
        ca.libca.ca_flush_io()
        if not done.wait(timeout):
            logger.error('put of %r to %s was not completed within %.1f s', value, self.name, timeout)
            return False
        if outcome[0] != dbr.ECA_NORMAL:
            logger.error('%s', self._refused(value, outcome[0]))
            return False
        return True

    def put_deferred(self, value: Any):
        """Write ``value``; callable from any thread.

        Returns:
            a Deferred that fires on the reactor thread with this PV once the IOC has processed the
            record (a ``get()`` then returns the value it holds), or errbacks with :class:`PutFailed`
            when the IOC refused the put.

        Raises:
            ValueError: the record cannot hold ``value``.
        """
        from twisted.internet import defer

        if not _tls.attached:
            ca_context.attach()
        d = defer.Deferred()
        reactor = self._reactor

        def completed(status: int) -> None:
            if status == dbr.ECA_NORMAL:
                self._read_back(lambda: reactor.callFromThread(d.callback, self))
            else:
                reactor.callFromThread(d.errback, PutFailed(self._refused(value, status)))

        if self._shell:  # a read-only field (devioc.access)
            from .access import shell_put
            def processed(ok: bool) -> None:
                if ok:
                    completed(dbr.ECA_NORMAL)
                else:
                    reactor.callFromThread(d.errback, PutFailed(f'the put of {value!r} to {self.name} was not '
                                                                'completed: the IOC exited'))

            shell_put(self, value, True, 0.0, on_done=processed)
            return d
        self._put_callback(value, completed)
        flusher.request()
        return d

    def _refused(self, value: Any, status: int) -> str:
        return (f'the IOC refused the put of {value!r} to {self.name}: {ca.message(status)} (is the record '
                'disabled for puts, DISP=1, or does access security deny this client?)')

    def _put_callback(self, value: Any, done: Callable[[int], None]) -> None:
        key = next(_put_keys)

        def completed(status: int):
            _pending_puts.pop(key, None)
            done(status)

        # libca keeps only a raw pointer to the callback: hold it here until libca has called it
        _pending_puts[key] = user_arg = ctypes.py_object(completed)
        ftype, count, data = self._data(value)
        status = ca.libca.ca_array_put_callback(ftype, count, self._put_chid, data, _PUT_CB, user_arg)
        if status != dbr.ECA_NORMAL:
            _pending_puts.pop(key, None)
        self._check(status)
        if self._blocking is not None:  # devioc.blocking: the app's own put is not held for the app
            self._blocking.own_put()

    def _check(self, status: int, what: str = 'put to') -> None:
        if status != dbr.ECA_NORMAL:
            raise RuntimeError(f'{what} {self.name} failed: {ca.message(status)}')

    def _data(self, value: Any) -> tuple[int, int, Any]:
        """Convert a Python value to (ftype, count, ctypes data) for the record's native type.

        The record kind decides what it can hold (:meth:`devioc.records.Record.to_ca`): a value it
        cannot hold is a ValueError naming the PV, never a wrapped or cut value. Plain ints within
        the kind's range (and floats to a double record) take a fast path with no conversion.
        """
        if self._chid is None:
            raise RuntimeError(f'{self.name} is closed: the model has been shut down')
        if self._native is None:  # the native type and size never change: looked up once, not per put
            if not self.connected:
                raise RuntimeError(f'{self.name} is not connected: is the IOC running?')
            chid = self._put_chid
            ftype, nelm = ca.libca.ca_field_type(chid), ca.libca.ca_element_count(chid)
            scalar = nelm == 1 and ftype not in (dbr.STRING, dbr.CHAR)
            self._scalar = threading.local() if scalar else None  # one buffer per thread: no put races
            self._fast_range = self.record.put_range(len(self.enum_strs)) if scalar else None
            self._fast_float = scalar and ftype == dbr.DOUBLE
            self._native = (ftype, nelm)
        ftype, nelm = self._native
        kind = type(value)
        if (kind is int and self._fast_range is not None and self._fast_range[0] <= value <= self._fast_range[1]) \
                or (kind is float and self._fast_float):
            try:
                buffer = self._scalar.buffer
            except AttributeError:
                buffer = self._scalar.buffer = (dbr.Map[ftype] * 1)()
            buffer[0] = value  # libca copies the value during the put call
            return ftype, 1, buffer
        value = self.record.to_ca(value, self.name, self.enum_strs)
        if ftype == dbr.STRING:
            items = value if isinstance(value, list) else [value]
            data = (dbr.string_t * max(len(items), 1))()
            for i, raw in enumerate(items):
                data[i].value = raw
            return ftype, len(items) or 1, data
        if isinstance(value, bytes):  # a long string: a CHAR waveform, NUL-terminated
            raw = value + b'\0'
            return ftype, len(raw), ctypes.create_string_buffer(raw, len(raw))
        if isinstance(value, np.ndarray):
            array = np.ascontiguousarray(value, dtype=_NUMPY[ftype])
            return ftype, array.size, (dbr.Map[ftype] * max(array.size, 1)).from_buffer_copy(array) \
                if array.size else (dbr.Map[ftype] * 1)()
        data = (dbr.Map[ftype] * 1)()
        data[0] = value
        return ftype, 1, data

    def field(self, name: str) -> Any:
        """A channel to field ``name`` of this record (``'HIHI'``, ``'SCAN'``, ``'EGU'`` ...): see
        :class:`devioc.field_access.FieldChannel`; one per field, connected on first use.

        Raises:
            devioc.field_access.UnknownField: the record type has no such field (a ValueError).
        """
        from .field_access import FieldChannel, field_def

        key = field_def(self.record.record, name, self.name).name
        channels = self.__dict__.setdefault('_field_channels', {})
        if key not in channels:
            channels[key] = FieldChannel(self.name, self.record.record, key, self._reactor, owner=self)
        return channels[key]

    def renew(self, retired: list) -> None:
        """Make the channel again (a restarted softIoc, :mod:`devioc.restart`), keeping callback and monitor.

        The new channel is made before the old one is let go, and the old channel's id is appended to
        ``retired`` (for :func:`clear_channels`, later) instead of cleared now: a put from another
        thread meanwhile reaches libca with the old channel or the new one, never a cleared one (libca
        has freed it: SIGSEGV) nor none. The channels of ``field()`` and of write_<field> are made
        again with it, their callbacks kept, and those of an ``alarm=True`` field's alarm.
        """
        ensure_context()
        with _subscribe_lock:
            monitored = self._subscription is not None
            for handle in (self._alarm_subscription, self._subscription and self._subscription[1]):
                if handle is not None:
                    ca.libca.ca_clear_subscription(handle)
            self._alarm_subscription = self._subscription = None
        chid = dbr.chid_t()
        self._check(ca.libca.ca_create_channel(self.name.encode(), None, None, 0, ctypes.byref(chid)),
                    'create a channel to')
        old, self._chid = self._chid, chid
        if old is not None:
            retired.append(old)
        if self._writes is not None:
            self._writes.renew(retired)
        if self._alarm is not None:   # alarms (issue 14 §3): the hidden record's and PROC's channels
            for channel in self._alarm.channels or ():
                if channel is not None:
                    channel.renew(retired)
        for channel in list(self.__dict__.get('_field_channels', {}).values()):
            inner = getattr(channel, '_pv', None)
            if inner is not None:
                inner.renew(retired)
        if monitored:
            self.subscribe()

    def disconnect(self) -> None:
        """Drop the monitor and the channel."""
        for channel in self.__dict__.pop('_field_channels', {}).values():
            channel.disconnect()
        try:
            ca_context.attach()
        except Exception:  # libca already finalized at interpreter exit
            pass
        subscription = self._subscription
        for clear, handle in (('ca_clear_subscription', self._alarm_subscription),
                              ('ca_clear_subscription', subscription and subscription[1]),
                              ('ca_clear_channel', self._chid)):
            if handle is not None:
                try:   # at interpreter exit pyepics may have finalized libca (ca.libca is then a bare object)
                    getattr(ca.libca, clear)(handle)
                except Exception:  # the context may already be gone at interpreter exit
                    pass
        self._alarm_subscription = self._subscription = self._chid = None
        self.callback = self._validation = None
        if self._writes is not None:
            self._writes.disconnect()
        if self._alarm is not None:  # alarms (issue 14 §3)
            self._alarm.disconnect()

    def __repr__(self) -> str:
        state = 'connected' if self.connected else 'disconnected'
        return f'<PV {self.name} {state} value={self._value!r}>'
