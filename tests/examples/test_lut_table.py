"""Unit tests of examples/lut/lut/table.py: fits against scipy, offsets, validation, the file."""

import json
import os
import sys

import numpy as np
import pytest
from scipy import interpolate

LUT_DIR = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, 'examples', 'lut')
if os.path.abspath(LUT_DIR) not in sys.path:
    sys.path.insert(0, os.path.abspath(LUT_DIR))

from lut.table import (  # noqa: E402
    Fit, Settings, Table, TableError, TableFileError, TableStore, min_points)

X = np.array([0.0, 1.0, 2.5, 4.0, 6.0, 7.5])
Y = np.array([0.0, 2.0, 1.0, 5.0, 3.0, 4.5])
PROBES = np.linspace(0.0, 7.5, 37)

# The reference for each fit, computed here with scipy/numpy calls of our own choosing
# (splines through interp1d kinds, not the make_interp_spline the code uses).
REFERENCE = {
    Fit.LINEAR: lambda x, y: interpolate.interp1d(x, y, kind='linear'),
    Fit.NEAREST: lambda x, y: interpolate.interp1d(x, y, kind='nearest'),
    Fit.NEXT: lambda x, y: interpolate.interp1d(x, y, kind='next'),
    Fit.PREVIOUS: lambda x, y: interpolate.interp1d(x, y, kind='previous'),
    Fit.SPLINE0: lambda x, y: interpolate.interp1d(x, y, kind='zero'),
    Fit.SPLINE1: lambda x, y: interpolate.interp1d(x, y, kind='slinear'),
    Fit.SPLINE2: lambda x, y: interpolate.interp1d(x, y, kind='quadratic'),
    Fit.SPLINE3: lambda x, y: interpolate.interp1d(x, y, kind='cubic'),
}


def make_table():
    # points given out of order: the table sorts them
    order = [3, 0, 5, 1, 4, 2]
    return Table(zip(X[order], Y[order]))


@pytest.mark.parametrize('fit', list(REFERENCE), ids=lambda fit: fit.name)
def test_interpolating_fit_matches_scipy(fit):
    """Every interpolating fit gives scipy's value at every probe inside the table."""
    table = make_table()
    expected = REFERENCE[fit](X, Y)(PROBES)
    got = [table.evaluate(p, Settings(fit=fit)) for p in PROBES]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('degree', [0, 1, 2, 3])
def test_poly_fit_matches_numpy_polyfit(degree):
    """POLY evaluates numpy's least-squares polynomial of the chosen degree."""
    table = make_table()
    coeffs = np.polyfit(X, Y, degree)
    expected = np.polyval(coeffs, PROBES)
    got = [table.evaluate(p, Settings(fit=Fit.POLY, degree=degree)) for p in PROBES]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_offsets_shift_input_and_output():
    """The target is f(input - xoffset) + yoffset."""
    table = make_table()
    settings = Settings(fit=Fit.SPLINE3, xoffset=1.25, yoffset=-3.0)
    ref = interpolate.interp1d(X, Y, kind='cubic')
    for value in [1.25, 2.0, 5.0, 8.75]:
        assert table.evaluate(value, settings) == pytest.approx(float(ref(value - 1.25)) - 3.0)


def test_inputs_outside_the_table_are_clamped_to_its_ends():
    """Below the first x the target is f(xmin), above the last x it is f(xmax)."""
    table = make_table()
    settings = Settings(fit=Fit.POLY, degree=2, yoffset=1.0)
    poly = np.poly1d(np.polyfit(X, Y, 2))
    assert table.evaluate(-10.0, settings) == pytest.approx(poly(X[0]) + 1.0)
    assert table.evaluate(99.0, settings) == pytest.approx(poly(X[-1]) + 1.0)
    assert table.clamped(-10.0, settings) and table.clamped(99.0, settings)
    assert not table.clamped(3.0, settings)


def test_point_at_input_makes_that_input_hit_the_value():
    """A point added at an input (with offsets) makes the target at that input equal its value."""
    table = make_table()
    settings = Settings(fit=Fit.LINEAR, xoffset=0.5, yoffset=10.0)
    x, y = table.at_input(3.0, 42.0, settings)
    assert (x, y) == (2.5, 32.0)
    table.add(x, y)
    assert table.evaluate(3.0, settings) == pytest.approx(42.0)


def test_add_replaces_the_point_at_the_same_x():
    """Adding at an existing x replaces that point and returns the old one."""
    table = Table([(0, 0), (1, 1)])
    assert table.add(2.0, 4.0) is None
    assert table.add(1.0 + 1e-12, 7.0) == (1.0, 1.0)
    assert table.points == [(0.0, 0.0), (1.0 + 1e-12, 7.0), (2.0, 4.0)]


def test_add_refuses_nan_and_inf():
    """A non-finite x or y is refused with a message naming it, and the table is unchanged."""
    table = Table([(0, 0)])
    with pytest.raises(TableError, match='x = nan'):
        table.add(float('nan'), 1.0)
    with pytest.raises(TableError, match='y = inf'):
        table.add(1.0, float('inf'))
    assert table.points == [(0.0, 0.0)]


def test_remove_nearest_and_clear():
    """remove_nearest pops the point closest in x; clear empties; an empty table says so."""
    table = make_table()
    assert table.remove_nearest(2.2) == (2.5, 1.0)
    assert 2.5 not in table.xs
    table.clear()
    assert len(table) == 0
    with pytest.raises(TableError, match='empty'):
        table.remove_nearest(0.0)


