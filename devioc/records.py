"""Record kinds: one small declarative class per kind of EPICS record a model can hold.

A record kind knows its EPICS record type, maps its Python keyword arguments to EPICS fields, and
passes any uppercase keyword straight through as an EPICS field (``SCAN='1 second'``, ``HIHI=90``).
A lower-case keyword that names a field of the record type (``mdel=0``, which the original devioc
ignored) is applied as that field with a warning. The fields are checked against the record type's
.dbd rules (:mod:`devioc.dbd`) by :mod:`devioc.checks` when the model class is built.

Each kind also owns the conversion of what an app puts at run time (:meth:`Record.to_ca`): the
value exactly as the record holds it, or a ValueError naming the PV when the record cannot hold it.
"""
from __future__ import annotations

import builtins
import enum as _enum
import math
import numbers
import operator
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Union

import numpy as np

from . import dbd
from .access import RO_GROUP
from .macros import UndefinedMacro, expand

STATE_KEYS = ('ZR', 'ON', 'TW', 'TH', 'FR', 'FV', 'SX', 'SV', 'EI', 'NI', 'TE', 'EL', 'TV', 'TT', 'FT', 'FF')
CALC_INPUTS = tuple('ABCDEFGHIJKL')
STRINGOUT_MAX = 39  # stringout/stringin VAL is char[40], NUL included: 39 bytes of UTF-8
#: the longest max_length still served as a stringout: the original devioc's rule (39 bytes usable)
STRINGOUT_COMPAT = 40
INT32 = (-2**31, 2**31 - 1)
#: range of each waveform FTVL's elements (integers), for the put check
FTVL_RANGES = {'CHAR': (-2**7, 2**7 - 1), 'UCHAR': (0, 2**8 - 1), 'SHORT': (-2**15, 2**15 - 1),
               'USHORT': (0, 2**16 - 1), 'LONG': INT32, 'ULONG': (0, 2**32 - 1), 'INT64': (-2**63, 2**63 - 1),
               'UINT64': (0, 2**64 - 1), 'ENUM': (0, 2**16 - 1)}

#: Python types and names accepted for ``Array(type=...)``, mapped to waveform FTVL.
ARRAY_TYPES: dict[Any, str] = {
    int: 'LONG', float: 'DOUBLE', str: 'STRING', bool: 'UCHAR', bytes: 'UCHAR',
}
FTVL_CHOICES = ('STRING', 'CHAR', 'UCHAR', 'SHORT', 'USHORT', 'LONG', 'ULONG', 'INT64', 'UINT64',
                'FLOAT', 'DOUBLE', 'ENUM')

Number = Union[int, float]


class Problem:
    """A problem found while declaring a record, reported by the checks with the field's name.

    Ids ``devioc.E0xx`` are errors (the class is refused), ``devioc.W0xx`` warnings (it runs).
    """

    def __init__(self, check_id: str, msg: str, hint: str = ''):
        self.id, self.msg, self.hint = check_id, msg, hint


