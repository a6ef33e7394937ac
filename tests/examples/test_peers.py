"""The peer examples (examples/peers/): caproto's and pythonSoftIOC's example IOCs written with devioc.

Each example runs as a user runs it, ``python -m devioc run examples/peers/FILE.py:CLASS --device
NAME``, in its own process on its own CA port, with the original's PV names; the tests drive it with
the C caget/caput and pyepics monitors only, and assert what the original does.
"""
from __future__ import annotations

import importlib.util
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import epics
import pytest

from devioc.testing import answers, caget, caput, stop_process, wait_for

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / 'examples' / 'peers'
START_TIMEOUT = 30.0

# polling a PV before it connects makes pyepics warn; the polls are bounded by wait_for
pytestmark = pytest.mark.filterwarnings('ignore:ca.get.*timed out:UserWarning')


def load(name: str):
    """The example module ``examples/peers/<name>.py``, imported from its file."""
    spec = importlib.util.spec_from_file_location(f'peers_{name}', PEERS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Example:
    """One running example: its process, its log file and the environment its clients use."""

    def __init__(self, proc: subprocess.Popen, log: Path, env: dict[str, str]):
        self.proc, self.log, self.env = proc, log, env

    def output(self) -> str:
        return self.log.read_text(errors='replace')

    def get(self, pv: str, *args: str) -> str:
        return caget(pv, self.env, *args)

    def getf(self, pv: str) -> float:
        return float(caget(pv, self.env))

    def put(self, pv: str, value, *args: str) -> str:
        return caput(pv, value, self.env, *args)


@pytest.fixture
def start_example(ca_port, ca_env, tmp_path):
    """``start_example('simple.py:SimpleIOC', 'simple', 'simple:A')`` runs an example until the test ends.

    With ``script=True`` the example's file is run as a script (its ``devioc.run`` call), ``args`` after
    ``--device``.
    """
    started: list[Example] = []

    def start(target: str, device: str, ready_pv: str, env: dict[str, str] | None = None,
              script: bool = False, args: tuple[str, ...] = ()) -> Example:
        run_env = dict(ca_env, EPICS_CA_SERVER_PORT=str(ca_port), DEVIOC_CACHE_DIR=str(tmp_path / 'cache'),
                       PYTHONUNBUFFERED='1', **(env or {}))
        log = tmp_path / f'{device}.log'
        file, cls = target.split(':')
        with open(log, 'wb') as out:
            command = [str(PEERS / file)] if script else ['-m', 'devioc', 'run', f'{PEERS / file}:{cls}']
            proc = subprocess.Popen(
                [sys.executable, *command, '--device', device, *args],
                env=run_env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path,
            )
        example = Example(proc, log, run_env)
        started.append(example)
        # the app is up once the runner says it serves the device (every channel connected and every
        # monitor's first value in): a write before that may reach softIoc before the app listens
        wait_for(lambda: proc.poll() is not None
                 or (f'serving {device} (pid' in example.output() and answers(ready_pv, run_env)),
                 START_TIMEOUT, f'{target} to serve {ready_pv}')
        if proc.poll() is not None:
            pytest.fail(f'{target} exited with {proc.returncode}:\n{example.output()}')
        return example

    yield start
    for example in started:
        stop_process(example.proc)


class Monitor:
    """The values a pyepics monitor receives from one PV, in order (enum PVs: state indexes)."""

    def __init__(self, pvname: str):
        self.values: list = []
        self._lock = threading.Lock()
        self.pv = epics.PV(pvname, callback=self._got, auto_monitor=True)
        if not self.pv.wait_for_connection(10.0):
            raise AssertionError(f'{pvname} did not connect')

    def _got(self, value=None, **kwargs):
        with self._lock:
            self.values.append(value)

    def snapshot(self) -> list:
        with self._lock:
            return list(self.values)

    def close(self):
        self.pv.disconnect()


@pytest.fixture
def monitor():
    made: list[Monitor] = []

    def make(pvname: str) -> Monitor:
        made.append(Monitor(pvname))
        return made[-1]

    yield make
    for mon in made:
        mon.close()


# --- the same PV names as the originals (read from the originals themselves when caproto is installed)

CAPROTO_NAMES = [
    # (our file, our model class, device, original module, its PVGroup, PVs of the original not ported)
    ('simple', 'SimpleIOC', 'simple', 'simple', 'SimpleIOC', set()),
    ('enums', 'EnumIOC', 'enum', 'enums', 'EnumIOC', set()),
    ('setpoint_rbv_pair', 'Pairs', 'setpoint_rbv', 'setpoint_rbv_pair', 'Group', set()),
    ('random_walk', 'RandomWalk', 'random_walk', 'random_walk', 'RandomWalkIOC', set()),
    ('thermo_sim', 'Thermo', 'thermo', 'thermo_sim', 'Thermo', set()),
    ('decay', 'Decay', 'decay', 'decay', 'Decay', set()),
    ('scan_rate', 'ScanRate', 'periodic', 'scan_rate', 'ScanRateIOC', set()),
    ('custom_write', 'CustomWrite', 'custom_write', 'custom_write', 'CustomWrite', set()),
    ('startup_and_shutdown_hooks', 'StartupAndShutdown', 'simple', 'startup_and_shutdown_hooks',
     'StartupAndShutdown', set()),
    ('worker_thread', 'WorkerThread', 'wt', 'worker_thread', 'WorkerThreadIOC', set()),
    ('chirp', 'Chirp', 'chirp', 'chirp', 'Chirp', set()),
    ('mini_beamline', 'MiniBeamline', 'mini', 'mini_beamline', 'MiniBeamline',
     {f'mini:{d}:{p}' for d in ('ph', 'edge', 'slit') for p in ('vel', 'mtr_tick_rate')}
     | {f'mini:dot:{p}' for p in ('det', 'img_sum', 'mtrx', 'mtry', 'exp', 'shutter_open', 'ArraySizeY_RBV',
                                  'ArraySizeX_RBV', 'ArraySize_RBV')}),
    ('trigger_with_pc', 'Triggered', 'trigger_with_pc', 'too_clever.trigger_with_pc', 'TriggeredIOC',
     {'trigger_with_pc:wait', 'trigger_with_pc:wait_time'}),
]


@pytest.mark.parametrize('ours, model, device, original, group, not_ported', CAPROTO_NAMES,
                         ids=[row[0] for row in CAPROTO_NAMES])
def test_pv_names_are_the_originals(ours, model, device, original, group, not_ported):
    """Each caproto port serves exactly the original's PV names, less the parts it says it does not port."""
    pytest.importorskip('caproto', reason='the originals ship with caproto: pip install caproto')
    module = importlib.import_module(f'caproto.ioc_examples.{original}')
    kwargs = {'ramp_rate': 0.75} if original == 'chirp' else {}
    theirs = set(getattr(module, group)(prefix=f'{device}:', **kwargs).pvdb)
    assert not_ported <= theirs, 'the not-ported list names PVs the original does not have'
    assert set(getattr(load(ours), model).pv_names(device)) == theirs - not_ported


def test_pythonsoftioc_pv_names():
    """The pythonSoftIOC ports serve the originals' record names (builder.SetDeviceName + record name)."""
    assert set(load('example_ioc').ExampleIOC.pv_names('MY-DEVICE-PREFIX')) == {
        'MY-DEVICE-PREFIX:AI', 'MY-DEVICE-PREFIX:AO'}
    assert set(load('records_calculate').Calculate.pv_names('XX-XX-XX-01')) == {
        'XX-XX-XX-01:VALUE', 'XX-XX-XX-01:TEST', 'XX-XX-XX-01:CALC'}


# --- behaviour, live

def test_simple(start_example):
    """simple:A (1), simple:B (2.0), simple:C ([1, 2, 3]): read/writable and uncoupled."""
    ex = start_example('simple.py:SimpleIOC', 'simple', 'simple:A')
    assert ex.get('simple:A') == '1'
    assert float(ex.get('simple:B')) == 2.0
    assert ex.get('simple:C').split() == ['3', '1', '2', '3']
    ex.put('simple:A', 42)
    ex.put('simple:B', 3.25)
    ex.put('simple:C', [7, 8, 9])
    assert ex.get('simple:A') == '42'
    assert float(ex.get('simple:B')) == 3.25
    assert ex.get('simple:C').split() == ['3', '7', '8', '9']
    ex.put('simple:A', -5)
    assert float(ex.get('simple:B')) == 3.25 and ex.get('simple:C').split() == ['3', '7', '8', '9']


def test_enums(start_example):
    """bo, bi, mbbi and an IntEnum mbbi start in the original's states, with its state strings."""
    ex = start_example('enums.py:EnumIOC', 'enum', 'enum:bo')
    assert ex.get('enum:bo') == 'One Value'
    assert (ex.get('enum:bo.ZNAM'), ex.get('enum:bo.ONAM')) == ('Zero Value', 'One Value')
    assert ex.get('enum:bi') == 'a'
    assert (ex.get('enum:bi.ZNAM'), ex.get('enum:bi.ONAM')) == ('a', 'b')
    assert ex.get('enum:mbbi') == 'one'
    assert [ex.get(f'enum:mbbi.{f}ST') for f in ('ZR', 'ON', 'TW', 'TH', 'FR')] == [
        'zero', 'one', 'two', 'three', 'four']
    assert ex.get('enum:enum_class') == 'on'
    assert [ex.get(f'enum:enum_class.{f}ST') for f in ('ZR', 'ON', 'TW')] == ['off', 'on', 'unknown']
    ex.put('enum:bo', 'Zero Value')
    assert ex.get('enum:bo') == 'Zero Value'
    ex.put('enum:bo', 1)
    assert ex.get('enum:bo') == 'One Value'


def test_records_calculate(start_example):
    """XX-XX-XX-01:CALC is VALUE * TEST (5 * 10), recomputed by its 1 s scan after a write."""
    ex = start_example('records_calculate.py:Calculate', 'XX-XX-XX-01', 'XX-XX-XX-01:CALC')
    assert ex.getf('XX-XX-XX-01:VALUE') == 5 and ex.getf('XX-XX-XX-01:TEST') == 10
    wait_for(lambda: ex.getf('XX-XX-XX-01:CALC') == 50, 5, 'CALC = 5 * 10')
    assert ex.get('XX-XX-XX-01:CALC.SCAN') == '1 second'
    ex.put('XX-XX-XX-01:VALUE', 3)
    wait_for(lambda: ex.getf('XX-XX-XX-01:CALC') == 30, 5, 'CALC = 3 * 10 after its next scan')
    ex.put('XX-XX-XX-01:TEST', -2.5)
    wait_for(lambda: ex.getf('XX-XX-XX-01:CALC') == -7.5, 5, 'CALC = 3 * -2.5')


def test_setpoint_rbv_pair_follows(start_example):
    """Each _RBV follows its setpoint on every write: int, float and bo/bi No/Yes."""
    ex = start_example('setpoint_rbv_pair.py:Pairs', 'setpoint_rbv', 'setpoint_rbv:pair')
    for value in (7, -3, 7):
        ex.put('setpoint_rbv:pair', value)
        wait_for(lambda: ex.get('setpoint_rbv:pair_RBV') == str(value), 5, f'pair_RBV = {value}')
    ex.put('setpoint_rbv:pair2', 1.5)
    wait_for(lambda: ex.getf('setpoint_rbv:pair2_RBV') == 1.5, 5, 'pair2_RBV = 1.5')
    assert ex.get('setpoint_rbv:pair3_RBV') == 'No'
    ex.put('setpoint_rbv:pair3', 'Yes')
    wait_for(lambda: ex.get('setpoint_rbv:pair3_RBV') == 'Yes', 5, 'pair3_RBV = Yes')


def test_setpoint_rbv_pair_readbacks_are_read_only(start_example):
    """A client cannot write a readback (the original's are read_only=True)."""
    ex = start_example('setpoint_rbv_pair.py:Pairs', 'setpoint_rbv', 'setpoint_rbv:pair')
    for pv, value in (('pair_RBV', 5), ('pair2_RBV', 2.5), ('pair3_RBV', 1)):
        with pytest.raises(AssertionError):
            ex.put(f'setpoint_rbv:{pv}', value)
    assert ex.get('setpoint_rbv:pair_RBV') == '0'


def test_random_walk(start_example, monitor):
    """x takes steps in [-1, 1) every dt seconds; dt is read at each step; a dt below 0.01 is clamped."""
    ex = start_example('random_walk.py:RandomWalkApp', 'random_walk', 'random_walk:x')
    assert ex.getf('random_walk:dt') == 3.0
    ex.put('random_walk:dt', 0.05)
    mon = monitor('random_walk:x')
    wait_for(lambda: len(mon.snapshot()) >= 12, 15, 'a dozen steps of x')
    values = mon.snapshot()
    steps = [b - a for a, b in zip(values, values[1:])]
    assert all(-1.0 <= step < 1.0 for step in steps), steps
    assert len(set(values)) > 5
    ex.put('random_walk:dt', -1)
    assert ex.getf('random_walk:dt') == 0.01


def test_thermo_sim(start_example, monitor):
    """I = Tvar exp(-(t - t0)/K) sin(omega t) + SP, scanned at the rate its SCAN field says."""
    ex = start_example('thermo_sim.py:ThermoApp', 'thermo', 'thermo:I')
    assert [ex.getf(f'thermo:{pv}') for pv in ('SP', 'K', 'omega', 'Tvar')] == [100, 10, pytest.approx(math.pi), 10]
    assert ex.get('thermo:I.SCAN') == '.1 second'
    mon = monitor('thermo:I')
    wait_for(lambda: len(set(mon.snapshot())) >= 5, 10, 'I to oscillate')
    assert all(90 <= value <= 110 for value in mon.snapshot()), mon.snapshot()   # |I - SP| <= Tvar
    ex.put('thermo:Tvar', 0)
    ex.put('thermo:SP', 42)
    wait_for(lambda: ex.getf('thermo:I') == 42, 5, 'I = SP with Tvar 0')
    # the scan rate is the record's SCAN: Passive stops the updates, a scan period starts them again
    ex.put('thermo:Tvar', 10)
    ex.put('thermo:I.SCAN', 'Passive')
    time.sleep(0.5)
    frozen = len(mon.snapshot())
    time.sleep(1.0)
    assert len(mon.snapshot()) == frozen, 'I still updated with SCAN Passive'
    ex.put('thermo:I.SCAN', '.2 second')
    wait_for(lambda: len(mon.snapshot()) >= frozen + 3, 10, 'I to update again at .2 second')
    ex.put('thermo:K', 0)             # clamped: no division by zero at each scan
    assert ex.getf('thermo:K') == 0.001
    ex.put('thermo:SP', 55)           # with K 1 ms the oscillation is gone at once: I = SP
    wait_for(lambda: ex.getf('thermo:I') == 55, 10, 'I = SP with K at its lower limit')
    assert 'Traceback' not in ex.output()


def test_decay_same_value_write_restarts(start_example, monitor):
    """done goes On when I is within 5 % of SP; writing SP, the same value too, restarts the decay."""
    ex = start_example('decay.py:DecayApp', 'decay', 'decay:I')
    assert ex.get('decay:done') == 'Off'
    done = monitor('decay:done')
    readback = monitor('decay:I')
    ex.put('decay:K', 0.5)
    ex.put('decay:SP', 100)
    wait_for(lambda: done.snapshot()[-1:] == [1], 15, 'done On')
    assert ex.get('decay:done') == 'On'
    assert abs(ex.getf('decay:I') - 100) < 0.05 * 90
    seen = len(readback.snapshot())
    ex.put('decay:SP', 100)       # the same value: still a write, t0 = now
    wait_for(lambda: 0 in done.snapshot()[done.snapshot().index(1):], 10, 'done Off after the write')
    wait_for(lambda: done.snapshot()[-1:] == [1], 15, 'done On again')
    assert max(readback.snapshot()[seen:]) > 104.5, 'I did not restart from SP + Tvar'
    ex.put('decay:Tvar', 100)         # no excursion (|SP - Tvar| = 0): never done, I goes on
    wait_for(lambda: done.snapshot()[-1:] == [0], 10, 'done Off with no excursion')
    count = len(readback.snapshot())
    wait_for(lambda: len(readback.snapshot()) >= count + 3, 10, 'I to go on updating')
    assert 'Traceback' not in ex.output()


def test_scan_rate(start_example, monitor):
    """scanned holds the seconds between its last two scans; its SCAN field sets the rate."""
    ex = start_example('scan_rate.py:ScanRateApp', 'periodic', 'periodic:scanned')
    assert ex.get('periodic:scanned.SCAN') == '1 second'
    mon = monitor('periodic:scanned')
    wait_for(lambda: len([v for v in mon.snapshot() if v > 0]) >= 3, 15, 'three scans at 1 second')
    slow = sorted(v for v in mon.snapshot() if v > 0)
    assert 0.5 < slow[len(slow) // 2] < 2.0, slow
    ex.put('periodic:scanned.SCAN', '.1 second')
    count = len(mon.snapshot())
    wait_for(lambda: len(mon.snapshot()) >= count + 12, 15, 'a dozen scans at .1 second')
    fast = sorted(mon.snapshot()[count + 2:])
    assert fast[len(fast) // 2] < 0.5, fast


def test_custom_write(start_example, tmp_path):
    """Every write to A or B, the same value too, writes the value to <directory>/A or /B."""
    target = tmp_path / 'written'
    target.mkdir()
    ex = start_example('custom_write.py:CustomWriteApp', 'custom_write', 'custom_write:A')
    ex.put('custom_write:directory', str(target), '-S')
    assert ex.get('custom_write:directory', '-S') == str(target)
    assert not (target / 'A').exists(), 'the initial value was written to a file'
    ex.put('custom_write:A', 5)
    wait_for(lambda: (target / 'A').exists() and (target / 'A').read_text() == '5\n', 5, 'A written')
    (target / 'A').unlink()
    ex.put('custom_write:A', 5)
    wait_for(lambda: (target / 'A').exists() and (target / 'A').read_text() == '5\n', 5, 'A written again')
    ex.put('custom_write:B', 7)
    wait_for(lambda: (target / 'B').exists() and (target / 'B').read_text() == '7\n', 5, 'B written')
    assert f'Wrote 7 to {target / "B"}' in ex.output()


def test_startup_and_shutdown_hooks(start_example):
    """The start hooks log in order (the first after sleeping 1 s), the stop hook before the app exits."""
    ex = start_example('startup_and_shutdown_hooks.py:StartupAndShutdownApp', 'simple', 'simple:thing')
    assert ex.get('simple:thing') == '2'
    marks = ['1. The IOC-level startup hook', '(the startup hook finished', '2. The "thing" startup hook']
    wait_for(lambda: marks[-1] in ex.output(), 10, 'the start hooks')
    out = ex.output()
    assert [out.index(mark) for mark in marks] == sorted(out.index(mark) for mark in marks)
    assert '3. The "thing" shutdown hook' not in out
    ex.proc.send_signal(signal.SIGTERM)
    assert ex.proc.wait(20) == 0
    out = ex.output()
    assert out.index('3. The "thing" shutdown hook') > out.index(marks[-1])


def test_worker_thread(start_example):
    """Each write to request, the same value too, is one job: response counts the finished jobs."""
    ex = start_example('worker_thread.py:WorkerThreadApp', 'wt', 'wt:request')
    assert ex.get('wt:response') == '0'
    ex.put('wt:request', 1)
    wait_for(lambda: ex.get('wt:response') == '1', 10, 'the first job')
    ex.put('wt:request', 0)
    ex.put('wt:request', 0)
    wait_for(lambda: ex.get('wt:response') == '3', 10, 'two more jobs of the same value')
    ex.put('wt:request', -5)          # clamped to 0 by the record: the worker lives on
    assert ex.get('wt:request') == '0'
    wait_for(lambda: ex.get('wt:response') == '4', 10, 'the clamped job')


def test_chirp(start_example, monitor):
    """chirp counts up ever faster (pause x ramp rate), then starts again at 0; steady counts on beside it."""
    ex = start_example('chirp.py:ChirpApp', 'chirp', 'chirp:chirp', script=True, args=('--ramp-rate', '0.5'))
    chirp = monitor('chirp:chirp')
    # at 0.5 the pauses sum to 1 s and fall below 1e-14 s after 46 updates; CA may merge the fastest
    wait_for(lambda: max(chirp.snapshot(), default=0) >= 30 and chirp.snapshot()[-1] < 30, 15, 'a chirp and its restart')
    values = chirp.snapshot()
    top = values.index(max(values))
    assert values[:top + 1] == sorted(values[:top + 1]), 'chirp did not count up'
    assert min(values[top + 1:]) < 5, 'chirp did not start again'
    first = int(ex.get('chirp:steady'))
    wait_for(lambda: int(ex.get('chirp:steady')) >= first + 5, 5, 'steady to count on')


def test_chirp_refuses_a_ramp_rate_out_of_range(ca_env, tmp_path):
    """--ramp-rate 1.5 is a usage error (exit status 2) naming the range; nothing starts."""
    result = subprocess.run([sys.executable, str(PEERS / 'chirp.py'), '--device', 'chirp', '--ramp-rate', '1.5'],
                            env=dict(ca_env, DEVIOC_CACHE_DIR=str(tmp_path)), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "Invalid value for '--ramp-rate': 1.5 is not in the range 0<x<1" in result.stderr


def test_pythonsoftioc_example_ioc(start_example, monitor):
    """AI counts up every second; every write to AO, the same value too, is copied to AI."""
    ex = start_example('example_ioc.py:ExampleApp', 'MY-DEVICE-PREFIX', 'MY-DEVICE-PREFIX:AI')
    assert ex.getf('MY-DEVICE-PREFIX:AO') == 12.45
    wait_for(lambda: ex.getf('MY-DEVICE-PREFIX:AI') >= 7, 10, 'AI to count up from 5')
    ai = monitor('MY-DEVICE-PREFIX:AI')
    ex.put('MY-DEVICE-PREFIX:AO', 100)
    wait_for(lambda: 100.0 in ai.snapshot(), 5, 'AI = 100 after the write to AO')
    wait_for(lambda: ai.snapshot()[-1] >= 101, 5, 'AI to count on from 100')
    ex.put('MY-DEVICE-PREFIX:AO', 100)   # the same value: copied again
    wait_for(lambda: ai.snapshot().count(100.0) == 2, 5, 'AI = 100 again after the same-value write')


def test_mini_beamline(start_example):
    """current oscillates in 475..525; each detector counts Poisson(200 current exp profile(mtr))."""
    ex = start_example('mini_beamline.py:MiniBeamlineApp', 'mini', 'mini:current')
    wait_for(lambda: ex.getf('mini:current') != 500, 5, 'current to move')
    currents = [ex.getf('mini:current') for _ in range(5)]
    assert all(475 <= c <= 525 for c in currents), currents
    profiles = {
        ('ph', 0): 1.0, ('ph', 10): math.exp(-100 / 50),
        ('edge', 0): math.erfc(2) / 2, ('edge', 20): math.erfc(-6) / 2,
        ('slit', 0): (math.erfc(-3) - math.erfc(3)) / 2, ('slit', 20): (math.erfc(5) - math.erfc(11)) / 2,
    }
    for (det, mtr), profile in profiles.items():
        ex.put(f'mini:{det}:mtr', mtr)
        time.sleep(1.2)                                   # two 0.5 s scans with the new position
        counts = ex.getf(f'mini:{det}:det')
        low, high = 200 * 475 * profile, 200 * 525 * profile
        spread = 6 * math.sqrt(high) + 1
        assert low - spread <= counts <= high + spread, (det, mtr, counts, low, high)
    ex.put('mini:ph:mtr', 0)
    ex.put('mini:ph:exp', -1)                             # clamped to 0: no counts
    assert ex.getf('mini:ph:exp') == 0
    wait_for(lambda: ex.getf('mini:ph:det') == 0, 5, 'no counts with exp 0')


def test_trigger_with_pc(start_example):
    """caput -c acquire 1 returns after exposure_time with a new reading, acquire idle; refused when disabled."""
    ex = start_example('trigger_with_pc.py:TriggeredApp', 'trigger_with_pc', 'trigger_with_pc:acquire')
    assert ex.get('trigger_with_pc:acquire') == 'idle' and ex.get('trigger_with_pc:enabled') == 'on'
    assert ex.getf('trigger_with_pc:reading') == 0.1
    ex.put('trigger_with_pc:exposure_time', 0.5)
    started = time.monotonic()
    ex.put('trigger_with_pc:acquire', 1)                  # caput -c: waits for completion
    assert time.monotonic() - started >= 0.5
    assert ex.get('trigger_with_pc:acquire') == 'idle'
    reading = ex.getf('trigger_with_pc:reading')
    assert reading != 0.1 and 0 <= reading < 1
    ex.put('trigger_with_pc:enabled', 'off')
    ex.put('trigger_with_pc:acquire', 1)
    assert ex.get('trigger_with_pc:acquire') == 'idle'
    assert ex.getf('trigger_with_pc:reading') == reading
    assert 'Device must be enabled' in ex.output()


# --- the line counts in the README are the script's


def test_code_lines_counts_code_only():
    """Blank lines, comments and docstrings are not code; each line of a multi-line statement is."""
    count_lines = load('count_lines')
    source = ('"""Module doc.\n\nmore"""\n# a comment\nimport os\n\n\nclass A:\n    """Doc."""\n'
              '    x = [1,\n         2]  # trailing\n\n    def f(self):\n        \'\'\'doc\'\'\'\n'
              '        return "not a docstring"\n')
    assert count_lines.code_lines(source) == 6


def test_readme_tables_match_the_counts():
    """README.md and examples/peers/README.md show the devioc line counts count_lines.py measures now."""
    count_lines = load('count_lines')
    for readme in (ROOT / 'README.md', PEERS / 'README.md'):
        text = readme.read_text()
        for port in count_lines.PORTS:
            ours = count_lines.code_lines((PEERS / port.ours).read_text())
            rows = [line for line in text.splitlines() if f'`{port.path}`' in line and f'`{port.ours}`' in line]
            assert rows, f'{readme.name} has no row for {port.ours} / {port.path}'
            assert rows[0].rstrip(' |').rsplit('|', 1)[1].strip() == str(ours), (readme.name, rows[0], ours)
