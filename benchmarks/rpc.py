"""Remote procedure calls over EPICS vs a plain-TCP Python RPC, in the same run.

The app runs here (one reactor) and serves the same method twice: as ``@models.function`` (devioc.rpc:
softIoc, an Async Soft Channel link to the app's caproto server, the reply PV) and over a minimal
line-based JSON RPC on Twisted TCP, as SiPyCo's pc_rpc works (one JSON object a line each way,
``{"action": "call", "name": ..., "args": [...], "kwargs": {...}}`` -> ``{"status": "ok", "ret": ...}``).
The clients are other processes on loopback (private CA ports):
  1. round trip of ``add(a, b)``, N calls one after the other (median, p90, calls/s);
  2. throughput with K clients calling at once, N calls each (calls/s over all).
Usage: python benchmarks/rpc.py [N=300] [K=4]
"""
import json
import statistics
import subprocess
import sys
import time

from devioc import testing

ENV = testing.isolate()

from twisted.internet import protocol, reactor, threads  # noqa: E402  (after isolate: libca reads the ports once)
from twisted.protocols.basic import LineReceiver  # noqa: E402

from devioc import models  # noqa: E402

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300
K = int(sys.argv[2]) if len(sys.argv) > 2 else 4


class Bench(models.Model):
    level = models.Float('level')


class App:
    @models.function
    def add(self, a: float, b: float = 1.0) -> float:
        return a + b


class LineRPC(LineReceiver):
    """pc_rpc style: one JSON request a line, one JSON reply a line."""

    delimiter = b'\n'

    def lineReceived(self, line: bytes) -> None:
        request = json.loads(line)
        try:
            ret = getattr(self.factory.target, request['name'])(*request.get('args', []), **request.get('kwargs', {}))
            reply = {'status': 'ok', 'ret': ret}
        except Exception as err:
            reply = {'status': 'failed', 'exception': type(err).__name__, 'message': str(err)}
        self.sendLine(json.dumps(reply).encode())


DEVIOC_CLIENT = '''
import json, sys, time
from devioc.client import Client
c = Client(sys.argv[1])
c.add(0.0)
times = []
for i in range(int(sys.argv[2])):
    t = time.perf_counter()
    assert c.add(float(i), b=2.0) == i + 2.0
    times.append((time.perf_counter() - t) * 1000)
print(json.dumps(times))
'''

TCP_CLIENT = '''
import json, socket, sys, time
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
f = s.makefile('rwb')
def call(*args, **kwargs):
    f.write(json.dumps({'action': 'call', 'name': 'add', 'args': args, 'kwargs': kwargs}).encode() + b'\\n')
    f.flush()
    reply = json.loads(f.readline())
    assert reply['status'] == 'ok', reply
    return reply['ret']
call(0.0)
times = []
for i in range(int(sys.argv[2])):
    t = time.perf_counter()
    assert call(float(i), b=2.0) == i + 2.0
    times.append((time.perf_counter() - t) * 1000)
print(json.dumps(times))
'''


def clients(script, arg, count, n):
    """Run ``count`` client processes at once; (list of per-call ms, wall seconds from first to last)."""
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, '-c', script, str(arg), str(n)], env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(count)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(err[-2000:])
        results.append(json.loads(out))
    return results, time.perf_counter() - start


def summary(times):
    times = sorted(times)
    return statistics.median(times), times[int(len(times) * 0.9)]


def measure(device, tcp_port):
    rows = {}
    for label, script, arg in (('devioc.rpc (CA)', DEVIOC_CLIENT, device), ('line JSON over TCP', TCP_CLIENT,
                                                                           tcp_port)):
        [times], _ = clients(script, arg, 1, N)
        median, p90 = summary(times)
        many, wall = clients(script, arg, K, N)
        # throughput: calls of the K clients over the span they all ran (process start-up excluded)
        busy = max(sum(t) for t in many) / 1000
        rows[label] = (median, p90, 1000 / statistics.mean(times), K * N / busy, wall)
    return rows


def main():
    app = App()
    ioc = Bench('BENCHRPC', callbacks=app, ca_port=int(ENV['EPICS_CA_ADDR_LIST'].split()[1].split(':')[1]))
    factory = protocol.ServerFactory.forProtocol(LineRPC)
    factory.target = app
    listener = reactor.listenTCP(0, factory, interface='127.0.0.1')
    results = {}

    def run():
        try:
            results.update(measure(ioc.device_name, listener.getHost().port))
        finally:
            reactor.callFromThread(reactor.stop)

    reactor.callWhenRunning(lambda: threads.deferToThread(run))
    reactor.run()
    ioc.shutdown()
    testing.stop_repeaters(ENV['EPICS_CA_REPEATER_PORT'])
    print(f'add(a, b): {N} sequential calls from one client process; {K} client processes x {N} calls at once')
    print(f'{"":22} {"median ms":>10} {"p90 ms":>8} {"calls/s (1)":>12} {"calls/s (K)":>12}')
    for label, (median, p90, rate, krate, wall) in results.items():
        print(f'{label:22} {median:10.3f} {p90:8.3f} {rate:12.0f} {krate:12.0f}')
    (m1, _, r1, k1, _), (m2, _, r2, k2, _) = results.values()
    print(f'ratio devioc.rpc / TCP: round trip x{m1 / m2:.1f}, calls/s (1 client) x{r1 / r2:.2f}, '
          f'calls/s ({K} clients) x{k1 / k2:.2f}')


if __name__ == '__main__':
    main()
