"""Checks of ``Array(default=[...])``: the initial elements a waveform loads through a constant link.

A waveform's VAL cannot be set in a .db file (it is DBF_NOACCESS); EPICS 7 loads a constant JSON
input link, ``INP={"const": [...]}``, into it at iocInit (``dbConstLoadArray``), which softIoc
7.0.8.1 accepts for every FTVL, strings included. What it cannot hold is refused here, before
softIoc runs, with the element's index: softIoc would wrap an integer silently or refuse the file.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

#: the largest finite magnitude of each float FTVL
_FLOAT_MAX = {'FLOAT': 3.4028234663852886e38, 'DOUBLE': 1.7976931348623157e308}
STRING_BYTES = 39  # an element of a STRING waveform is char[40], NUL included


def check_default(default: Any, ftvl: str | None, length: Any) -> list[tuple[str, str, str]]:
    """Problems of ``default`` for a waveform of ``ftvl`` with ``length`` elements, as (id, msg, hint).

    Args:
        default: the initial elements the user gave.
        ftvl: the waveform's FTVL (None when the type was already refused).
        length: NELM (checked elsewhere when it is not a positive int).
    """
    from .records import FTVL_RANGES

    if isinstance(default, (str, bytes, dict)) or not hasattr(default, '__iter__'):
        return [('devioc.E015', f'default must be a list of elements, not {default!r}',
                 'e.g. default=[1, 2, 3] (a single element as default=[x])')]
    items = [item.item() if isinstance(item, np.generic) else item for item in default]
    problems = []
    if isinstance(length, int) and len(items) > length:
        problems.append(('devioc.E018', f'default has {len(items)} elements; the array holds length={length}',
                         f'give at most {length} elements, or a larger length'))
    if ftvl is None:
        return problems
    for index, item in enumerate(items):
        problem = _element(item, ftvl, FTVL_RANGES.get(ftvl))
        if problem:
            problems.append((problem[0], f'default[{index}]={item!r}: {problem[1]}', problem[2]))
            break  # one element is enough to say what is wrong
    return problems


def _element(item: Any, ftvl: str, int_range: tuple[int, int] | None) -> tuple[str, str, str] | None:
    if ftvl == 'STRING':
        if not isinstance(item, str):
            return ('devioc.E019', f'a STRING array holds strings, not {type(item).__name__}', 'give str elements')
        used = len(item.encode('utf-8'))
        if used > STRING_BYTES:
            return ('devioc.E013', f'{used} bytes (UTF-8); an element of a STRING array holds {STRING_BYTES}',
                    'shorten it')
        return None
    if isinstance(item, bool):
        item = int(item)
    if not isinstance(item, numbers.Real):
        return ('devioc.E019', f'a {ftvl} array holds numbers, not {type(item).__name__}', 'give numbers')
    if not math.isfinite(item):
        return ('devioc.E019', 'a constant link cannot hold inf or nan (JSON has no such numbers)',
                'give finite numbers, and put inf/nan from the app at start-up')
    if int_range is not None:
        if item != int(item):
            return ('devioc.E019', f'a {ftvl} array holds integers, not fractions', 'give integers')
        low, high = int_range
        if not low <= int(item) <= high:
            return ('devioc.E018', f'a {ftvl} array holds {low}..{high}', 'give elements within that range')
    elif abs(item) > _FLOAT_MAX.get(ftvl, math.inf):
        return ('devioc.E018', f'beyond what a {ftvl} element holds', 'give smaller numbers')
    return None


def const_elements(default: Any, ftvl: str) -> list:
    """The checked ``default`` as JSON elements: Python numbers (integers for integer FTVLs) or str."""
    from .records import FTVL_RANGES

    items = [item.item() if isinstance(item, np.generic) else item for item in default]
    if ftvl in FTVL_RANGES:
        return [int(item) for item in items]
    if ftvl == 'STRING':
        return list(items)
    return [float(item) if isinstance(item, bool) else item for item in items]
