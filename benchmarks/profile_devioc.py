#!/usr/bin/env python3
"""Profile devioc's start-up and publish paths in-process (pyinstrument), on an isolated port.

    python benchmarks/profile_devioc.py startup --n 2000
    python benchmarks/profile_devioc.py publish
    python benchmarks/profile_devioc.py import

Prints the phase timings and pyinstrument's call tree (text) to stdout. For the round trip,
attach py-spy to a running subject instead (see README.md).
"""

import argparse
import os
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


def isolate() -> None:
    """Point this process's CA server and client at a free loopback port (before libca starts)."""
    sys.path.insert(0, HERE)
    import procs
    port = procs.free_port()
    for k in [k for k in os.environ if k.startswith('EPICS_')]:
        del os.environ[k]
    os.environ.update(EPICS_CA_SERVER_PORT=str(port), EPICS_CAS_INTF_ADDR_LIST='127.0.0.1',
                      EPICS_CA_AUTO_ADDR_LIST='NO', EPICS_CA_ADDR_LIST=f'127.0.0.1:{port}',
                      EPICS_CAS_AUTO_BEACON_ADDR_LIST='NO', EPICS_CAS_BEACON_ADDR_LIST='127.0.0.1',
                      PATH='/usr/bin:/bin',
                      DEVIOC_CACHE_DIR='/tmp/devioc-bench-cache')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('what', choices=['startup', 'publish', 'import'])
    parser.add_argument('--n', type=int, default=2000)
    parser.add_argument('--html', help='also write pyinstrument HTML here')
    args = parser.parse_args()
    isolate()
    from pyinstrument import Profiler

    sys.path.insert(0, os.path.join(HERE, 'subjects'))
    prefix = f'PROF{uuid.uuid4().hex[:6].upper()}'
    profiler = Profiler(interval=0.0005)
    if args.what == 'import':
        profiler.start()
        t0 = time.perf_counter()
        import devioc.models  # noqa: F401
        import devioc.channels  # noqa: F401
        print(f'import devioc.models + channels: {time.perf_counter() - t0:.3f} s')
        profiler.stop()
    elif args.what == 'startup':
        t0 = time.perf_counter()
        profiler.start()
        import devioc_server
        t1 = time.perf_counter()
        cls = devioc_server.startup_model(args.n)
        t2 = time.perf_counter()
        ioc = cls(prefix)
        t3 = time.perf_counter()
        profiler.stop()
        print(f'imports {t1 - t0:.3f} s, class build {t2 - t1:.3f} s, Model() {t3 - t2:.3f} s')
        ioc.shutdown()
    else:
        import devioc_server
        from twisted.internet import reactor
        out = f'/tmp/devioc-bench-cache/{prefix}.jsonl'
        os.makedirs(os.path.dirname(out), exist_ok=True)
        app = devioc_server.WorkApp(prefix, out)

        def go():
            profiler.start()
            app.do_go(None, 1, app.ioc)
            poll()

        def poll():
            if os.path.exists(out) and 'publish' in open(out).read():
                profiler.stop()
                print(open(out).read().strip())
                reactor.stop()
            else:
                reactor.callLater(0.01, poll)

        reactor.callLater(0.5, go)
        reactor.callLater(60, reactor.stop)
        reactor.run()
        app.ioc.shutdown()
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    if args.html:
        with open(args.html, 'w') as fh:
            fh.write(profiler.output_html())


if __name__ == '__main__':
    main()
