"""The look-up table itself: points, fits, offsets, validation and its file.

Pure logic, no EPICS. A ``Table`` holds (x, y) points sorted by x. ``Settings`` holds how the
table is used: the fit kind, the POLY degree, the x/y offsets and whether
it drives the output (control). The target for an input value is

    target = f(clip(input - xoffset, xmin, xmax)) + yoffset

where ``f`` is the chosen fit through the points. Inputs outside the table are clamped to its
ends (no extrapolation: a table drives hardware, and a fit outside its data is a guess).
Adding a point "at the current input" is the inverse: ``(input - xoffset, value - yoffset)``, so
that the target at that input becomes ``value`` for every interpolating fit.

Fits (scipy.interpolate / numpy):

    LINEAR, NEAREST, NEXT, PREVIOUS   interp1d(kind='linear' | 'nearest' | 'next' | 'previous')
    SPLINE0 .. SPLINE3                make_interp_spline(k=0 .. 3)  (interp1d 'zero', 'slinear',
                                      'quadratic', 'cubic' give the same curves)
    POLY                              numpy.polyfit(degree) -> numpy.poly1d

A table that cannot be used with a fit (too few points, duplicate x, NaN) raises ``TableError``
from ``Table.check``/``Table.evaluate`` with a message meant for an operator. ``TableStore`` saves
table and settings atomically as JSON and loads them back; a file it cannot read raises
``TableFileError``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import tempfile
import time
from typing import Callable, Iterable, List, Optional, Tuple

import numpy as np
from scipy.interpolate import interp1d, make_interp_spline

FILE_FORMAT = 'devioc-lut'
FILE_VERSION = 1
MAX_DEGREE = 10


class Fit(enum.IntEnum):
    """Fit kinds, in the order of the ``fit`` PV's states."""

    LINEAR = 0
    NEAREST = 1
    NEXT = 2
    PREVIOUS = 3
    SPLINE0 = 4
    SPLINE1 = 5
    SPLINE2 = 6
    SPLINE3 = 7
    POLY = 8


INTERP1D_KINDS = {
    Fit.LINEAR: 'linear',
    Fit.NEAREST: 'nearest',
    Fit.NEXT: 'next',
    Fit.PREVIOUS: 'previous',
}

SPLINE_ORDERS = {Fit.SPLINE0: 0, Fit.SPLINE1: 1, Fit.SPLINE2: 2, Fit.SPLINE3: 3}


class TableError(ValueError):
    """The table cannot be used as asked; the message says why and what to do."""


class TableFileError(TableError):
    """The table file exists but cannot be read back as a table."""


def min_points(fit: Fit, degree: int = 1) -> int:
    """Return the number of points the fit needs.

    Interpolating fits need 2 points, SPLINEk needs k + 1 (and at least 2), POLY needs degree + 1.
    """
    fit = Fit(fit)
    if fit in SPLINE_ORDERS:
        return max(2, SPLINE_ORDERS[fit] + 1)
    if fit is Fit.POLY:
        return degree + 1
    return 2


def _fmt(value: float) -> str:
    return f'{value:.6g}'


@dataclasses.dataclass
class Settings:
    """How the table is used: fit kind, POLY degree, offsets, and whether it drives the output."""

    fit: Fit = Fit.LINEAR
    degree: int = 1
    xoffset: float = 0.0
    yoffset: float = 0.0
    control: bool = True

    def to_json(self) -> dict:
        """Return the settings as a JSON-ready dict (the fit by name)."""
        return {'fit': Fit(self.fit).name, 'degree': int(self.degree),
                'xoffset': float(self.xoffset), 'yoffset': float(self.yoffset),
                'control': bool(self.control)}

    @classmethod
    def from_json(cls, data: dict) -> 'Settings':
        """Build settings from ``to_json`` output; raise TableFileError when a value is bad."""
        if not isinstance(data, dict):
            raise TableFileError(f'settings must be an object, not {type(data).__name__}')
        try:
            fit = Fit[data.get('fit', 'LINEAR')]
        except (KeyError, TypeError):
            raise TableFileError(
                f'unknown fit {data.get("fit")!r}: use one of {", ".join(f.name for f in Fit)}')
        try:
            return cls(fit=fit, degree=int(data.get('degree', 1)),
                       xoffset=float(data.get('xoffset', 0.0)),
                       yoffset=float(data.get('yoffset', 0.0)),
                       control=bool(data.get('control', True)))
        except (TypeError, ValueError) as exc:
            raise TableFileError(f'bad settings value: {exc}')