class Record:
    """Base class of all record kinds; not used directly.

    Args:
        name: record name; the PV is ``<device>:<name>``. Macros such as ``$(device)`` may be used.
        desc: description (DESC field, at most 40 characters).
        autosave: keep the value across restarts (:mod:`devioc.autosave`): True saves VAL; a tuple
            of field names (``('VAL', 'HIHI', 'EGU')``) saves those fields of the record.
        blocking: output kinds only: a client's put with callback (``caput -c``) completes when the
            app's ``do_<field>`` for it has finished (:mod:`devioc.blocking`).
        blocking_timeout: seconds a blocking write may be held (default 60 s); then the put
            completes anyway and the error is logged.
        read_only: refuse every Channel Access and PV Access client's write, whoever and wherever it
            is; the app's own ``put()`` still writes (:mod:`devioc.access`). Default: False, and
            True for the ``*Input`` kinds unless an ``ASG=`` is given (the ASG's rules then decide).
        alarm: let the app set the record's alarm severity from Python (``ioc.<field>.set_alarm``,
            ``put(value, severity=...)``): adds a hidden record ``<pv>:alarm`` and takes the SDIS
            link (:mod:`devioc.alarms`). Default: False.
        **fields: any EPICS field of the record type, as an uppercase keyword.
    """

    record_type: ClassVar[str] = ''
    #: the default of ``read_only=`` for this kind (the ``*Input`` kinds: True)
    read_only_default: ClassVar[bool] = False
    #: what callbacks and get() see: 'number', 'enum' (state index), 'string' or 'array'
    value_kind: ClassVar[str] = 'number'

    def __init__(self, name: str, *, desc: str | None = None, autosave: Any = False, blocking: bool = False,
                 blocking_timeout: float | None = None, read_only: bool | None = None, alarm: bool = False,
                 **fields: Any):
        self.name = name if isinstance(name, str) else str(name)
        self.problems: list[Problem] = []
        # -- blocking writes (devioc.blocking): checked by devioc.checks (E026), not EPICS fields
        self.blocking = blocking
        self.blocking_timeout = blocking_timeout
        # -- end blocking writes
        if not isinstance(name, str):
            self.problems.append(Problem('devioc.E015', f'the record name must be a string, not {name!r}',
                                         "e.g. models.Float('temperature')"))
        self.fields: dict[str, Any] = {}
        self.user_fields: set[str] = set()
        self.attname = ''  # set by the model class
        self.set_field('DESC', desc)
        known = dbd.fields(self.record)
        for key, value in fields.items():
            if key.isupper():
                self.set_field(key, value)
            elif key.upper() in known:  # the original ignored these; its apps rely on them running
                self.problems.append(Problem(
                    'devioc.W001', f'lower-case keyword {key}={value!r} is applied as the EPICS field '
                    f'{key.upper()} of the {self.record} record', f'write it in upper case: {key.upper()}={value!r}',
                ))
                self.set_field(key.upper(), value)
            elif _any_record_field(key.upper()):  # an EPICS field of other record types: the original ignored it
                self.problems.append(Problem(
                    'devioc.W003', f'lower-case keyword {key}={value!r} is ignored: {self.record} records have no '
                    f'field {key.upper()} (the original devioc ignored it too)', f'drop {key}=...',
                ))
            else:
                self.problems.append(Problem(
                    'devioc.E014', f'unknown keyword argument {key}={value!r} for {type(self).__name__}',
                    _keyword_hint(type(self), key),
                ))
        # -- autosave (devioc.autosave): the fields saved and restored; E024 when they cannot be
        from .autosave import autosave_fields
        self.autosave, problems = autosave_fields(self, autosave)
        self.problems.extend(Problem('devioc.E024', msg, hint) for msg, hint in problems)
        # -- end autosave
        self.read_only = self._read_only(read_only)  # access (issue 14)
        self.alarm = self._alarm(alarm)  # alarms (issue 14 §3)

    def _alarm(self, alarm: Any) -> bool:
        """``alarm=`` checked: a bool, and SDIS left to devioc (:mod:`devioc.alarms`)."""
        if not isinstance(alarm, bool):
            self.problems.append(Problem('devioc.E015', f'alarm must be True or False, not {alarm!r}', 'alarm=True'))
            return False
        if alarm and 'SDIS' in self.user_fields:
            self.problems.append(Problem(
                'devioc.E015', f"alarm=True and SDIS={self.fields['SDIS']!r} contradict: an alarm=True record reads "
                'its alarm through SDIS', 'drop SDIS=... or alarm=True'))
            return False
        return alarm

    def _read_only(self, read_only: Any) -> bool:
        """``read_only=`` checked: a bool, not with an ASG (which says who may write)."""
        if read_only is None:
            return self.read_only_default and 'ASG' not in self.user_fields
        if not isinstance(read_only, bool):
            self.problems.append(Problem('devioc.E015', f'read_only must be True or False, not {read_only!r}',
                                         'read_only=True'))
            return False
        if read_only and 'ASG' in self.user_fields:
            self.problems.append(Problem(
                'devioc.E015', f"read_only=True and ASG={self.fields['ASG']!r} contradict: a read-only field is "
                'written by no client', 'drop ASG=... (the field is read-only), or read_only (the ASG decides)'))
        return read_only

    def set_field(self, key: str, value: Any) -> None:
        """Set EPICS field ``key`` as the user gave it; a field given twice is reported."""
        if value is None:
            return
        if key in self.user_fields:
            self.problems.append(Problem('devioc.E017', f'field {key} is set twice', 'give each EPICS field once'))
        self.fields[key] = value
        self.user_fields.add(key)

    def default_field(self, key: str, value: Any) -> None:
        """Set ``key`` unless the user gave it as an uppercase keyword."""
        if value is not None and key not in self.fields:
            self.fields[key] = value

    @property
    def record(self) -> str:
        """The EPICS record type this declaration renders as."""
        return self.record_type

    def writes_out(self) -> bool:
        """True if processing this record writes through a link (OUT, FLNK, any output/forward link)."""
        if self.blocking:  # devioc.blocking: every processing writes to the app (no PINI write at start)
            return True
        defs = dbd.fields(self.record)
        return any(value not in ('', None) and key in defs and defs[key].dbf in ('DBF_OUTLINK', 'DBF_FWDLINK')
                   for key, value in self.fields.items())

    def db_fields(self) -> dict[str, Any]:
        """The fields as the .db file sets them: the declared ones, and PINI=YES for a record with no
        output link, so it starts with a valid timestamp and NO_ALARM (pythonSoftIOC's default).

        A record that writes through a link would write at every start of the app (to another IOC,
        a shutter, ...): it gets no PINI unless the declaration gives one.
        """
        fields = dict(self.fields)
        if self.blocking:  # devioc.blocking: the model sets OUT to the app's own server when it starts
            fields.setdefault('DTYP', 'Async Soft Channel')
        if 'PINI' not in fields and not self.writes_out():
            fields['PINI'] = 'YES'
        if self.read_only:  # access (issue 14): the group no CA/PVA client writes
            fields['ASG'] = RO_GROUP
        if self.alarm:  # alarms (issue 14 §3): the hidden record's severity comes in through SDIS
            from .alarms import sdis_link
            fields['SDIS'] = sdis_link(f'$(device):{self.name}')
        return fields

    def choices(self, macros: Mapping[str, Any] | None = None) -> list[str]:
        """State names for enum-like kinds (empty otherwise), macros expanded when ``macros`` is given."""
        return []

    def _expanded(self, labels: list[str], macros: Mapping[str, Any] | None) -> list[str]:
        if not macros:
            return labels
        out = []
        for label in labels:
            try:
                out.append(expand(label, macros))
            except UndefinedMacro:
                out.append(label)
        return out

    # -- run time: what an app puts
    def put_range(self, nstates: int = 0) -> tuple[float, float] | None:
        """The (low, high) range a plain int put may take without conversion (the put fast path).

        None when ints need the full conversion of :meth:`to_ca`.
        """
        return None

    def to_ca(self, value: Any, name: str, choices: tuple[str, ...] = ()) -> Any:
        """``value`` as the record holds it: int, float, bytes, list of bytes or a numpy array.

        Args:
            value: what the app puts.
            name: the PV name, for the error message.
            choices: the state names (macros expanded) of enum-like kinds.

        Raises:
            ValueError: naming the PV, when the record cannot hold the value.
        """
        return _real(value, name, self.record)

    def __repr__(self) -> str:
        return f'<{type(self).__name__} {self.name!r} ({self.record})>'


