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

    def __init__(self, pv_name: str, record_type: str, name: str, reactor: Any = None, owner: Any = None):
        self.fdef = field_def(record_type, name, pv_name)
        #: the record's own PV: when the app writes that record through softIoc's shell (read-only, or a
        #: restricted ASG: devioc.access), its fields are written the same way, not refused by the ASG
        self._owner = owner
        self.record_type = record_type
        self.field = self.fdef.name
        self.long_text = self.fdef.dbf in _LONG_TEXT or (self.fdef.dbf == 'DBF_STRING' and self.fdef.size > 40)
        self.name = f'{pv_name}.{self.field}' + ('$' if self.long_text else '')
        self._reactor = reactor
        self._pv: Any = None
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[Any, Any], None]] = []
        self._typed = False
        self._shell: bool | None = None   # through the shell although the record is not (_through_shell)

    # -- connection
    def _channel(self, timeout: float = 5.0) -> Any:
        """The channel (a :class:`devioc.channels.PV`), made on first use and connected.

        Raises:
            TimeoutError: it did not connect within ``timeout`` seconds.
        """
        import time

        from epics import ca, dbr

        from .channels import PV, ca_flush

        with self._lock:
            if self._pv is None:
                reactor = self._reactor
                if reactor is None:
                    from twisted.internet import reactor
                pv = PV(self.name, _FieldRecord(self), None)
                pv.connect(reactor)
                ca_flush()
                self._pv = pv
            pv = self._pv
        deadline = time.monotonic() + timeout
        while not pv.connected:
            if time.monotonic() > deadline:
                raise TimeoutError(f'{self.name} did not connect within {timeout:.1f} s: is the IOC running?')
            time.sleep(0.002)
        if not self._typed:   # the type CA serves the field as, known once connected
            with self._lock:
                pv.ftype = ca.libca.ca_field_type(pv._chid)
                pv.nelm = max(int(ca.libca.ca_element_count(pv._chid)), 1)
                pv.is_string = self.long_text or pv.ftype == dbr.STRING
                pv.is_array = not pv.is_string and pv.nelm > 1
                self._typed = True
        return pv

    @property
    def connected(self) -> bool:
        """True once the channel has been used and is connected."""
        return self._pv is not None and self._pv.connected

    # -- values
    def _to_python(self, value: Any) -> Any:
        dbf = self.fdef.dbf
        if value is None:
            return None
        if isinstance(value, str):
            return value
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
            return raw   # the channel adds the NUL of a FIELD$ write
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
        value = pv.get(timeout=timeout)
        if value is None:
            raise TimeoutError(f'{self.name} sent no value within {timeout:.1f} s')
        return self._to_python(value)

    def put(self, value: Any, wait: bool = False, timeout: float = 30.0) -> bool:
        """Write the field (any thread). With ``wait=True``, block until the IOC has processed the put.

        Returns:
            True once sent (or completed with ``wait``); False, with an error logged, if the IOC refused
            the put or did not complete it within ``timeout`` (as ``ioc.<field>.put``).

        Raises:
            ValueError: the field cannot hold ``value`` (the message names the field and its type).
            TimeoutError: the channel did not connect.
        """
        self._to_ca(value)   # a bad value is refused before connecting
        owner = self._owner
        if owner is not None and self._through_shell():   # devioc.access: the app writes it through the shell
            from .access import field_shell_line, shell_put
            line = field_shell_line(self, value)
            return shell_put(self._channel(min(timeout, 5.0)), value, wait, timeout,
                             process=getattr(owner.model, '_process', None), line=line)
        return self._channel(min(timeout, 5.0)).put(value, wait=wait, timeout=timeout)

    def _through_shell(self) -> bool:
        """True when the app writes this field through softIoc's shell: its record is written that way
        (read-only, a restricted group), or clients may not write this field (a configuration field,
        ASL1, above ``Meta.access_level``: :func:`devioc.access.through_shell`)."""
        owner = self._owner
        if owner._shell:
            return True
        shell = self._shell
        if shell is None:
            from .access import through_shell
            shell = self._shell = through_shell(owner.model, owner.record, self.field)
        return shell

    def add_callback(self, fn: Callable[[Any, Any], None]) -> None:
        """Call ``fn(channel, value)`` on the reactor thread on every value the field posts (its first too).

        The reactor's thread, as ``do_<field>``; exceptions are logged with the field's name.
        """
        pv = self._channel()
        self._callbacks.append(fn)
        if pv.callback is None:
            pv.callback = self._dispatch
        if pv.monitored and pv._has_value.is_set():   # monitored already: give the current value now
            reactor = pv._reactor
            reactor.callFromThread(self._call, fn, pv._value)
        else:
            pv.subscribe()    # the first value comes to every callback
            from .channels import ca_flush
            ca_flush()

    def _dispatch(self, pv: Any, value: Any, model: Any) -> None:
        """The channel's callback (reactor thread): every added callback, with the typed value."""
        for fn in list(self._callbacks):
            self._call(fn, value)

    def _call(self, fn: Callable, value: Any) -> None:
        try:
            fn(self, self._to_python(value))
        except Exception:
            logger.exception('callback %r of %s raised; later values are still delivered', fn, self.name)

    def disconnect(self) -> None:
        """Drop the channel and the callbacks."""
        self._callbacks.clear()
        pv, self._pv = self._pv, None
        if pv is not None:
            pv.disconnect()

    def __repr__(self) -> str:
        return f'<FieldChannel {self.name} {self.fdef.dbf}>'


class _FieldRecord:
    """What :class:`devioc.channels.PV` asks of a record kind, for one field of a record."""

    value_kind = 'number'
    record = ''

    def __init__(self, channel: FieldChannel):
        self.channel = channel
        self.attname = channel.name
        self.fields = {'NELM': 2 if channel.long_text else 1}

    def choices(self, macros: Any = None) -> list[str]:
        return []

    def put_range(self, nstates: int = 0) -> None:
        return None   # every put goes through to_ca

    def to_ca(self, value: Any, name: str, choices: tuple[str, ...] = ()) -> Any:
        return self.channel._to_ca(value)