class Table:
    """Points (x, y) sorted by x, with the fits through them.

    Two x closer than ``tolerance`` (absolute, plus the same relative to |x|) are the same x:
    ``add`` replaces the point there, and ``check`` calls them duplicates.
    """

    def __init__(self, points: Iterable[Tuple[float, float]] = (), tolerance: float = 1e-9):
        self.tolerance = float(tolerance)
        self._points: List[Tuple[float, float]] = sorted(
            ((float(x), float(y)) for x, y in points), key=lambda p: (math.isnan(p[0]), p[0]))

    # -- contents ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._points)

    def __repr__(self) -> str:
        return f'Table({self._points!r})'

    @property
    def points(self) -> List[Tuple[float, float]]:
        """Return a copy of the points, sorted by x."""
        return list(self._points)

    @property
    def xs(self) -> np.ndarray:
        """Return the x values as a float array."""
        return np.array([p[0] for p in self._points], dtype=float)

    @property
    def ys(self) -> np.ndarray:
        """Return the y values as a float array."""
        return np.array([p[1] for p in self._points], dtype=float)

    def _same_x(self, a: float, b: float) -> bool:
        return abs(a - b) <= self.tolerance * max(1.0, abs(a), abs(b))

    def has_x(self, x: float) -> bool:
        """Return True when the table has a point at ``x`` (within the tolerance)."""
        return any(self._same_x(px, float(x)) for px, _ in self._points)

    # -- edits ------------------------------------------------------------------------------
    def add(self, x: float, y: float) -> Optional[Tuple[float, float]]:
        """Add the point (x, y), or replace the point at the same x.

        Returns the replaced point, or None when the point is new. Raises TableError when x or y
        is not a finite number (the table is left unchanged).
        """
        x, y = float(x), float(y)
        for name, value in (('x', x), ('y', y)):
            if not math.isfinite(value):
                raise TableError(f'cannot add a point with {name} = {value}: '
                                 f'{name} must be a finite number')
        for i, (px, py) in enumerate(self._points):
            if self._same_x(px, x):
                self._points[i] = (x, y)
                return (px, py)
        self._points.append((x, y))
        self._points.sort(key=lambda p: (math.isnan(p[0]), p[0]))
        return None

    def remove_nearest(self, x: float) -> Tuple[float, float]:
        """Remove and return the point whose x is nearest to ``x``.

        Raises TableError when the table is empty.
        """
        if not self._points:
            raise TableError('the table is empty: there is no point to delete')
        x = float(x)
        index = min(range(len(self._points)),
                    key=lambda i: (math.isnan(self._points[i][0]), abs(self._points[i][0] - x)))
        return self._points.pop(index)

    def clear(self) -> None:
        """Remove every point."""
        self._points = []

    # -- validation and fits ------------------------------------------------------------------
    def check(self, fit: Fit, degree: int = 1) -> None:
        """Raise TableError saying why the table cannot be used with ``fit``; return if it can."""
        fit = Fit(fit)
        for i, (x, y) in enumerate(self._points):
            for name, value in (('x', x), ('y', y)):
                if not math.isfinite(value):
                    raise TableError(f'point {i} has {name} = {value}: delete it or clear the table')
        for i in range(1, len(self._points)):
            (x0, _), (x1, _) = self._points[i - 1], self._points[i]
            if self._same_x(x0, x1):
                raise TableError(f'duplicate x = {_fmt(x1)} at points {i - 1} and {i}: '
                                 f'delete one of them')
        if fit is Fit.POLY and not 0 <= int(degree) <= MAX_DEGREE:
            raise TableError(f'POLY degree must be 0..{MAX_DEGREE}, not {degree}')
        need, have = min_points(fit, int(degree)), len(self._points)
        if have < need:
            what = f'POLY degree {degree}' if fit is Fit.POLY else fit.name
            raise TableError(f'{what} needs at least {need} points, the table has {have}: '
                             f'add points or choose another fit')

    def function(self, fit: Fit, degree: int = 1) -> Callable[[np.ndarray], np.ndarray]:
        """Return the fit through the points as a callable of table x (no offsets, no clamping).

        Raises TableError when the table cannot be used with the fit.
        """
        fit = Fit(fit)
        self.check(fit, degree)
        xs, ys = self.xs, self.ys
        if fit in INTERP1D_KINDS:
            return interp1d(xs, ys, kind=INTERP1D_KINDS[fit], assume_sorted=True)
        if fit in SPLINE_ORDERS:
            return make_interp_spline(xs, ys, k=SPLINE_ORDERS[fit])
        return np.poly1d(np.polyfit(xs, ys, int(degree)))

    def clamped(self, value: float, settings: Settings) -> bool:
        """Return True when ``value`` maps outside the table's x range (and so is clamped)."""
        if not self._points:
            return False
        x = float(value) - settings.xoffset
        return bool(x < self._points[0][0] or x > self._points[-1][0])

    def evaluate(self, value: float, settings: Settings) -> float:
        """Return the target for the input ``value``, or raise TableError.

        The input is shifted by -xoffset, clamped to the table's x range, passed through the fit,
        and the result shifted by +yoffset.
        """
        value = float(value)
        if not math.isfinite(value):
            raise TableError(f'input value {value} is not a finite number')
        func = self.function(settings.fit, settings.degree)
        xs = self.xs
        x = min(max(value - settings.xoffset, xs[0]), xs[-1])
        return float(func(x)) + settings.yoffset

    def at_input(self, value: float, target: float, settings: Settings) -> Tuple[float, float]:
        """Return the table point that makes the target at input ``value`` equal ``target``."""
        return float(value) - settings.xoffset, float(target) - settings.yoffset


