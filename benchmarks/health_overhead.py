#!/usr/bin/env python3
"""What the health records cost: devioc's work benchmark with health on and off, interleaved.

    python benchmarks/health_overhead.py              # 5 rounds of (on, off), ~4 min
    python benchmarks/health_overhead.py --rounds 2 --quick

Runs the same devioc subject and pyepics client as ``run.py`` (round trip back to back and paced,
the 20,000-value publish loop, callback intake), once as it ships (health records on: one 1 Hz
update on the reactor) and once with ``Model(..., health=False)`` forced on the subject, in turns
(on, off, on, off, ...), each measurement in fresh processes. Prints the medians and the ratios
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rounds', type=int, default=5, help='rounds of (on, off)')
    parser.add_argument('--quick', action='store_true', help="run.py's short work measurement")
    parser.add_argument('--json', help='write the raw results here')
    args = parser.parse_args()
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
    if args.json:
        with open(args.json, 'w') as fh:
            json.dump({'on': results[True], 'off': results[False]}, fh, indent=1)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
