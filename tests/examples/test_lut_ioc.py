"""End-to-end tests of the look-up-table IOC, driven only through Channel Access clients.

Each test runs a plain softIoc serving the input and output PVs (on the session's default pool
port) and examples/lut/bin/app.server in a subprocess (on another pool port, ``ca_port``); the test
reads and writes PVs with pyepics and the C caget/caput tools only.
"""

import json
import os
import subprocess
import sys
import time

import epics
import numpy as np
import pytest
from scipy import interpolate

from devioc import testing
from devioc.autosave import read_file
from devioc.testing import stop_process

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
APP = os.path.join(ROOT, 'examples', 'lut', 'bin', 'app.server')
FITS = ['LINEAR', 'NEAREST', 'NEXT', 'PREVIOUS', 'SPLINE0', 'SPLINE1', 'SPLINE2', 'SPLINE3', 'POLY']
X = [0.0, 1.0, 2.5, 4.0, 6.0, 7.5]
Y = [0.0, 2.0, 1.0, 5.0, 3.0, 4.5]
PROBES = [0.4, 1.7, 2.5, 3.1, 5.2, 6.9, 7.5]
START_TIMEOUT = 30.0

# polling a PV before it connects makes pyepics warn; the polls are bounded by wait_for
pytestmark = pytest.mark.filterwarnings("ignore:ca.get.*timed out:UserWarning")
TIMEOUT = 10.0


def reference(fit, x, y, degree=2):
    """The expected curve, computed here with scipy/numpy independently of the app."""
    kinds = {'LINEAR': 'linear', 'NEAREST': 'nearest', 'NEXT': 'next', 'PREVIOUS': 'previous',
             'SPLINE0': 'zero', 'SPLINE1': 'slinear', 'SPLINE2': 'quadratic', 'SPLINE3': 'cubic'}
    if fit == 'POLY':
        return np.poly1d(np.polyfit(x, y, degree))
    return interpolate.interp1d(x, y, kind=kinds[fit])


def get(name, **kwargs):
    return epics.caget(name, timeout=1.0, **kwargs)


def put(name, value):
    assert epics.caput(name, value, wait=True, timeout=5.0) == 1, f'caput {name} {value} failed'


def close(a, b):
    return a is not None and abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))


