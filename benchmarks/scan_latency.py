"""scan_<field> -> value seen by a CA client, at access level 0 and 1 (issue 14: the clients' level).

At ``Meta.access_level = 0`` (the default) clients may not write PROC, so the app's scan publication
(VAL, then PROC) goes through softIoc's shell; at level 1 it is two CA puts. The scan method returns
the wall clock; a pyepics monitor in another process subtracts it from its own clock on arrival
(same host: one clock). Loopback only, the CA port given.

    python benchmarks/scan_latency.py [--port 47311] [--rounds 2] [--seconds 12]

Prints one line per level and round: samples, p50, p90, max in ms.
"""
import argparse
import json
import os
import subprocess
import sys
import time

CLIENT = r'''
import json, statistics, sys, time
import epics
lat = []
pv = epics.PV(sys.argv[1], form='native',
              callback=lambda value=None, **kw: lat.append((time.time() % 1000 - value) * 1000))
time.sleep(float(sys.argv[2]))
lat = sorted(lat[5:])
print(json.dumps({"n": len(lat), "p50": round(statistics.median(lat), 3), "p90": round(lat[int(len(lat) * .9)], 3),
                  "max": round(lat[-1], 3)}))
'''


def serve(level: int, port: str, seconds: float) -> str:
    """Run one model at ``level`` with a .1 s scanned field and measure from a client process."""
    from twisted.internet import reactor

    from devioc import models

    class Scanned(models.Model):
        level = models.Float('level', SCAN='.1 second', prec=6)

        class Meta:
            access_level = level

    class App:
        def scan_level(self, pv, ioc):
            return time.time() % 1000

    device = f'SCANLAT{level}'
    ioc = Scanned(device, callbacks=App())
    result = []

    def measure() -> None:
        out = subprocess.run([sys.executable, '-c', CLIENT, f'{device}:level', str(seconds)], capture_output=True,
                             text=True, env=os.environ, timeout=seconds + 30)
        result.append(out.stdout.strip() or out.stderr[-300:])
        reactor.callFromThread(reactor.stop)

    reactor.callLater(2, reactor.callInThread, measure)
    reactor.run()
    ioc.shutdown()
    return result[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', default='47311')
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--seconds', type=float, default=12.0)
    parser.add_argument('--level', type=int, choices=(0, 1), help=argparse.SUPPRESS)   # one run (a child)
    args = parser.parse_args()
    env = {**os.environ, 'EPICS_CA_SERVER_PORT': args.port, 'EPICS_CAS_INTF_ADDR_LIST': '127.0.0.1',
           'EPICS_CA_ADDR_LIST': '127.0.0.1', 'EPICS_CA_AUTO_ADDR_LIST': 'NO'}
    if args.level is not None:
        os.environ.update(env)
        print(serve(args.level, args.port, args.seconds))
        return 0
    for _ in range(args.rounds):
        for level in (0, 1):   # one process per run: a reactor runs once
            out = subprocess.run([sys.executable, __file__, '--level', str(level), '--port', args.port,
                                  '--seconds', str(args.seconds)], capture_output=True, text=True, env=env,
                                 timeout=args.seconds + 90)
            line = out.stdout.strip().splitlines()[-1:] or [out.stderr[-300:]]
            print(f'level {level}: {json.loads(line[0]) if line[0].startswith("{") else line[0]}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