def _cut(text: str, size: int) -> str:
    """``text`` cut to at most ``size`` bytes of UTF-8, on a character boundary."""
    return text.encode('utf-8')[:size].decode('utf-8', 'ignore')


def _any_record_field(key: str) -> bool:
    return any(key in dbd.fields(rtype) for rtype in dbd.record_types())


def _keyword_hint(kind: type, key: str) -> str:
    import difflib
    import inspect

    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    names = [p.name for cls in kind.__mro__ if '__init__' in cls.__dict__
             for p in inspect.signature(cls.__init__).parameters.values()
             if p.name not in ('self', 'fields', 'name') and p.kind not in variadic]
    close = difflib.get_close_matches(key, names, n=1)
    if close:
        return f'did you mean {close[0]}=? EPICS fields are given in uppercase, e.g. {key.upper()}=...'
    rtype = getattr(kind, 'record_type', None)  # a typo of a field (mdle= for MDEL): name the field
    fields = list(dbd.fields(rtype)) if isinstance(rtype, str) else []
    swapped = [f for f in fields if sorted(f) == sorted(key.upper())]  # scna -> SCAN, not SSCN
    field = swapped or difflib.get_close_matches(key.upper(), fields, n=1)
    if field:
        return f'did you mean {field[0]}=? (a field of the {rtype} record; EPICS fields are given in uppercase)'
    return (f'{kind.__name__} takes {", ".join(sorted(set(names)))}; '
            f'EPICS fields are given in uppercase, e.g. {key.upper()}=...')