class LutRun:
    """One test's processes and names: the demo softIoc, the LUT app, their PVs."""

    def __init__(self, tmp_path, device, ca_env, app_port):
        self.tmp = tmp_path
        self.device = device
        self.env = dict(ca_env, DEVIOC_CACHE_DIR=str(tmp_path / 'cache'), DEVIOC_STATE_DIR=str(tmp_path / 'state'))
        self.app_port = app_port
        self.data = tmp_path / 'data'
        self.input = f'{device}IN:pos'
        self.output = f'{device}OUT:sp'
        self.app = None
        self.demo = None
        self.starts = 0

    def pv(self, name):
        return f'{self.device}:{name}'

    def start_demo(self):
        db = self.tmp / 'demo.db'
        db.write_text(f'record(ao, "{self.input}") {{ field(PREC, "6") }}\n'
                      f'record(ao, "{self.output}") {{ field(PREC, "6") }}\n')
        log = open(self.tmp / 'demo.log', 'w')
        # stdin is a pipe: softIoc exits when it reaches EOF, even if this test process dies
        self.demo = subprocess.Popen([testing.epics_tool('softIoc'), '-d', str(db)], cwd=str(self.tmp),
                                     stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                     env=self.env)
        log.close()
        testing.wait_for(lambda: get(self.output) is not None, START_TIMEOUT, 'the demo softIoc PVs')

    def start_app(self):
        self.starts += 1
        log = open(self.tmp / f'app{self.starts}.log', 'w')
        env = dict(self.env, EPICS_CA_SERVER_PORT=str(self.app_port))
        self.app = subprocess.Popen(
            [sys.executable, APP, '--device', self.device, '--macro', f'input={self.input}',
             '--macro', f'output={self.output}', '--data', str(self.data)],
            cwd=str(self.tmp), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()

        def up():
            if self.app.poll() is not None:
                raise AssertionError(f'app.server exited with {self.app.returncode}:\n{self.app_log()}')
            return get(self.pv('message'), as_string=True)

        testing.wait_for(up, START_TIMEOUT, f'{self.device}:message from the LUT app')

    def stop_app(self):
        if self.app is not None:
            stop_process(self.app)
            self.app = None

    def stop(self):
        self.stop_app()
        if self.demo is not None:
            stop_process(self.demo)
            self.demo = None

    def app_log(self):
        return (self.tmp / f'app{self.starts}.log').read_text()

    # -- driving it through CA -----------------------------------------------------------------
    def move_input(self, x):
        put(self.input, x)
        testing.wait_for(lambda: close(get(self.pv('input')), x), TIMEOUT, f'{self.device}:input = {x}')

    def add_point(self, x, y):
        self.move_input(x)
        put(self.pv('new'), y)
        testing.wait_for(lambda: f'({x:.6g}, {y:.6g})' in self.message(), TIMEOUT,
                         f'point ({x}, {y}) reported in the message')

    def message(self):
        return get(self.pv('message'), as_string=True) or ''

    def wait_output(self, expected, what):
        testing.wait_for(lambda: close(get(self.output), expected), TIMEOUT,
                         f'{self.output} = {expected} ({what}); last message: {self.message()!r}')

    def wait_status(self, state, text):
        testing.wait_for(lambda: get(self.pv('status'), as_string=True) == state and text in self.message(),
                         TIMEOUT, f'status {state} with message containing {text!r}')


@pytest.fixture
def lut(tmp_path, device, ca_env, ca_port):
    run = LutRun(tmp_path, device, ca_env, ca_port)
    try:
        run.start_demo()
        yield run
    finally:
        run.stop()


def fill_table(lut):
    for x, y in zip(X, Y):
        lut.add_point(x, y)
    testing.wait_for(lambda: get(lut.pv('npoints')) == len(X), TIMEOUT, 'npoints = 6')


def test_each_fit_moves_the_output_as_scipy_says(lut):
    """For every fit kind, moving the input PV writes scipy's value of the table to the output PV."""
    lut.start_app()
    fill_table(lut)
    for fit in FITS:
        put(lut.pv('fit'), FITS.index(fit))
        if fit == 'POLY':
            put(lut.pv('degree'), 2)
        curve = reference(fit, X, Y, degree=2)
        for x in PROBES:
            lut.move_input(x)
            lut.wait_output(float(curve(x)), f'{fit} at input {x}')
            assert close(get(lut.pv('target')), float(curve(x)))
    # POLY with another degree: the degree PV takes effect at once
    put(lut.pv('degree'), 3)
    lut.wait_output(float(reference('POLY', X, Y, degree=3)(PROBES[-1])), 'POLY degree 3')
    assert testing.caget(lut.pv('status'), lut.env) == 'OK'


def test_offsets_shift_input_and_output(lut):
    """With offsets, the output is f(input - xoffset) + yoffset, clamped to the table's ends."""
    lut.start_app()
    fill_table(lut)
    put(lut.pv('fit'), FITS.index('SPLINE3'))
    put(lut.pv('xoffset'), 0.5)
    put(lut.pv('yoffset'), -2.0)
    curve = reference('SPLINE3', X, Y)
    for x in [1.0, 3.3, 7.9]:
        lut.move_input(x)
        lut.wait_output(float(curve(x - 0.5)) - 2.0, f'offsets at input {x}')
    lut.move_input(20.0)
    lut.wait_output(float(curve(X[-1])) - 2.0, 'input beyond the table')
    assert 'outside the table' in lut.message()


def test_table_edits_persist_across_restart(lut):
    """Points, deletions and settings made through PVs are back after the app restarts."""
    lut.start_app()
    fill_table(lut)
    lut.add_point(1.0, 9.0)                    # replaces (1, 2)
    lut.move_input(2.4)
    put(lut.pv('delete'), 1)                   # deletes the point nearest 2.4: (2.5, 1)
    testing.wait_for(lambda: 'deleted (2.5, 1)' in lut.message(), TIMEOUT, 'delete reported')
    put(lut.pv('fit'), FITS.index('SPLINE2'))
    put(lut.pv('yoffset'), 1.5)
    xs, ys = [0.0, 1.0, 4.0, 6.0, 7.5], [0.0, 9.0, 5.0, 3.0, 4.5]
    lut.move_input(3.0)
    lut.wait_output(float(reference('SPLINE2', xs, ys)(3.0)) + 1.5, 'before the restart')
    state = lut.tmp / 'state' / lut.device / 'autosave.json'

    def saved(att):
        try:
            return read_file(state)['fields'][att]['values']['VAL']
        except (FileNotFoundError, KeyError):
            return None

    flat = [v for point in zip(xs, ys) for v in point]
    testing.wait_for(lambda: saved('points') == flat, TIMEOUT, 'the table in the autosave file')
    assert (saved('fit'), saved('yoffset')) == (FITS.index('SPLINE2'), 1.5)

    lut.stop_app()
    put(lut.output, -100.0)
    put(lut.input, 5.0)                        # the input moves while the app is down
    lut.start_app()
    testing.wait_for(lambda: get(lut.pv('npoints')) == 5, TIMEOUT, 'npoints = 5 after restart')
    assert list(get(lut.pv('xvals'))[:5]) == xs
    assert list(get(lut.pv('yvals'))[:5]) == ys
    assert testing.caget(lut.pv('fit'), lut.env) == 'SPLINE2'
    assert float(testing.caget(lut.pv('yoffset'), lut.env)) == 1.5
    # on start the app drives the output from the current input with the restored table
    lut.wait_output(float(reference('SPLINE2', xs, ys)(5.0)) + 1.5, 'after the restart')


def test_too_few_points_is_an_alarm_with_a_message(lut):
    """An empty or too small table sets status ALARM (MAJOR) with a readable reason, and no write."""
    lut.start_app()
    lut.wait_status('ALARM', 'LINEAR needs at least 2 points, the table has 0')
    assert testing.caget(lut.pv('status.SEVR'), lut.env) == 'MAJOR'
    assert testing.caget(lut.pv('status.STAT'), lut.env) == 'STATE'
    for x, y in zip(X[:3], Y[:3]):
        lut.add_point(x, y)
    lut.wait_status('OK', '')
    put(lut.pv('fit'), FITS.index('SPLINE3'))
    lut.wait_status('ALARM', 'SPLINE3 needs at least 4 points, the table has 3')
    put(lut.output, -100.0)
    lut.move_input(1.5)
    time.sleep(0.5)
    assert get(lut.output) == -100.0, 'a bad table must not drive the output'
    assert testing.caget(lut.pv('message'), lut.env, '-S').startswith('SPLINE3 needs at least 4 points')
    lut.add_point(4.0, 5.0)
    lut.wait_status('OK', '')
    lut.wait_output(float(reference('SPLINE3', X[:4], Y[:4])(4.0)), 'table fixed')


def test_duplicate_x_in_the_file_is_an_alarm(lut):
    """A table file holding two points at one x starts the app in ALARM; deleting one clears it."""
    lut.data.mkdir()
    (lut.data / f'{lut.device}.json').write_text(json.dumps({
        'format': 'devioc-lut', 'version': 1, 'settings': {'fit': 'LINEAR'},
        'points': [[0, 0], [2, 1], [2, 3], [4, 4]]}))
    lut.start_app()
    lut.wait_status('ALARM', 'duplicate x = 2 at points 1 and 2: delete one of them')
    assert testing.caget(lut.pv('status.SEVR'), lut.env) == 'MAJOR'
    assert lut.app.poll() is None
    lut.move_input(2.0)
    put(lut.pv('delete'), 1)                   # the first of the two points at x = 2 goes
    lut.wait_status('OK', 'deleted (2, 1)')
    lut.move_input(3.0)
    lut.wait_output(float(reference('LINEAR', [0, 2, 4], [0, 3, 4])(3.0)), 'after the duplicate was deleted')


def test_an_earlier_table_file_is_imported_once(lut):
    """--data imports an earlier version's table file when autosave holds no table, then renames it."""
    lut.data.mkdir()
    (lut.data / f'{lut.device}.json').write_text(json.dumps({
        'format': 'devioc-lut', 'version': 1, 'settings': {'fit': 'NEAREST', 'yoffset': 0.5},
        'points': [[0, 0], [2, 1], [4, 4]]}))
    lut.start_app()
    testing.wait_for(lambda: get(lut.pv('npoints')) == 3, TIMEOUT, 'the imported points')
    assert testing.caget(lut.pv('fit'), lut.env) == 'NEAREST'
    assert float(testing.caget(lut.pv('yoffset'), lut.env)) == 0.5
    assert 'imported 3 points' in lut.message()
    assert [n for n in os.listdir(lut.data) if n.startswith(f'{lut.device}.json.imported-')]
    assert not (lut.data / f'{lut.device}.json').exists()
    put(lut.pv('clear'), 1)                     # an emptied table stays empty: nothing is imported again
    testing.wait_for(lambda: get(lut.pv('npoints')) == 0, TIMEOUT, 'the cleared table')
    time.sleep(1.5)                             # autosave writes within a second
    lut.stop_app()
    lut.start_app()
    assert get(lut.pv('npoints')) == 0
    assert testing.caget(lut.pv('fit'), lut.env) == 'NEAREST'


def test_corrupt_file_is_an_alarm_not_a_crash(lut):
    """An unreadable table file is moved aside and reported; the app serves an empty table."""
    lut.data.mkdir()
    (lut.data / f'{lut.device}.json').write_text('{"format": "devioc-lut", "points": [[1, 2')
    lut.start_app()
    lut.wait_status('ALARM', 'bad table file, moved to')
    assert any(name.startswith(f'{lut.device}.json.corrupt-') for name in os.listdir(lut.data))
    assert get(lut.pv('npoints')) == 0
    # a new table saved through the PVs clears the file alarm
    lut.add_point(0.0, 1.0)
    lut.add_point(1.0, 3.0)
    lut.wait_status('OK', '')


def test_control_off_stops_writes(lut):
    """With control OFF the target still follows the input but the output PV is left alone."""
    lut.start_app()
    fill_table(lut)
    lut.move_input(1.0)
    lut.wait_output(2.0, 'control ON')
    testing.caput(lut.pv('control'), 'OFF', lut.env)
    lut.move_input(4.0)
    testing.wait_for(lambda: close(get(lut.pv('target')), 5.0), TIMEOUT, 'target follows with control OFF')
    time.sleep(0.5)
    assert get(lut.output) == 2.0
    testing.caput(lut.pv('control'), 'ON', lut.env)
    lut.wait_output(5.0, 'control back ON writes the current target')


def test_lost_input_pv_is_an_alarm_until_it_returns(lut):
    """When the input PV's IOC goes away the status is ALARM naming it; it clears when it is back."""
    lut.start_app()
    fill_table(lut)
    lut.wait_status('OK', '')
    stop_process(lut.demo)
    lut.wait_status('ALARM', f'input PV {lut.input} is not connected')
    assert lut.app.poll() is None
    lut.start_demo()                          # a fresh IOC: input and output start at 0
    lut.wait_status('OK', '')
    lut.move_input(3.0)
    lut.wait_output(float(reference('LINEAR', X, Y)(3.0)), 'after the input IOC came back')
