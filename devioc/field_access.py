"""Field access: ``ioc.<field>.field('HIHI')``, a channel to any field of a running model's record.

Limits, units, precision, alarm severities, SCAN and enum strings can be read and changed at run
time: ``ioc.temp.field('HIHI').put(90)``, ``ioc.temp.field('SCAN').put('1 second')``,
``ioc.temp.field('EGU').get()``. The field name is checked against the record type's fields from
EPICS base's .dbd (:mod:`devioc.dbd`) when the channel is asked for; the channel connects on its
first use, from any thread.

Values by the field's DBF type (its .dbd definition):

- ``DBF_MENU``, ``DBF_DEVICE`` (SCAN, OOPT, DTYP, HHSV, ...): the choice as a ``str`` ('1 second');
  ``put`` takes the choice's name or its index.
- ``DBF_ENUM`` (an mbbo/bo VAL): the state index as an ``int``, as ``ioc.<field>.get()`` gives it.
- integer types (``DBF_CHAR`` .. ``DBF_UINT64``): ``int``; ``DBF_FLOAT``/``DBF_DOUBLE``: ``float``.
- ``DBF_STRING`` (EGU, DESC, ZRST, CALC ...) and links (INP, OUT, FLNK ...): ``str``, read and written
  whole through the field's ``$`` form (CA serves plain strings of at most 39 bytes; CALC holds 80).
- ``DBF_NOACCESS`` fields CA serves anyway (a waveform's VAL): the record's own type.
"""
from __future__ import annotations

import difflib
import logging
import threading
from typing import Any, Callable

import numpy as np

from . import dbd

logger = logging.getLogger(__name__)

_LONG_TEXT = ('DBF_INLINK', 'DBF_OUTLINK', 'DBF_FWDLINK')


class UnknownField(ValueError):
    """A field name the record type does not have; the message names the record type."""


def field_def(record_type: str, name: str, pv_name: str) -> dbd.FieldDef:
    """The .dbd definition of field ``name`` of ``record_type``, or UnknownField naming both."""
    if not isinstance(name, str) or not name:
        raise UnknownField(f'{pv_name}: a field name is a string such as "HIHI", not {name!r}')
    defs = dbd.fields(record_type)
    fdef = defs.get(name.upper())
    if fdef is None:
        close = difflib.get_close_matches(name.upper(), list(defs), n=3)
        raise UnknownField(f'{pv_name} ({record_type} record): the {record_type} record type has no field {name!r}'
                           + (f'; did you mean {" or ".join(close)}?' if close else
                              f' (see the {record_type} record reference for its fields)'))
    return fdef