def _to_text(data: dict) -> str:
    """Return the file text: indented JSON with one [x, y] point per line, for people to read."""
    points = data.pop('points')
    head = json.dumps(data, indent=1)[:-2]
    rows = ',\n'.join(f'  {json.dumps(point)}' for point in points)
    return f'{head},\n "points": [\n{rows}\n ]\n}}\n' if rows else f'{head},\n "points": []\n}}\n'


class TableStore:
    """The table file: ``<directory>/<name>.json``, written atomically.

    ``save`` writes a temporary file in the same directory, fsyncs it, replaces the old file with
    ``os.replace`` and fsyncs the directory, so a crash leaves either the old or the new file.
    """

    def __init__(self, directory: str, name: str):
        safe = ''.join(c if c.isalnum() or c in '-_.:' else '_' for c in name) or 'lut'
        self.directory = os.path.abspath(directory)
        self.path = os.path.join(self.directory, f'{safe}.json')

    def load(self) -> Tuple[Table, Optional[Settings]]:
        """Return (table, settings) from the file; an empty table and None when there is no file.

        Raises TableFileError naming the file when it cannot be read as a table. The loaded
        table is not checked against a fit: that is ``Table.check``'s job.
        """
        try:
            with open(self.path, 'r', encoding='utf-8') as handle:
                text = handle.read()
        except FileNotFoundError:
            return Table(), None
        except OSError as exc:
            raise TableFileError(f'cannot read {self.path}: {exc.strerror}')
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise TableFileError(f'{self.path} is not valid JSON ({exc})')
        if not isinstance(data, dict) or data.get('format') != FILE_FORMAT:
            raise TableFileError(f'{self.path} is not a {FILE_FORMAT} file')
        if data.get('version') != FILE_VERSION:
            raise TableFileError(f'{self.path} has version {data.get("version")!r}, '
                                 f'this program reads version {FILE_VERSION}')
        points = data.get('points')
        if not isinstance(points, list):
            raise TableFileError(f'{self.path}: "points" must be a list of [x, y] pairs')
        try:
            pairs = [(float(x), float(y)) for x, y in points]
        except (TypeError, ValueError):
            raise TableFileError(f'{self.path}: "points" must be a list of [x, y] number pairs')
        try:
            settings = Settings.from_json(data.get('settings', {}))
        except TableFileError as exc:
            raise TableFileError(f'{self.path}: {exc}')
        return Table(pairs), settings

    def save(self, table: Table, settings: Settings) -> None:
        """Write table and settings atomically; raise OSError when the file cannot be written."""
        data = {'format': FILE_FORMAT, 'version': FILE_VERSION,
                'saved': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
                'settings': settings.to_json(),
                'points': [[x, y] for x, y in table.points]}
        os.makedirs(self.directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix='.' + os.path.basename(self.path),
                                   suffix='.tmp')
        try:
            with os.fdopen(fd, 'w', encoding='utf-8') as handle:
                handle.write(_to_text(data))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def quarantine(self) -> str:
        """Rename an unreadable file out of the way (keeping it for a human) and return its new path."""
        target = f'{self.path}.corrupt-{time.strftime("%Y%m%dT%H%M%S")}'
        os.replace(self.path, target)
        return target