def _state_pairs(choices: Any) -> list[tuple[str, int]]:
    """(label, raw value) pairs for list/tuple choices or a Python Enum class."""
    if isinstance(choices, _enum.EnumMeta):
        members = list(choices)
        if issubclass(choices, _enum.IntFlag) and all(m.value != 0 for m in members):
            members = [choices(0)] + members
        pairs = []
        for m in members:
            try:
                raw = operator.index(m.value)  # an int (IntEnum, IntFlag, auto()); 1.5 or 'x' is no raw value
            except TypeError:
                raise TypeError(f'choices={choices.__name__}: {m.name} = {m.value!r}; the members of an Enum '
                                'class given as choices need integer values (they become ZRVL, ONVL, ...)') from None
            pairs.append(((m.name or 'NONE').replace('_', ' '), raw))
        return pairs
    if isinstance(choices, (str, bytes)) or not isinstance(choices, Iterable):
        raise TypeError(f'choices must be a list, tuple or Enum class, not {type(choices).__name__}')
    return [(str(c), i) for i, c in enumerate(choices)]


def _real(value: Any, name: str, what: str) -> float:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, numbers.Real):
        return value
    raise ValueError(f'cannot put {value!r} to {name}: a {what} record holds a number, not '
                     f'{type(value).__name__}')