class FieldChannel:
    """A channel to one field of a model's record: ``get()``, ``put()``, ``add_callback()``.

    Args:
        pv_name: the record's PV name.
        record_type: its EPICS record type (the table of :mod:`devioc.dbd` is looked up with it).
        name: the field's name (any case: 'hihi' is 'HIHI').
        reactor: where callbacks run (the Twisted reactor; its thread).

    Raises:
        UnknownField: the record type has no such field.
    """

    def __init__(self, pv_name: str, record_type: str, name: str, reactor: Any = None):
        self.fdef = field_def(record_type, name, pv_name)
        self.record_type = record_type
        self.field = self.fdef.name
        self.long_text = self.fdef.dbf in _LONG_TEXT or (self.fdef.dbf == 'DBF_STRING' and self.fdef.size > 40)
        self.name = f'{pv_name}.{self.field}' + ('$' if self.long_text else '')
        self._reactor = reactor
        self._pv: Any = None
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[Any, Any], None]] = []
        self._last: tuple | None = None   # (value,) of the latest monitor event

    # -- connection
    def _channel(self, timeout: float = 5.0) -> Any:
        """The pyepics PV, made on first use and connected (TimeoutError if it does not connect)."""
        from . import ca as ca_context

        ca_context.attach()
        with self._lock:
            if self._pv is None:
                import epics

                self._pv = epics.PV(self.name, auto_monitor=True, callback=self._on_change,
                                    connection_timeout=timeout)
        if not self._pv.connected and not self._pv.wait_for_connection(timeout=timeout):
            raise TimeoutError(f'{self.name} did not connect within {timeout:.1f} s: is the IOC running?')
        return self._pv

    @property
    def connected(self) -> bool:
        """True once the channel has been used and is connected."""
        return self._pv is not None and self._pv.connected

    # -- values
    def _to_python(self, value: Any) -> Any:
        dbf = self.fdef.dbf
        if value is None:
            return None
        if self.long_text:
            raw = bytes(np.asarray(value, dtype=np.uint8)) if not isinstance(value, (str, bytes)) else value
            if isinstance(raw, str):
                return raw
            return raw.split(b'\0', 1)[0].decode('utf-8', 'replace')
        if self.fdef.menu or dbf == 'DBF_DEVICE':
            index = int(value)
            return self.fdef.menu[index] if 0 <= index < len(self.fdef.menu) else str(index)
        if dbf in dbd.INT_RANGES:
            return int(value)
        if dbf in dbd.FLOAT_MAX:
            return float(value)
        if isinstance(value, bytes):
            return value.decode('utf-8', 'replace')
        return value

    def _to_ca(self, value: Any) -> Any:
        """``value`` as the field takes it over CA, or ValueError naming the field and what it holds."""
        fdef, dbf = self.fdef, self.fdef.dbf
        if self.long_text or dbf == 'DBF_STRING':
            if not isinstance(value, str):
                raise ValueError(f'cannot put {value!r} to {self.name}: it holds text (str)')
            raw = value.encode('utf-8')
            limit = (fdef.size - 1) if fdef.size else None
            if limit is not None and len(raw) > limit:
                raise ValueError(f'cannot put that text to {self.name}: it holds {limit} bytes (UTF-8), not {len(raw)}')
            if self.long_text:
                return np.frombuffer(raw + b'\0', dtype=np.uint8)
            return value
        if fdef.menu or dbf == 'DBF_DEVICE':
            if isinstance(value, str):
                if value not in fdef.menu:
                    raise ValueError(f'cannot put {value!r} to {self.name}: the choices are {list(fdef.menu)}')
                return fdef.menu.index(value)
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and 0 <= value < len(fdef.menu):
                return int(value)
            raise ValueError(f'cannot put {value!r} to {self.name}: give one of {list(fdef.menu)} or its index '
                             f'0..{len(fdef.menu) - 1}')
        if dbf in dbd.INT_RANGES:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ValueError(f'cannot put {value!r} to {self.name}: a {dbf} field holds integers')
            low, high = dbd.INT_RANGES[dbf]
            if not low <= value <= high:
                raise ValueError(f'cannot put {value} to {self.name}: a {dbf} field holds {low}..{high}')
            return int(value)
        if dbf in dbd.FLOAT_MAX:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f'cannot put {value!r} to {self.name}: a {dbf} field holds a number')
            return float(value)
        return value

    def get(self, timeout: float = 5.0) -> Any:
        """The field's current value, typed as the module docstring says.

        Raises:
            TimeoutError: the channel did not connect, or no value came, within ``timeout`` seconds.
        """
        pv = self._channel(timeout)
        value = pv.get(timeout=timeout, use_monitor=True, as_numpy=True)
        if value is None:
            raise TimeoutError(f'{self.name} sent no value within {timeout:.1f} s')
        return self._to_python(value)

    def put(self, value: Any, wait: bool = False, timeout: float = 30.0) -> bool:
        """Write the field (any thread). With ``wait=True``, block until the IOC has processed the put.

        Returns:
            True once sent (or completed with ``wait``); False if the put did not complete in ``timeout``.

        Raises:
            ValueError: the field cannot hold ``value`` (the message names the field and its type).
            TimeoutError: the channel did not connect.
        """
        data = self._to_ca(value)
        pv = self._channel(min(timeout, 5.0))
        status = pv.put(data, wait=wait, timeout=timeout)
        return bool(status) if wait else True

    def add_callback(self, fn: Callable[[Any, Any], None]) -> None:
        """Call ``fn(channel, value)`` on the reactor thread on every value the field posts (its first too).

        The reactor's thread, as ``do_<field>``; exceptions are logged with the field's name.
        """
        with self._lock:
            self._callbacks.append(fn)
            last = self._last
        if last is not None:  # the current value came before this callback was added: give it now
            self._post(fn, last[0])
        self._channel()

    def _on_change(self, value: Any = None, **_: Any) -> None:
        """pyepics' monitor callback (libca's thread)."""
        converted = self._to_python(value)
        with self._lock:
            self._last = (converted,)
            callbacks = list(self._callbacks)
        for fn in callbacks:
            self._post(fn, converted)

    def _post(self, fn: Callable, value: Any) -> None:
        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor
        reactor.callFromThread(self._call, fn, value)

    def _call(self, fn: Callable, value: Any) -> None:
        try:
            fn(self, value)
        except Exception:
            logger.exception('callback %r of %s raised; later values are still delivered', fn, self.name)

    def disconnect(self) -> None:
        """Drop the channel and the callbacks."""
        self._callbacks.clear()
        pv, self._pv = self._pv, None
        if pv is not None:
            try:
                pv.disconnect()
            except Exception:  # libca already finalized at interpreter exit
                pass

    def __repr__(self) -> str:
        return f'<FieldChannel {self.name} {self.fdef.dbf}>'
