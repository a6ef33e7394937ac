"""Record kinds: one small declarative class per kind of EPICS record a model can hold.

A record kind knows its EPICS record type, maps its Python keyword arguments to EPICS fields, and
passes any uppercase keyword straight through as an EPICS field (``SCAN='1 second'``, ``HIHI=90``).
Nothing is validated here beyond what the constructor itself must decide; :mod:`devioc.checks`
checks every field against the record type's definition when the model class is built.
"""
from __future__ import annotations

import enum as _enum
from collections.abc import Iterable
from typing import Any, ClassVar, Union

STATE_KEYS = ('ZR', 'ON', 'TW', 'TH', 'FR', 'FV', 'SX', 'SV', 'EI', 'NI', 'TE', 'EL', 'TV', 'TT', 'FT', 'FF')
CALC_INPUTS = tuple('ABCDEFGHIJKL')
STRINGOUT_MAX = 39  # stringout/stringin VAL is char[40], NUL included

#: Python types and names accepted for ``Array(type=...)``, mapped to waveform FTVL.
ARRAY_TYPES: dict[Any, str] = {
    int: 'LONG', float: 'DOUBLE', str: 'STRING', bool: 'UCHAR', bytes: 'UCHAR',
}
FTVL_CHOICES = ('STRING', 'CHAR', 'UCHAR', 'SHORT', 'USHORT', 'LONG', 'ULONG', 'INT64', 'UINT64',
                'FLOAT', 'DOUBLE', 'ENUM')

Number = Union[int, float]


class Problem:
    """A problem found while declaring a record, reported by the checks with the field's name."""

    def __init__(self, check_id: str, msg: str, hint: str = ''):
        self.id, self.msg, self.hint = check_id, msg, hint


class Record:
    """Base class of all record kinds; not used directly.

    Args:
        name: record name; the PV is ``<device>:<name>``. Macros such as ``$(device)`` may be used.
        desc: description (DESC field, at most 40 characters).
        **fields: any EPICS field of the record type, as an uppercase keyword.
    """

    record_type: ClassVar[str] = ''
    #: what callbacks and get() see: 'number', 'enum' (state index), 'string' or 'array'
    value_kind: ClassVar[str] = 'number'

    def __init__(self, name: str, *, desc: str | None = None, **fields: Any):
        self.name = name
        self.problems: list[Problem] = []
        self.fields: dict[str, Any] = {}
        self.user_fields: set[str] = set()
        self.attname = ''  # set by the model class
        self.set_field('DESC', desc)
        for key, value in fields.items():
            if key.isupper():
                self.set_field(key, value)
            else:
                self.problems.append(Problem(
                    'devioc.E014', f'unknown keyword argument {key}={value!r} for {type(self).__name__}',
                    _keyword_hint(type(self), key),
                ))

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

    def choices(self) -> list[str]:
        """State names for enum-like kinds (empty otherwise)."""
        return []

    def __repr__(self) -> str:
        return f'<{type(self).__name__} {self.name!r} ({self.record})>'


def _keyword_hint(kind: type, key: str) -> str:
    import difflib
    import inspect

    names = [p for cls in kind.__mro__ if '__init__' in cls.__dict__
             for p in inspect.signature(cls.__init__).parameters if p not in ('self', 'fields', 'name')]
    close = difflib.get_close_matches(key, names, n=1)
    if close:
        return f'did you mean {close[0]}=? EPICS fields are given in uppercase, e.g. {key.upper()}=...'
    return (f'{kind.__name__} takes {", ".join(sorted(set(names)))}; '
            f'EPICS fields are given in uppercase, e.g. {key.upper()}=...')


def _state_pairs(choices: Any) -> list[tuple[str, int]]:
    """(label, raw value) pairs for list/tuple choices or a Python Enum class."""
    if isinstance(choices, _enum.EnumMeta):
        members = list(choices)
        if issubclass(choices, _enum.IntFlag) and all(m.value != 0 for m in members):
            members = [choices(0)] + members
        return [((m.name or 'NONE').replace('_', ' '), int(m.value)) for m in members]
    if isinstance(choices, (str, bytes)) or not isinstance(choices, Iterable):
        raise TypeError(f'choices must be a list, tuple or Enum class, not {type(choices).__name__}')
    return [(str(c), i) for i, c in enumerate(choices)]


