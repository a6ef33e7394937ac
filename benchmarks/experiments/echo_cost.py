#!/usr/bin/env python3
"""Measure what devioc's monitor on its own written records costs (PROFILE.md, items 5 and 6).

    python benchmarks/experiments/echo_cost.py            # round trip and publish, both variants

Round trip: the benchmark's devioc work server, as is and with the subscription of ``result``
(written by do_cmd, no callback) cleared; the benchmark client measures 2,000 back-to-back
round trips against each. Publish: 20,000 puts in-process, with the core's ``PV.put`` and with a
lean prototype put (cached DBR type, preallocated ctypes scalar, no per-put imports), each with
and without the monitor on ``pub``. Nothing here changes devioc: the variants monkeypatch it.

Written against the core at d98250e, which monitored every record. The core now monitors a field
without a callback only from its first get() (PROFILE.md item 5, done), so both variants of the
round trip run without the echo; the numbers in PROFILE.md are from d98250e.
"""

import argparse
import ctypes
import json
import os
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
sys.path[:0] = [BENCH, os.path.join(BENCH, 'subjects')]


# as run.py's default --rt drop: no EPICS real-time priority / mlockall, as a normal user
NO_RT = (['setpriv', '--inh-caps=-sys_nice', '--bounding-set=-sys_nice'] if os.geteuid() == 0 else [])


def drop_monitor(pv) -> None:
    """Clear the monitor subscription of a devioc PV (the core keeps the event id last)."""
    from epics import ca
    if pv._subscription is None:  # the current core does not monitor it in the first place
        return
    libca = ca.initialize_libca()
    libca.ca_clear_subscription(pv._subscription[-1])
    libca.ca_flush_io()


def lean_put_factory(orig_put):
    """A prototype of item 6: scalar non-blocking puts in ~1.5 us."""
    from epics import ca, dbr
    from twisted.internet import reactor
    libca = ca.initialize_libca()
    state = dict(pending=False, io=threading.get_ident())

    def flush():
        state['pending'] = False
        libca.ca_flush_io()

    def put(self, value, wait=False, timeout=30.0, **kw):
        if wait or not isinstance(value, (int, float)) or self.ftype not in (dbr.LONG, dbr.DOUBLE):
            return orig_put(self, value, wait=wait, timeout=timeout, **kw)
        buf = self.__dict__.get('_lean_buf')
        if buf is None:
            buf = self._lean_buf = dbr.Map[self.ftype]()
        buf.value = value
        status = libca.ca_array_put(self.ftype, 1, self._chid, ctypes.byref(buf))
        if status != dbr.ECA_NORMAL:
            self._check(status)
        if not state['pending']:
            if reactor.running and threading.get_ident() == state['io']:
                state['pending'] = True
                reactor.callLater(0, flush)
            else:
                libca.ca_flush_io()
        return True

    return put


def serve(args) -> None:
    """Run the benchmark's devioc work server, optionally without the monitor on ``result``."""
    import common
    import devioc_server
    from twisted.internet import reactor
    app = devioc_server.WorkApp(args.prefix, args.out)
    if args.variant == 'no-echo':
        drop_monitor(app.ioc.result)
    common.report(args.out, 'ready')
    reactor.addSystemEventTrigger('before', 'shutdown', app.ioc.shutdown)
    reactor.run()


def round_trip(variant: str, workdir: str) -> dict:
    import procs
    from run import ca_env, read_line
    port = procs.free_port()
    prefix = 'ECHO' + uuid.uuid4().hex[:6].upper()
    out = os.path.join(workdir, prefix + '.jsonl')
    client = subprocess.Popen([sys.executable, os.path.join(BENCH, 'client.py'), '--mode', 'work',
                               '--prefix', prefix, '--port', str(port), '--out', out, '--publish', '0',
                               '--intake-count', '10', '--intake-rates', '', '--rtt-paced', '0'],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              env=ca_env(port, False))
    server = None
    try:
        read_line(client.stdout, 60, 'CLIENT_READY')
        env = ca_env(port, True)
        server = subprocess.Popen(NO_RT + [sys.executable, __file__, '--serve', '--variant', variant,
                                   '--prefix', prefix, '--out', out], stdin=subprocess.PIPE, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client.stdin.write(f'{time.monotonic()!r}\n'.encode())
        client.stdin.flush()
        return json.loads(read_line(client.stdout, 120, 'RESULT '))['rtt']['b2b']
    finally:
        if server:
            procs.stop_tree(server)
        procs.stop_tree(client, grace=2.0)


def publish(put_variant: str, echo: bool) -> float:
    """20,000 puts from the reactor in chunks of 500, in a child process; values/s."""
    import procs
    from run import ca_env
    port = procs.free_port()
    code = f'''
import sys, os, json, time, uuid
sys.path[:0] = {[BENCH, os.path.join(BENCH, 'subjects'), HERE]!r}
import devioc_server, echo_cost
from devioc import channels
from twisted.internet import reactor
if {put_variant!r} == 'lean':
    channels.PV.put = echo_cost.lean_put_factory(channels.PV.put)
prefix = 'PUB' + uuid.uuid4().hex[:6].upper()
out = '/tmp/devioc-bench-cache/' + prefix + '.jsonl'
os.makedirs(os.path.dirname(out), exist_ok=True)
app = devioc_server.WorkApp(prefix, out)
def go():
    if not {echo!r}:
        echo_cost.drop_monitor(app.ioc.pub)
    app.do_go(None, 1, app.ioc)
    poll()
def poll():
    if os.path.exists(out):
        d = json.loads(open(out).read()); print('RATE', 20000 / (d['t1'] - d['t0'])); reactor.stop()
    else:
        reactor.callLater(0.01, poll)
reactor.callLater(0.3, go); reactor.callLater(30, reactor.stop); reactor.run(); app.ioc.shutdown()
'''
    res = subprocess.run(NO_RT + [sys.executable, '-c', code], env=ca_env(port, True), capture_output=True,
                         text=True, timeout=120)
    rates = [float(line.split()[1]) for line in res.stdout.splitlines() if line.startswith('RATE')]
    return rates[0] if rates else float('nan')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--serve', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--variant', default='as-is')
    parser.add_argument('--prefix')
    parser.add_argument('--out')
    parser.add_argument('--repeats', type=int, default=2)
    args = parser.parse_args()
    if args.serve:
        return serve(args)
    import tempfile
    workdir = tempfile.mkdtemp(prefix='devioc-echo-')
    for _ in range(args.repeats):
        for variant in ('as-is', 'no-echo'):
            r = round_trip(variant, workdir)
            print(f'round trip {variant:8s} p50 {r["p50"]:.3f} p90 {r["p90"]:.3f} p99 {r["p99"]:.3f} ms', flush=True)
        for put_variant in ('core', 'lean'):
            for echo in (True, False):
                rate = publish(put_variant, echo)
                print(f'publish {put_variant} put, {"with" if echo else "without"} monitor: {rate:,.0f} values/s',
                      flush=True)


if __name__ == '__main__':
    main()
