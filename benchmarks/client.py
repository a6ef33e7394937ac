"""The one benchmark client (pyepics), the same for every subject.

Started fresh by ``run.py`` for each measurement, with the CA environment pointing at the
subject's port only. Protocol on stdio: prints ``CLIENT_READY`` once libca is up, reads one
line holding the launch time (``time.monotonic()`` of the orchestrator, comparable across
processes) when the subject is launched, measures, prints ``RESULT <json>`` and exits.

Writes use the low-level ``ca_array_put`` plus ``ca_flush_io`` per value: each write leaves
at once and the client does not sleep in ``pend_event`` as ``epics.ca.put`` does (which caps
a client near 10k puts/s and adds ~0.1 ms to each round trip).
"""

import argparse
import ctypes
import json
import os
import socket
import sys
import threading
import time

DBR_LONG = 5
OFFSET = 100_000        # same as subjects/common.py
PUBLISH_COUNT = 20_000  # same as subjects/common.py


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--mode', choices=['startup', 'work'], required=True)
    parser.add_argument('--prefix', required=True)
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--out', required=True, help="the subject's report file")
    parser.add_argument('--expect-ready', type=int, default=1,
                        help='1 when the subject reports a "ready" line')
    parser.add_argument('--n', type=int, default=0)
    parser.add_argument('--logic', type=int, default=1,
                        help='0 when the subject has no Python logic (publish/intake skipped)')
    parser.add_argument('--rtt-b2b', type=int, default=2000)
    parser.add_argument('--rtt-b2b-max-s', type=float, default=5.0)
    parser.add_argument('--rtt-paced', type=int, default=200)
    parser.add_argument('--rtt-idle-s', type=float, default=0.020)
    parser.add_argument('--publish', type=int, default=1, help='publish runs')
    parser.add_argument('--intake-count', type=int, default=10_000)
    parser.add_argument('--intake-rates', default='100,500,1000,2000,5000')
    parser.add_argument('--intake-seconds', type=float, default=2.0)
    parser.add_argument('--timeout', type=float, default=120.0)
    return parser.parse_args()


class Reports:
    """Reads the subject's JSON report lines as they are appended."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines = []

    def _refresh(self) -> None:
        try:
            with open(self.path) as fh:
                text = fh.read()
        except FileNotFoundError:
            return
        complete = text[:text.rfind('\n') + 1]
        self.lines = [json.loads(x) for x in complete.splitlines() if x.strip()]

    def wait(self, timeout: float, **match):
        """Return the first line whose fields equal ``match``, or None after ``timeout``."""
        end = time.monotonic() + timeout
        while True:
            self._refresh()
            for line in self.lines:
                if all(line.get(k) == v for k, v in match.items()):
                    return line
            if time.monotonic() > end:
                return None
            time.sleep(0.002)


def wait_port(port: int, timeout: float) -> float:
    """Poll until the TCP port accepts a connection; return the time it did."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=0.2):
                return time.monotonic()
        except OSError:
            time.sleep(0.005)
    raise SystemExit(f'port {port} did not open within {timeout} s')


def percentiles(samples):
    if not samples:
        return {}
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))]
    return dict(n=len(s), p50=pick(0.50), p90=pick(0.90), p99=pick(0.99), max=s[-1])