@pytest.mark.parametrize('fit,degree,need', [
    (Fit.LINEAR, 1, 2), (Fit.NEAREST, 1, 2), (Fit.NEXT, 1, 2), (Fit.PREVIOUS, 1, 2),
    (Fit.SPLINE0, 1, 2), (Fit.SPLINE1, 1, 2), (Fit.SPLINE2, 1, 3), (Fit.SPLINE3, 1, 4),
    (Fit.POLY, 0, 1), (Fit.POLY, 4, 5)])
def test_too_few_points_is_a_readable_error(fit, degree, need):
    """A table one point short of what the fit needs raises TableError saying how many it needs."""
    assert min_points(fit, degree) == need
    table = Table((float(i), float(i * i)) for i in range(need - 1))
    with pytest.raises(TableError, match=f'needs at least {need} points, the table has {need - 1}'):
        table.evaluate(0.0, Settings(fit=fit, degree=degree))
    table.add(float(need), 1.0)
    table.check(fit, degree)


def test_duplicate_x_is_a_readable_error():
    """Two points at one x (as a hand-edited file can hold) are reported with both indices."""
    table = Table([(0, 0), (1, 1), (1, 2), (3, 3)])
    with pytest.raises(TableError, match=r'duplicate x = 1 at points 1 and 2: delete one'):
        table.check(Fit.LINEAR)


def test_nan_point_is_a_readable_error():
    """A NaN in a loaded table is reported by index."""
    table = Table([(0, 0), (1, float('nan')), (2, 2)])
    with pytest.raises(TableError, match=r'point 1 has y = nan'):
        table.check(Fit.LINEAR)


def test_bad_poly_degree_is_a_readable_error():
    """A negative or huge POLY degree is refused with the allowed range."""
    with pytest.raises(TableError, match=r'degree must be 0\.\.10'):
        make_table().check(Fit.POLY, -1)


def test_nan_input_is_refused():
    """An input that is not a number gives a TableError, not a NaN target."""
    with pytest.raises(TableError, match='not a finite number'):
        make_table().evaluate(float('nan'), Settings())


def test_store_round_trip(tmp_path):
    """A saved table and its settings load back equal, and no temporary file is left behind."""
    store = TableStore(str(tmp_path), 'LUT1')
    settings = Settings(fit=Fit.POLY, degree=3, xoffset=0.5, yoffset=-2.0, control=False)
    store.save(make_table(), settings)
    assert os.listdir(tmp_path) == ['LUT1.json']
    table, loaded = store.load()
    assert table.points == make_table().points
    assert loaded == settings


def test_store_save_replaces_atomically(tmp_path, monkeypatch):
    """A save that fails before the rename leaves the old file intact and no temporary file."""
    store = TableStore(str(tmp_path), 'LUT1')
    store.save(Table([(0, 1), (1, 2)]), Settings())

    def broken_replace(src, dst):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(os, 'replace', broken_replace)
    with pytest.raises(OSError):
        store.save(Table([(5, 5)]), Settings())
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ['LUT1.json']
    assert store.load()[0].points == [(0.0, 1.0), (1.0, 2.0)]


def test_store_missing_file_is_an_empty_table(tmp_path):
    """No file yet means an empty table and no saved settings."""
    table, settings = TableStore(str(tmp_path / 'not-yet'), 'LUT1').load()
    assert len(table) == 0 and settings is None


@pytest.mark.parametrize('text,message', [
    ('{"format": "devioc-lut", "version": 1, "points": [[0, 1], [2', 'not valid JSON'),
    ('[1, 2, 3]', 'is not a devioc-lut file'),
    ('{"format": "devioc-lut", "version": 9, "points": []}', 'has version 9'),
    ('{"format": "devioc-lut", "version": 1, "points": [[0, "a"]]}', 'number pairs'),
    ('{"format": "devioc-lut", "version": 1, "points": [], "settings": {"fit": "CUBE"}}',
     'unknown fit'),
])
def test_store_corrupt_file_is_a_table_file_error(tmp_path, text, message):
    """A file that is not a readable table raises TableFileError naming the file and the fault."""
    store = TableStore(str(tmp_path), 'LUT1')
    with open(store.path, 'w') as handle:
        handle.write(text)
    with pytest.raises(TableFileError, match=message) as info:
        store.load()
    assert store.path in str(info.value)


def test_store_quarantine_keeps_the_corrupt_file(tmp_path):
    """quarantine renames the unreadable file aside, so the next save does not destroy it."""
    store = TableStore(str(tmp_path), 'LUT1')
    with open(store.path, 'w') as handle:
        handle.write('garbage')
    moved = store.quarantine()
    assert not os.path.exists(store.path)
    with open(moved) as handle:
        assert handle.read() == 'garbage'


def test_store_file_is_readable_json(tmp_path):
    """The file is plain JSON with the fit by name, so an engineer can read and edit it."""
    store = TableStore(str(tmp_path), 'LUT1')
    store.save(Table([(0, 1)]), Settings(fit=Fit.SPLINE2))
    with open(store.path) as handle:
        data = json.load(handle)
    assert data['settings']['fit'] == 'SPLINE2'
    assert data['points'] == [[0.0, 1.0]]
