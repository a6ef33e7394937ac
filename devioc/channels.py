"""Channel Access channels to the model's own records, on pyepics' libca.

Each field of a running model is a :class:`PV`. Its channel is made in libca directly once the IOC
serves its records, with no Python connection callback: libca connects them all in C while the
constructor waits in ``ca_pend_io``. A field is monitored only when it needs to be: at once when it
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
from typing import Any, Callable

import numpy as np
from epics import ca, dbr
from twisted.python import threadable

logger = logging.getLogger(__name__)

MONITOR_MASK = dbr.DBE_VALUE | dbr.DBE_ALARM
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
        self.pending = False
        self.reactor = None

    def request(self) -> None:
        if self.pending:  # a flush is already scheduled for the end of this reactor turn
            return
        reactor = self.reactor
        if reactor is None:
            from twisted.internet import reactor
            self.reactor = reactor
        if reactor.running and threadable.isInIOThread():
            self.pending = True
            reactor.callLater(0, self.flush)
        else:
            ca_flush()

    def flush(self) -> None:
        self.pending = False
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
    """Load libca and create pyepics' CA context (preemptive callbacks) if not done yet."""
    if ca.libca is None:
        ca.initialize_libca()


def ca_flush() -> None:
    """Send everything libca has queued now."""
    ca.libca.ca_flush_io()


_pending_puts: dict[int, Any] = {}
_put_keys = itertools.count()
_subscribe_lock = threading.Lock()
CS_CONN = 2  # ca_state() of a connected channel


def pend_io(timeout: float) -> bool:
    """Wait until every channel made without a connection callback is connected; False on timeout."""
    return ca.libca.ca_pend_io(timeout) == dbr.ECA_NORMAL


def _monitor_event(args: Any) -> None:
    """libca monitor callback (libca's thread): unpack the DBR_TIME_* value and hand it to the PV."""
    if args.status != dbr.ECA_NORMAL:
        return
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
        return
    pv._on_monitor(value, head.severity, head.status, timestamp)


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

    # -- channel and monitor
    def connect(self, reactor) -> None:
        """Create the channel in libca; returns at once (:func:`pend_io` waits for the connection).

        libca is called directly: pyepics' create_channel and create_subscription cost ~0.4 ms a
        channel (context checks, caches, two CA pends per subscription), 4 s for 10,000 records.
        """
        ensure_context()
        self._reactor = reactor
        chid = dbr.chid_t()
        self._check(ca.libca.ca_create_channel(self.name.encode(), None, None, 0, ctypes.byref(chid)),
                    'create a channel to')
        self._chid = chid

    def subscribe(self, on_first_value: Callable[['PV'], None] | None = None) -> None:
        """Monitor the record: every value it posts updates ``get()`` and goes to the callback.

        ``on_first_value(pv)`` is called (on libca's thread) when the first value has arrived.
        """
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

    @property
    def monitored(self) -> bool:
        """True once the record is monitored (a callback, or a ``get()`` has been made)."""
        return self._subscription is not None

    @property
    def connected(self) -> bool:
        """True while the channel is connected."""
        chid = self._chid
        return chid is not None and ca.libca.ca_state(chid) == CS_CONN

    def _on_monitor(self, value: Any, severity: int = 0, status: int = 0, timestamp: float = 0.0) -> None:
        value = self._from_ca(value)
        self._value, self.severity, self.status, self.timestamp = value, severity, status, timestamp
        if not self._has_value.is_set():
            self._has_value.set()
            if self._on_first_value is not None:
                self._on_first_value(self)
        if self.callback is not None:
            dispatcher.post(self._reactor, self, value)

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
        callback = self.callback
        if callback is None:  # disconnected after the event was queued
            return
        try:
            callback(self, value, self.model)
        except Exception:
            logger.exception('do_%s(%r) raised; later updates are still delivered', self.record.attname, value)

    # -- reads
    def get(self, as_string: bool = False, timeout: float = 5.0, **_: Any) -> Any:
        """The latest value the IOC posted; ``as_string=True`` gives enums as their state name.

        The first call on a field without a callback subscribes to it and waits (at most
        ``timeout`` seconds) for the IOC's current value, which includes every put made before.
        """
        if self._subscription is None:
            if not self.connected:
                raise RuntimeError(f'{self.name} is not connected: is the IOC running?')
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
    def put(self, value: Any, wait: bool = False, timeout: float = 30.0, **_: Any) -> bool:
        """Write ``value`` to the record.

        Without ``wait`` the put is queued and flushed at the end of the reactor turn (at once when
        called outside the running reactor). With ``wait=True`` it blocks until the IOC has processed
        the record, at most ``timeout`` seconds; a timeout is logged and returns False.
        """
        if not wait:
            ftype, count, data = self._data(value)
            self._check(ca.libca.ca_array_put(ftype, count, self._chid, data))
            flusher.request()
            return True
        done = threading.Event()
        self._put_callback(value, done.set)
        ca_flush()
        if done.wait(timeout):
            return True
        logger.error('put of %r to %s was not completed within %.1f s', value, self.name, timeout)
        return False

    def put_deferred(self, value: Any):
        """Write ``value``; the Deferred fires with this PV when the IOC has processed the record."""
        from twisted.internet import defer

        d = defer.Deferred()
        reactor = self._reactor
        self._put_callback(value, lambda: reactor.callFromThread(d.callback, self))
        flusher.request()
        return d

    def _put_callback(self, value: Any, done: Callable[[], None]) -> None:
        key = next(_put_keys)

        def completed():
            _pending_puts.pop(key, None)
            done()

        # libca keeps only a raw pointer to the callback: hold it here until libca has called it
        _pending_puts[key] = user_arg = ctypes.py_object(completed)
        ftype, count, data = self._data(value)
        status = ca.libca.ca_array_put_callback(ftype, count, self._chid, data, ca._CB_PUTWAIT, user_arg)
        if status != dbr.ECA_NORMAL:
            _pending_puts.pop(key, None)
        self._check(status)

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
            ftype, nelm = ca.libca.ca_field_type(self._chid), ca.libca.ca_element_count(self._chid)
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

    def disconnect(self) -> None:
        """Drop the monitor and the channel."""
        if self._subscription is not None:
            try:
                ca.libca.ca_clear_subscription(self._subscription[1])
            except Exception:  # the context may already be gone at interpreter exit
                pass
            self._subscription = None
        if self._chid is not None:
            try:
                ca.libca.ca_clear_channel(self._chid)
            except Exception:
                pass
            self._chid = None
        self.callback = None

    def __repr__(self) -> str:
        state = 'connected' if self.connected else 'disconnected'
        return f'<PV {self.name} {state} value={self._value!r}>'