class Client:
    def __init__(self, args) -> None:
        from epics import ca
        self.ca = ca
        self.args = args
        self.libca = ca.initialize_libca()
        ca.create_context()
        self.reports = Reports(args.out)
        self._keep = []

    # -- CA helpers
    def put_long(self, chid, value: int) -> None:
        """Queue one DBR_LONG write and flush it."""
        val = ctypes.c_int32(value)
        self.libca.ca_array_put(DBR_LONG, 1, chid, ctypes.byref(val))
        self.libca.ca_flush_io()

    def connect(self, names, timeout: float):
        """Create channels for ``names`` at once; return chids once all are connected."""
        connected = set()
        lock = threading.Lock()
        all_up = threading.Event()
        total = len(names)

        def on_conn(pvname=None, conn=None, **kw):
            if conn:
                with lock:
                    connected.add(pvname)
                    if len(connected) == total:
                        all_up.set()

        chids = [self.ca.create_channel(n, connect=False, callback=on_conn) for n in names]
        self.libca.ca_flush_io()
        if not all_up.wait(timeout):
            raise SystemExit(f'only {len(connected)} of {total} channels connected in {timeout} s')
        return chids

    def subscribe(self, chid, callback) -> None:
        self._keep.append(self.ca.create_subscription(chid, callback=callback))

    # -- measurements
    def startup(self, t0: float) -> dict:
        a = self.args
        t_port = wait_port(a.port, a.timeout)
        names = [f'{a.prefix}:r{i}' for i in range(a.n)]
        chids = self.connect(names, a.timeout)
        t_conn = time.monotonic()
        value = self.ca.get(chids[-1], timeout=10)
        t_read = time.monotonic()
        t_ready = None
        if a.expect_ready:
            line = self.reports.wait(a.timeout, event='ready')
            t_ready = line['t'] if line else None
        done = max(t_read, t_ready or 0)
        return dict(n=a.n, port_s=t_port - t0, connected_s=t_conn - t0, read_s=t_read - t0,
                    ready_s=None if t_ready is None else t_ready - t0, startup_s=done - t0,
                    last_value=None if value is None else str(value))

    def work(self, t0: float) -> dict:
        a = self.args
        wait_port(a.port, a.timeout)
        if a.expect_ready and not self.reports.wait(a.timeout, event='ready'):
            raise SystemExit('subject never reported ready')
        names = ['cmd', 'result'] + (['go', 'pub', 'in', 'done'] if a.logic else [])
        chids = dict(zip(names, self.connect([f'{a.prefix}:{n}' for n in names], 30)))
        out = dict(rtt=self.round_trip(chids))
        if a.logic:
            out['publish'] = [self.publish(chids, g) for g in range(1, a.publish + 1)]
            out['intake'] = self.intake(chids)
        return out

    def round_trip(self, chids) -> dict:
        a = self.args
        want = [None]
        got = threading.Event()

        def on_result(value=None, **kw):
            if value is not None and int(value) == want[0]:
                got.set()

        self.subscribe(chids['result'], on_result)
        time.sleep(0.2)
        k = 1000
        results = {}
        for label, count, idle, max_s in (('b2b', a.rtt_b2b, 0.0, a.rtt_b2b_max_s),
                                          ('paced', a.rtt_paced, a.rtt_idle_s, 60.0)):
            samples, lost = [], 0
            end = time.monotonic() + max_s
            for _ in range(count):
                if time.monotonic() > end:
                    break
                k += 1
                want[0] = k + 1
                got.clear()
                t = time.perf_counter()
                self.put_long(chids['cmd'], k)
                if got.wait(2.0):
                    samples.append((time.perf_counter() - t) * 1e3)
                else:
                    lost += 1
                if idle:
                    time.sleep(idle)
            results[label] = dict(percentiles(samples), lost=lost)
        return results

    def publish(self, chids, g: int) -> dict:
        base = g * OFFSET
        final = base + PUBLISH_COUNT
        seen = []

        def on_pub(value=None, **kw):
            if value is not None and base < value <= final:
                seen.append((time.monotonic(), int(value)))

        self.subscribe(chids['pub'], on_pub)
        time.sleep(0.2)
        self.put_long(chids['go'], g)
        line = self.reports.wait(60, event='publish', go=g)
        if line is None:
            return dict(go=g, error='no publish report within 60 s')
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if seen and seen[-1][1] == final:
                break
            if seen and time.monotonic() - seen[-1][0] > 2.0:
                break
            time.sleep(0.01)
        received = list(seen)
        loop_s = line['t1'] - line['t0']
        span = received[-1][0] - line['t0'] if received else None
        return dict(go=g, loop_s=loop_s, loop_rate=PUBLISH_COUNT / loop_s,
                    received=len(received), final_arrived=bool(received) and received[-1][1] == final,
                    in_order=all(a[1] < b[1] for a, b in zip(received, received[1:])),
                    delivered_rate=len(received) / span if span else None,
                    last_arrival_s=span)

    def intake(self, chids) -> list:
        a = self.args
        phases = [(1, None, a.intake_count)]
        rates = [int(r) for r in a.intake_rates.split(',') if r.strip()]
        for i, rate in enumerate(rates):
            phases.append((i + 2, rate, max(50, int(rate * a.intake_seconds))))
        out = []
        for phase, rate, count in phases:
            base = phase * OFFSET
            t_start = time.monotonic()
            for i in range(1, count + 1):
                if rate:
                    delay = t_start + i / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                self.put_long(chids['in'], base + i)
            t_end = time.monotonic()
            self.put_long(chids['done'], phase)
            line = self.reports.wait(60, event='intake', phase=phase)
            row = dict(phase=phase, rate=rate, sent=count, write_rate=count / (t_end - t_start))
            if line is None:
                row['error'] = 'no intake report within 60 s'
            else:
                span = (line['t_last'] or 0) - (line['t_first'] or 0)
                row.update(received=line['received'], unique=line['unique'],
                           in_order=line['in_order'], last_arrived=line['last'] == base + count,
                           callback_rate=line['received'] / span if span > 0 else None,
                           lag_s=(line['t_last'] or t_end) - t_end)
            out.append(row)
        return out


def main() -> None:
    args = parse_args()
    client = Client(args)
    print('CLIENT_READY', flush=True)
    line = sys.stdin.readline()
    if not line.strip():
        raise SystemExit('no launch time on stdin')
    t0 = float(line)
    result = client.startup(t0) if args.mode == 'startup' else client.work(t0)
    print('RESULT ' + json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)   # skip libca teardown: the measurement is done


if __name__ == '__main__':
    main()
