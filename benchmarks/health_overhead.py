#!/usr/bin/env python3
"""What the health records cost: devioc's work benchmark with health on and off, interleaved.

    python benchmarks/health_overhead.py              # 5 rounds of (on, off), ~6 min
    python benchmarks/health_overhead.py --rounds 2 --quick

Runs the same devioc subject and pyepics client as ``run.py`` (round trip back to back and paced,
the 20,000-value publish loop, callback intake), once as it ships (health records on: one 1 Hz
update on the reactor) and once with ``Model(..., health=False)`` forced on the subject, in turns
(on, off, on, off, ...), each measurement in fresh processes; then a sustained publish run of a
few seconds (so the 1 Hz ticks fall inside it) in the same turns. First it times the update itself
(one tick, in-process): at 1 Hz its duration is the share of the reactor it takes, a bound that the
machine's noise does not blur. Prints the medians and the ratios
on/off: 1.00 is no cost; the noise between two runs of the same subject on this machine is a few %.
"""

import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402  (benchmarks/run.py, next to this file)

#: run the devioc subject with every Model made with health=False
_OFF = ('import functools, runpy, sys; import devioc.models as m; '
        'm.Model.__init__ = functools.partialmethod(m.Model.__init__, health=False); '
        'sys.argv = sys.argv[1:]; sys.path.insert(0, {subjects!r}); runpy.run_path(sys.argv[0], run_name="__main__")')


class Runner(run.Runner):
    """run.py's runner; ``self.health`` picks the devioc subject's health setting."""

    health = True

    def server_argv(self, subject, mode, n, prefix, out):
        argv = super().server_argv(subject, mode, n, prefix, out)
        if subject == 'devioc' and not self.health:
            argv = [argv[0], '-c', _OFF.format(subjects=os.path.join(HERE, 'subjects')), *argv[1:]]
        return argv


def pick(result, *path):
    for key in path:
        if isinstance(result, list):
            result = result[key] if len(result) > key else None
        elif isinstance(result, dict):
            result = result.get(key)
        if result is None:
            return None
    return result


MEASURES = {
    'round trip back to back p50, ms': ('rtt', 'b2b', 'p50'),
    'round trip back to back p99, ms': ('rtt', 'b2b', 'p99'),
    'round trip paced p50, ms': ('rtt', 'paced', 'p50'),
    'publish loop, values/s': ('publish', 0, 'loop_rate'),
}


def sustained_publish(health: bool, seconds: float) -> float:
    """(child process) Publish to one record for ``seconds``, 500 puts a reactor turn; values/s.

    The health records' 1 Hz update runs meanwhile (health on): unlike the 40 ms loop of the
    work benchmark, a run of several seconds always includes its ticks.
    """
    import time

    from twisted.internet import reactor

    from devioc import models

    class Pub(models.Model):
        pub = models.IntegerInput('pub')

    ioc = Pub(f'HOVH{os.getpid()}', health=health)
    put, counted = ioc.pub.put, [0, 0.0]

    def chunk(start, v):
        for _ in range(500):
            v += 1
            put(v & 0xFFFFFF)
        if time.monotonic() - start < seconds:
            reactor.callLater(0, chunk, start, v)
        else:
            counted[:] = [v, time.monotonic() - start]
            reactor.stop()

    reactor.callLater(1.5, lambda: chunk(time.monotonic(), 0))   # after the first health tick
    reactor.run()
    ioc.shutdown()
    return counted[0] / counted[1]


def tick_cost(count: int = 200) -> list:
    """(child process) Seconds one health update takes (sample /proc, put what changed), ``count`` times.

    The update runs once a second on the reactor, so its median over 1 s is the share of the reactor's
    time (and so of a publishing loop's) it takes, whatever the noise of the machine.
    """
    import time

    from devioc import models

    class Pub(models.Model):
        pub = models.IntegerInput('pub')

    ioc = Pub(f'HOVT{os.getpid()}')
    times = []
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            ioc._health.tick()
            times.append(time.perf_counter() - t0)
            time.sleep(0.005)
    finally:
        ioc.shutdown()
    return times


