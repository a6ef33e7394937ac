"""What blocking=True costs a put with callback, and that a slow handler holds it for its duration.

The model runs here (reactor and all); the clients are separate processes on loopback, private CA
ports. Three measures:
  1. a pyepics client's put(wait=True) round trip, N times (median, p90), on a blocking Float whose
     do_<field> returns at once, and on a plain Float (no do_<field>);
  2. the C ``caput -c`` as a user runs it (process start included), M times each (median);
  3. ``caput -c`` on a blocking Float whose handler returns a Deferred that fires after 2 s (3 runs).
Usage: python benchmarks/blocking.py [N=200] [M=20]
"""
import json
import os
import statistics
import subprocess
import sys
import threading
import time

from devioc import testing

ENV = testing.isolate()

from twisted.internet import reactor, task  # noqa: E402  (after isolate: libca reads the ports once)

from devioc import models  # noqa: E402
from devioc.softioc import epics_tool  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
M = int(sys.argv[2]) if len(sys.argv) > 2 else 20


class Bench(models.Model):
    fast = models.Float('fast', blocking=True)
    slow = models.Float('slow', blocking=True)
    plain = models.Float('plain')


class App:
    def do_fast(self, pv, value, ioc):
        pass

    def do_slow(self, pv, value, ioc):
        return task.deferLater(reactor, 2.0, lambda: None)


CLIENT = '''
import json, sys, time, epics
out = {}
for name in sys.argv[2:]:
    pv = epics.PV(name)
    pv.wait_for_connection(10)
    pv.put(0.0, wait=True)
    times = []
    for i in range(int(sys.argv[1])):
        t = time.perf_counter()
        pv.put(float(i), wait=True, timeout=30)
        times.append((time.perf_counter() - t) * 1000)
    out[name] = times
print(json.dumps(out))
'''


def quantile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def caput_c(name, value):
    start = time.perf_counter()
    subprocess.run([epics_tool('caput'), '-c', '-w', '30', name, str(value)], env=ENV, capture_output=True, check=True)
    return time.perf_counter() - start


def measure(ioc, results):
    try:
        names = [ioc.fast.name, ioc.plain.name]
        out = subprocess.run([sys.executable, '-c', CLIENT, str(N)] + names, env=ENV, capture_output=True,
                             text=True, check=True, timeout=600)
        times = json.loads(out.stdout)
        for label, name in zip(('blocking', 'plain'), names):
            results[f'pyepics put(wait=True), {label} Float, ms'] = (
                f'median {statistics.median(times[name]):.3f}, p90 {quantile(times[name], 0.9):.3f} (n={N})')
        for label, name in zip(('blocking', 'plain'), names):
            runs = [caput_c(name, i) * 1000 for i in range(M)]
            results[f'C caput -c, {label} Float, ms (process start included)'] = \
                f'median {statistics.median(runs):.1f} (n={M})'
        slow = [caput_c(ioc.slow.name, i) for i in range(3)]
        results['C caput -c, blocking Float, handler Deferred 2 s, s'] = ', '.join(f'{t:.3f}' for t in slow)
    except Exception as err:  # reported, and the reactor still stops
        results['error'] = repr(err)
    finally:
        reactor.callFromThread(reactor.stop)


def main():
    ioc = Bench(f'BLKBENCH{os.getpid()}', callbacks=App())
    results = {}
    try:
        reactor.callWhenRunning(lambda: threading.Thread(target=measure, args=(ioc, results)).start())
        reactor.run()
    finally:
        ioc.shutdown()
    root = os.geteuid() == 0
    print(f'blocking writes, loopback, 2 shared cores, running as {"root" if root else "a user"}')
    for key, value in results.items():
        print(f'  {key}: {value}')
    return 1 if 'error' in results else 0


if __name__ == '__main__':
    sys.exit(main())