def _integer(value: Any, name: str, what: str, low: int, high: int) -> int:
    """``value`` as an int in [low, high] (a float truncated, as C does), else ValueError naming the PV.

    A value beyond the range is never wrapped (a ctypes c_int would wrap it silently).
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, numbers.Real) or isinstance(value, complex):
        raise ValueError(f'cannot put {value!r} to {name}: a {what} record holds an integer, not '
                         f'{type(value).__name__}')
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f'cannot put {value!r} to {name}: a {what} record holds integers')
    number = int(value)  # a fraction is truncated toward zero, as C and a CA client's put to the record do
    if not low <= number <= high:
        raise ValueError(f'cannot put {number} to {name}: a {what} record holds {low}..{high}')
    return number


def _text(value: Any, name: str, limit: int) -> bytes:
    raw = value if isinstance(value, bytes) else str(value).encode('utf-8')
    if b'\x00' in raw:  # EPICS strings end at the first NUL: trailing padding is fine, text after it would be cut
        raw = raw.rstrip(b'\x00')
    if b'\x00' in raw:
        raise ValueError(f'cannot put that string to {name}: it holds a NUL character at byte {raw.index(0)}, '
                         'where an EPICS string ends')
    if len(raw) > limit:
        raise ValueError(f'cannot put that string to {name}: {name} holds strings of at most {limit} bytes '
                         f'(UTF-8), not {len(raw)}; declare it with a larger max_length')
    return raw


class _EnumBase(Record):
    value_kind = 'enum'

    def __init__(self, name: str, choices: Any = ('OFF', 'ON'), default: Any = 0, **kwargs: Any):
        super().__init__(name, **kwargs)
        self.enum_class = choices if isinstance(choices, _enum.EnumMeta) else None
        try:
            self.states = _state_pairs(choices)
        except TypeError as err:
            self.problems.append(Problem('devioc.E015', str(err),
                                         "use choices=['A', 'B'], or an Enum class of integers (IntEnum, auto())"))
            self.states = []
        for key, (label, value) in zip(STATE_KEYS, self.states):
            self.default_field(f'{key}ST', label)
            self.default_field(f'{key}VL', value)
        if isinstance(default, _enum.Enum):
            default = next((i for i, (_, v) in enumerate(self.states) if v == int(default.value)), default)
        self.default = default
        self.default_field('VAL', 0 if default is None else default)  # defined from the start

    def choices(self, macros: Mapping[str, Any] | None = None) -> list[str]:
        labels = [str(self.fields.get(f'{key}ST', label)) for key, (label, _) in zip(STATE_KEYS, self.states)]
        return self._expanded(labels, macros)

    def put_range(self, nstates: int = 0) -> tuple[float, float] | None:
        return (0, nstates - 1)  # plain ints only: Enum members take to_ca, which maps them to their state

    def to_ca(self, value: Any, name: str, choices: tuple[str, ...] = ()) -> int:
        if isinstance(value, _enum.Enum) and self.enum_class is not None and isinstance(value, self.enum_class):
            for index, (_, raw) in enumerate(self.states):
                if raw == value.value:
                    return index
            raise ValueError(f'cannot put {value!r} to {name}: it is not one of its states {list(choices)}')
        if isinstance(value, _enum.Enum) and self.enum_class is not None:  # an IntEnum of another class is no index
            raise ValueError(f'cannot put {value!r} to {name}: it was declared with '
                             f'choices={self.enum_class.__name__}')
        return _state(value, name, self.record, choices)


def _state(value: Any, name: str, what: str, choices: tuple[str, ...]) -> int:
    """A state name or index of an enum-like record, as its index; ValueError naming the PV otherwise."""
    if isinstance(value, bytes):
        value = value.decode('utf-8', 'replace')
    if isinstance(value, str):
        if value in choices:
            return choices.index(value)
        raise ValueError(f'{value!r} is not a state of {name}: {list(choices)}')
    if isinstance(value, _enum.Enum) and not isinstance(value, int):
        raise ValueError(f'cannot put {value!r} to {name}: it was not declared with choices={type(value).__name__}')
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f'cannot put {value!r} to {name}: a state index is a whole number')
    index = _integer(value, name, what, 0, 2**16 - 1)
    if index >= len(choices):
        raise ValueError(f'cannot put state {index} to {name}: it has {len(choices)} states {list(choices)}')
    return index


class Enum(_EnumBase):
    """Multi-state output (mbbo): up to 16 named states; the value is the state index.

    Args:
        name: record name.
        choices: list/tuple of state names, or a Python Enum class (member names show with '_' as ' ').
        default: initial state index (or Enum member).
        out: output link (OUT).
    """

    record_type = 'mbbo'

    def __init__(self, name: str, choices: Any = ('OFF', 'ON'), default: Any = 0, out: str = '', **kwargs: Any):
        super().__init__(name, choices=choices, default=default, **kwargs)
        self.default_field('OUT', out or None)


Enumeration = Enum


class EnumInput(_EnumBase):
    """Multi-state input (mbbi) for a state the app publishes; read-only to clients
    (``read_only=True`` by default: no CA or PVA client writes it; the app's ``put()`` does)."""

    record_type = 'mbbi'
    read_only_default = True

    def __init__(self, name: str, choices: Any = ('OFF', 'ON'), default: Any = 0, **kwargs: Any):
        super().__init__(name, choices=choices, default=default, **kwargs)


class _Binary(Record):
    """A bo/bi: two states named by ZNAM and ONAM; the value is 0 or 1."""

    value_kind = 'enum'

    def choices(self, macros: Mapping[str, Any] | None = None) -> list[str]:
        return self._expanded([str(self.fields.get('ZNAM', '')), str(self.fields.get('ONAM', ''))], macros)

    def put_range(self, nstates: int = 0) -> tuple[float, float] | None:
        return (0, 1)

    def to_ca(self, value: Any, name: str, choices: tuple[str, ...] = ()) -> int:
        return _state(value, name, self.record, choices)


class Toggle(_Binary):
    """Binary output (bo) that returns to zero after ``high`` seconds: a command button.

    Args:
        zname: label of state 0 (ZNAM); the record name when not given, as in the original.
        oname: label of state 1 (ONAM).
        high: seconds to stay at 1 before returning to 0 (HIGH); 0 or None keeps the value.
        default: initial value.
    """

    record_type = 'bo'

    def __init__(self, name: str, zname: str | None = None, oname: str = '', high: float | None = 0.1,
                 default: int | None = None, **kwargs: Any):
        super().__init__(name, **kwargs)
        self.default_field('ZNAM', zname if zname is not None else _cut(self.name, 25))
        self.default_field('ONAM', oname)
        self.default_field('HIGH', high or None)
        self.default_field('VAL', 0 if default is None else default)  # defined from the start


class BoolInput(_Binary):
    """Binary input (bi) for an on/off state the app publishes; read-only to clients
    (``read_only=True`` by default: no CA or PVA client writes it; the app's ``put()`` does)."""

    record_type = 'bi'
    read_only_default = True

    def __init__(self, name: str, zname: str = 'OFF', oname: str = 'ON', default: int | None = None,
                 **kwargs: Any):
        super().__init__(name, **kwargs)
        self.default_field('ZNAM', zname)
        self.default_field('ONAM', oname)
        self.default_field('VAL', 0 if default is None else default)  # defined from the start


class _IntegerValue:
    """Puts of a 32-bit integer record (longout, longin, mbboDirect, mbbiDirect: DBF_LONG VAL)."""

    record: str

    def put_range(self, nstates: int = 0) -> tuple[float, float] | None:
        return INT32

    def to_ca(self, value: Any, name: str, choices: tuple[str, ...] = ()) -> int:
        return _integer(value, name, self.record, *INT32)  # IntFlag and IntEnum members are ints


class _FloatValue:
    """Puts of a double record (ao, ai, calc, calcout)."""

    record: str

    def put_range(self, nstates: int = 0) -> tuple[float, float] | None:
        return (-2**53, 2**53)  # ints a double holds exactly

    def to_ca(self, value: Any, name: str, choices: tuple[str, ...] = ()) -> float:
        number = _real(value, name, self.record)
        try:
            return float(number)
        except OverflowError:
            raise ValueError(f'cannot put {value!r} to {name}: beyond what a double holds') from None


class BinaryOutput(_IntegerValue, Record):
    """Bit-field output (mbboDirect): an integer whose bits drive B0..B1F.

    Args:
        out: output link (OUT).
        shift: shift the value right by this many bits (SHFT).
        default: initial value.
    """

    record_type = 'mbboDirect'

    def __init__(self, name: str, out: str = '', shift: int = 0, default: int = 0, **kwargs: Any):
        super().__init__(name, **kwargs)
        self.default_field('VAL', default)
        self.default_field('OUT', out or None)
        self.default_field('SHFT', shift or None)


class BinaryInput(_IntegerValue, Record):
    """Bit-field input (mbbiDirect): an integer read from a link, or published by the app; read-only to
    clients (``read_only=True`` by default).

    Args:
        inp: input link (INP).
        shift: shift the value right by this many bits (SHFT).
        default: initial value.
    """

    record_type = 'mbbiDirect'
    read_only_default = True

    def __init__(self, name: str, inp: str = '', shift: int = 0, default: int = 0, **kwargs: Any):
        super().__init__(name, **kwargs)
        self.default_field('VAL', default)
        self.default_field('INP', inp or None)
        self.default_field('SHFT', shift or None)


class _Analog(Record):
    def _limits(self, max_val: Any, min_val: Any, drive: bool) -> None:
        self.max_val, self.min_val = max_val, min_val
        if max_val in (None, 0, 0.0, '') and min_val in (None, 0, 0.0, ''):
            return  # the original's "no limit"
        if isinstance(max_val, (int, float)) and isinstance(min_val, (int, float)) and max_val < min_val:
            self.problems.append(Problem(
                'devioc.E015', f'max_val={max_val} is below min_val={min_val}', 'swap them',
            ))
        self.default_field('HOPR', max_val)
        self.default_field('LOPR', min_val)
        if drive:
            self.default_field('DRVH', max_val)
            self.default_field('DRVL', min_val)


class Integer(_IntegerValue, _Analog):
    """Integer output (longout); client writes are clamped to [min_val, max_val] when a range is set.

    Args:
        max_val, min_val: drive and display limits (DRVH/DRVL, HOPR/LOPR); both 0 means no limit.
        default: initial value (VAL).
        units: engineering units (EGU).
    """

    record_type = 'longout'

    def __init__(self, name: str, max_val: Number = 0, min_val: Number = 0, default: Number = 0,
                 units: str = '', **kwargs: Any):
        super().__init__(name, **kwargs)
        self._limits(max_val, min_val, drive=True)
        self.default_field('VAL', default)
        self.default_field('EGU', units or None)


class Float(_FloatValue, _Analog):
    """Floating-point output (ao); client writes are clamped to [min_val, max_val] when a range is set.

    Args:
        max_val, min_val: drive and display limits (DRVH/DRVL, HOPR/LOPR); both 0 means no limit.
        default: initial value (VAL).
        prec: display precision (PREC).
        units: engineering units (EGU).
    """

    record_type = 'ao'

    def __init__(self, name: str, max_val: Number = 0.0, min_val: Number = 0.0, default: Number = 0.0,
                 prec: int = 4, units: str = '', **kwargs: Any):
        super().__init__(name, **kwargs)
        self._limits(max_val, min_val, drive=True)
        self.default_field('VAL', default)
        self.default_field('PREC', prec)
        self.default_field('EGU', units or None)


class IntegerInput(_IntegerValue, _Analog):
    """Integer input (longin) for a value the app publishes; read-only to clients
    (``read_only=True`` by default: no CA or PVA client writes it; the app's ``put()`` does)."""

    record_type = 'longin'
    read_only_default = True

    def __init__(self, name: str, max_val: Number = 0, min_val: Number = 0, default: Number = 0,
                 units: str = '', **kwargs: Any):
        super().__init__(name, **kwargs)
        self._limits(max_val, min_val, drive=False)
        self.default_field('VAL', default)
        self.default_field('EGU', units or None)


class FloatInput(_FloatValue, _Analog):
    """Floating-point input (ai) for a value the app publishes; read-only to clients
    (``read_only=True`` by default: no CA or PVA client writes it; the app's ``put()`` does)."""

    record_type = 'ai'
    read_only_default = True

    def __init__(self, name: str, max_val: Number = 0.0, min_val: Number = 0.0, default: Number = 0.0,
                 prec: int = 4, units: str = '', **kwargs: Any):
        super().__init__(name, **kwargs)
        self._limits(max_val, min_val, drive=False)
        self.default_field('VAL', default)
        self.default_field('PREC', prec)
        self.default_field('EGU', units or None)


class _StringBase(Record):
    value_kind = 'string'
    short_type = ''

    def __init__(self, name: str, max_length: int = 20, default: str = '', **kwargs: Any):
        bad_length = not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1
        self.max_length = 1 if bad_length else max_length
        self.long = self.max_length > STRINGOUT_COMPAT  # known before the fields: it picks the record type
        super().__init__(name, **kwargs)
        if bad_length:
            self.problems.append(Problem(
                'devioc.E015', f'max_length must be a positive integer, not {max_length!r}', 'e.g. max_length=80',
            ))
        elif max_length == STRINGOUT_COMPAT:
            self.problems.append(Problem(
                'devioc.W002', f'max_length=40 is served as a {self.short_type} holding {STRINGOUT_MAX} bytes, '
                'as the original devioc served it', 'write max_length=39 to say so, or 41 and more for a CHAR '
                'waveform that holds 40',
            ))
        self.default = default
        for key in ('FTVL', 'NELM'):
            if self.long and key in self.user_fields:  # the waveform's shape is max_length's to decide
                self.problems.append(Problem(
                    'devioc.E017', f'{key} is set by max_length for a long String', f'drop {key}=...; give '
                    f'max_length={self.max_length} (the record gets FTVL CHAR, NELM max_length + 1)',
                ))
        if self.long:
            self.default_field('FTVL', 'CHAR')
            self.default_field('NELM', self.max_length + 1)
            # a CHAR waveform posts every write by default: a callback that writes back would loop
            self.default_field('MPST', 'On Change')
            self.default_field('APST', 'On Change')
            if default not in (None, ''):
                # a waveform's VAL cannot be set in a .db file: a constant input link loads it at init
                self.default_field('INP', {'const': default})
        elif default is not None:
            # VAL given, even '', so the record starts defined (NO_ALARM), not UDF/INVALID
            self.default_field('VAL', default)

    @property
    def capacity(self) -> int:
        """Bytes of UTF-8 the record holds: 39 for a stringout/stringin, max_length for a waveform."""
        return self.max_length if self.long else STRINGOUT_MAX

    def to_ca(self, value: Any, name: str, choices: tuple[str, ...] = ()) -> bytes:
        if isinstance(value, np.generic):
            value = value.item()
        return _text(value, name, self.capacity)

    @property
    def record(self) -> str:
        return 'waveform' if self.long else self.short_type


class String(_StringBase):
    """String output: a stringout for max_length up to 40 (it holds 39 bytes of UTF-8, as the
    original devioc served it), a CHAR waveform of max_length + 1 elements beyond.

    Long strings work with plain ``caput -S``/``caget -S`` clients and reach callbacks as str; their
    waveform posts only changes (MPST/APST "On Change"), as a stringout does.
    """

    short_type = 'stringout'


class StringInput(_StringBase):
    """String input for text the app publishes: stringin up to max_length 40, a CHAR waveform beyond;
    read-only to clients (``read_only=True`` by default)."""

    short_type = 'stringin'
    read_only_default = True


class Array(Record):
    """Array (waveform) of ``length`` elements.

    Args:
        type: element type: int (LONG), float (DOUBLE), str (STRING), or an FTVL name such as 'SHORT'.
        length: number of elements (NELM).
        default: initial elements (at most ``length``; numbers in the FTVL's range, or strings of at
            most 39 bytes for STRING), loaded at iocInit through a constant input link
            (``INP={"const": [...]}``, EPICS 7 JSON link; a waveform's VAL cannot be set in a .db
            file). Errors: devioc.E015 (not a list), E018 (too long, out of range), E019 (wrong type),
            E017 (given with INP).
    """

    record_type = 'waveform'
    value_kind = 'array'

    def __init__(self, name: str, type: Any = int, length: int = 256, default: Any = None,  # noqa: A002
                 **kwargs: Any):
        super().__init__(name, **kwargs)
        ftvl = ARRAY_TYPES.get(type, type) if isinstance(type, (str, builtins.type)) else type
        if isinstance(ftvl, str):
            ftvl = ftvl.upper()
        if ftvl not in FTVL_CHOICES:
            self.problems.append(Problem(
                'devioc.E007', f'unknown array type {type!r}',
                f'use int, float, str or one of {", ".join(FTVL_CHOICES)}',
            ))
            ftvl = None
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            self.problems.append(Problem(
                'devioc.E015', f'length must be a positive integer, not {length!r}', 'e.g. length=16',
            ))
        self.ftvl, self.length = ftvl, length
        self.default_field('FTVL', ftvl)
        self.default_field('NELM', length if isinstance(length, int) and length > 0 else None)
        # a waveform posts every write by default ("Always"): do_<field> would run again for the same
        # array, and a callback that writes back would loop; MPST='Always' restores EPICS' default
        self.default_field('MPST', 'On Change')
        self.default_field('APST', 'On Change')
        self.default = default
        if default is not None:
            from .array_default import check_default, const_elements
            problems = [Problem(*p) for p in check_default(default, ftvl, length)]
            self.problems.extend(problems)
            if 'INP' in self.user_fields:
                self.problems.append(Problem('devioc.E017', 'default= and INP both set the initial value',
                                             'give one of them'))
            elif not problems:
                self.default_field('INP', {'const': const_elements(default, ftvl)})

    def to_ca(self, value: Any, name: str, choices: tuple[str, ...] = ()) -> Any:
        """A list of bytes (FTVL STRING) or a numpy array, checked element by element."""
        nelm = int(self.fields.get('NELM', 1))
        ftvl = str(self.fields.get('FTVL', self.ftvl or 'DOUBLE')).upper()
        items = [value] if isinstance(value, (str, bytes)) or np.ndim(value) == 0 else list(value)
        if len(items) > nelm:
            raise ValueError(f'cannot put that array to {name}: {name} holds {nelm} elements, not {len(items)}')
        if ftvl == 'STRING':
            return [_text(item.item() if isinstance(item, np.generic) else item, name, STRINGOUT_MAX)
                    for item in items]
        try:
            array = np.asarray(items)
        except (TypeError, ValueError) as err:
            raise ValueError(f'cannot put {value!r} to {name}: not an array of numbers') from err
        if array.dtype.kind not in 'biuf' or array.ndim != 1:
            raise ValueError(f'cannot put {value!r} to {name}: a {ftvl} waveform holds a flat list of numbers')
        if ftvl in FTVL_RANGES and array.size:
            low, high = FTVL_RANGES[ftvl]
            if array.dtype.kind == 'f' and not np.all(np.isfinite(array)):
                raise ValueError(f'cannot put {value!r} to {name}: a {ftvl} waveform holds integers, not inf/nan')
            if array.min() < low or array.max() > high:
                raise ValueError(f'cannot put {value!r} to {name}: a {ftvl} waveform holds {low}..{high}')
        return array


class Calc(_FloatValue, Record):
    """Calculation (calc) record: CALC expression over inputs A..L from links INPA..INPL.

    Args:
        calc: the expression (CALC, at most 80 characters).
        scan: SCAN (0 = Passive); prec: PREC; inpa..inpl: input links.
    """

    record_type = 'calc'

    def __init__(self, name: str, scan: Any = 0, prec: int = 0, calc: str = '', **kwargs: Any):
        inputs = {k: kwargs.pop(k) for k in list(kwargs) if k[:3] == 'inp' and k[3:].upper() in CALC_INPUTS
                  and len(k) == 4}
        super().__init__(name, **kwargs)
        self.default_field('CALC', calc or None)  # the record's own default: an empty CALC does not load
        self.default_field('SCAN', scan)
        self.default_field('PREC', prec)
        for key, link in sorted(inputs.items()):
            self.default_field(key.upper(), link)


class CalcOut(Calc):
    """Calculation with output (calcout): Calc plus OUT, OOPT and DOPT."""

    record_type = 'calcout'

    def __init__(self, name: str, out: str = '', oopt: Any = 0, dopt: Any = 0, **kwargs: Any):
        super().__init__(name, **kwargs)
        self.default_field('OUT', out or None)
        self.default_field('OOPT', oopt)
        self.default_field('DOPT', dopt)


KINDS = (Enum, EnumInput, Toggle, BoolInput, BinaryOutput, BinaryInput, Integer, Float, IntegerInput,
         FloatInput, String, StringInput, Array, Calc, CalcOut)