def publish_rounds(rounds: int, seconds: float) -> dict:
    """Sustained publish rate, health on and off in turns, each in a fresh process on its own port."""
    import subprocess

    import procs

    rates = {True: [], False: []}
    for i in range(rounds):
        for health in (True, False):
            port = procs.free_port()
            env = run.ca_env(port, server=True)
            out = subprocess.run([sys.executable, __file__, '--child', 'on' if health else 'off',
                                  '--seconds', str(seconds)], env=env, capture_output=True, text=True,
                                 timeout=120 + seconds)
            line = [x for x in out.stdout.splitlines() if x.startswith('RATE ')]
            if not line:
                print(f'publish round {i + 1} health={health}: failed: {out.stderr[-500:]}', file=sys.stderr)
                continue
            rates[health].append(float(line[-1].split()[1]))
            print(f'publish round {i + 1} health={"on " if health else "off"}: {rates[health][-1]:.0f} values/s',
                  flush=True)
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rounds', type=int, default=5, help='rounds of (on, off)')
    parser.add_argument('--quick', action='store_true', help="run.py's short work measurement")
    parser.add_argument('--json', help='write the raw results here')
    parser.add_argument('--seconds', type=float, default=4.0, help='length of a sustained publish run')
    parser.add_argument('--child', choices=['on', 'off', 'tick'], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == 'tick':
        print('TICKS ' + json.dumps(tick_cost()), flush=True)
        return 0
    if args.child:
        print(f'RATE {sustained_publish(args.child == "on", args.seconds)}', flush=True)
        return 0
    import subprocess

    import procs

    out = subprocess.run([sys.executable, __file__, '--child', 'tick'], env=run.ca_env(procs.free_port(), server=True),
                         capture_output=True, text=True, timeout=120)
    ticks = json.loads([x for x in out.stdout.splitlines() if x.startswith('TICKS ')][-1][6:])
    tick = statistics.median(ticks)
    print(f'one health update: median {tick * 1e6:.0f} us, p90 {sorted(ticks)[int(0.9 * len(ticks))] * 1e6:.0f} us '
          f'over {len(ticks)}: {100 * tick:.3f} % of the reactor\'s time at 1 Hz', flush=True)
    sustained = publish_rounds(args.rounds, args.seconds)
    # run.py's options, at their defaults
    opts = argparse.Namespace(pythons={}, devioc_ref=None, rt='drop', py_spy=None, quick=args.quick,
                              intake_rates='100,1000,5000')
    runner = Runner(opts)
    results = {True: [], False: []}
    for i in range(args.rounds):
        for health in (True, False):
            runner.health = health
            res = runner.measure('devioc', 'work', client_args=run.work_client_args(opts))
            if 'error' in res:
                print(f'round {i + 1} health={health}: {res["error"]}', file=sys.stderr)
                continue
            results[health].append(res)
            print(f'round {i + 1} health={"on " if health else "off"}: ' + ', '.join(
                f'{name.split(",")[0]} {pick(res, *path)}' for name, path in MEASURES.items()), flush=True)
    print(f'\nmedians over {len(results[True])} (on) and {len(results[False])} (off) runs; ratio on/off')
    print('| measure | health on | health off | on/off |\n| --- | --- | --- | --- |')
    for name, path in MEASURES.items():
        on = [v for v in (pick(r, *path) for r in results[True]) if v is not None]
        off = [v for v in (pick(r, *path) for r in results[False]) if v is not None]
        if on and off:
            m_on, m_off = statistics.median(on), statistics.median(off)
            print(f'| {name} | {m_on:.4g} | {m_off:.4g} | {m_on / m_off:.3f} |')
    if sustained[True] and sustained[False]:
        m_on, m_off = statistics.median(sustained[True]), statistics.median(sustained[False])
        print(f'| sustained publish ({args.seconds:g} s, 1 Hz ticks included), values/s | {m_on:.4g} | '
              f'{m_off:.4g} | {m_on / m_off:.3f} |')
    if args.json:
        with open(args.json, 'w') as fh:
            json.dump({'on': results[True], 'off': results[False], 'ticks': ticks, 'sustained': {
                'on': sustained[True], 'off': sustained[False]}}, fh, indent=1)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