class _EnumBase(Record):
    value_kind = 'enum'

    def __init__(self, name: str, choices: Any = ('OFF', 'ON'), default: Any = 0, **kwargs: Any):
        super().__init__(name, **kwargs)
        self.enum_class = choices if isinstance(choices, _enum.EnumMeta) else None
        try:
            self.states = _state_pairs(choices)
        except TypeError as err:
            self.problems.append(Problem('devioc.E015', str(err), "use choices=['A', 'B'] or an Enum class"))
            self.states = []
        for key, (label, value) in zip(STATE_KEYS, self.states):
            self.default_field(f'{key}ST', label)
            self.default_field(f'{key}VL', value)
        if isinstance(default, _enum.Enum):
            default = next((i for i, (_, v) in enumerate(self.states) if v == int(default.value)), default)
        self.default = default
        self.default_field('VAL', default)

    def choices(self) -> list[str]:
        return [label for label, _ in self.states]


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
    """Multi-state input (mbbi) for a state the app publishes; read-only to clients."""

    record_type = 'mbbi'

    def __init__(self, name: str, choices: Any = ('OFF', 'ON'), default: Any = 0, **kwargs: Any):
        super().__init__(name, choices=choices, default=default, **kwargs)


class Toggle(Record):
    """Binary output (bo) that returns to zero after ``high`` seconds: a command button.

    Args:
        zname: label of state 0 (ZNAM); the record name when not given, as in the original.
        oname: label of state 1 (ONAM).
        high: seconds to stay at 1 before returning to 0 (HIGH); 0 or None keeps the value.
        default: initial value.
    """

    record_type = 'bo'
    value_kind = 'enum'

    def __init__(self, name: str, zname: str | None = None, oname: str = '', high: float | None = 0.1,
                 default: int | None = None, **kwargs: Any):
        super().__init__(name, **kwargs)
        self.default_field('ZNAM', zname if zname is not None else name[:25])
        self.default_field('ONAM', oname)
        self.default_field('HIGH', high or None)
        self.default_field('VAL', default)

    def choices(self) -> list[str]:
        return [str(self.fields.get('ZNAM', '')), str(self.fields.get('ONAM', ''))]


class BoolInput(Record):
    """Binary input (bi) for an on/off state the app publishes; read-only to clients."""

    record_type = 'bi'
    value_kind = 'enum'

    def __init__(self, name: str, zname: str = 'OFF', oname: str = 'ON', default: int | None = None,
                 **kwargs: Any):
        super().__init__(name, **kwargs)
        self.default_field('ZNAM', zname)
        self.default_field('ONAM', oname)
        self.default_field('VAL', default)

    def choices(self) -> list[str]:
        return [str(self.fields.get('ZNAM', '')), str(self.fields.get('ONAM', ''))]


class BinaryOutput(Record):
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


class BinaryInput(Record):
    """Bit-field input (mbbiDirect): an integer read from a link, or published by the app.

    Args:
        inp: input link (INP).
        shift: shift the value right by this many bits (SHFT).
        default: initial value.
    """

    record_type = 'mbbiDirect'

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


class Integer(_Analog):
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


class Float(_Analog):
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


class IntegerInput(_Analog):
    """Integer input (longin) for a value the app publishes; read-only to clients."""

    record_type = 'longin'

    def __init__(self, name: str, max_val: Number = 0, min_val: Number = 0, default: Number = 0,
                 units: str = '', **kwargs: Any):
        super().__init__(name, **kwargs)
        self._limits(max_val, min_val, drive=False)
        self.default_field('VAL', default)
        self.default_field('EGU', units or None)


class FloatInput(_Analog):
    """Floating-point input (ai) for a value the app publishes; read-only to clients."""

    record_type = 'ai'

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
        super().__init__(name, **kwargs)
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
            self.problems.append(Problem(
                'devioc.E015', f'max_length must be a positive integer, not {max_length!r}', 'e.g. max_length=80',
            ))
            max_length = 1
        self.max_length = max_length
        self.default = default
        self.long = max_length > STRINGOUT_MAX
        if self.long:
            self.default_field('FTVL', 'CHAR')
            self.default_field('NELM', max_length + 1)
        if default not in (None, ''):
            # a waveform's VAL cannot be set in a .db file: a constant input link loads it at init
            self.default_field(*(('INP', {'const': default}) if self.long else ('VAL', default)))

    @property
    def record(self) -> str:
        return 'waveform' if self.long else self.short_type


class String(_StringBase):
    """String output: a stringout up to 39 characters, a CHAR waveform of max_length + 1 beyond.

    Long strings work with plain ``caput -S``/``caget -S`` clients and reach callbacks as str.
    """

    short_type = 'stringout'


class StringInput(_StringBase):
    """String input for text the app publishes: stringin, or a CHAR waveform beyond 39 characters."""

    short_type = 'stringin'


class Array(Record):
    """Array (waveform) of ``length`` elements.

    Args:
        type: element type: int (LONG), float (DOUBLE), str (STRING), or an FTVL name such as 'SHORT'.
        length: number of elements (NELM).
    """

    record_type = 'waveform'
    value_kind = 'array'

    def __init__(self, name: str, type: Any = int, length: int = 256, **kwargs: Any):  # noqa: A002
        super().__init__(name, **kwargs)
        ftvl = ARRAY_TYPES.get(type, type)
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


class Calc(Record):
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
        self.default_field('CALC', calc)
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
