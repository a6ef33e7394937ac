"""Benchmark subject: devioc (model class built dynamically, real softIoc child, Twisted reactor)."""

import itertools
import time

import common

CHUNK = 500   # publish: puts per reactor turn, so devioc's per-turn flush sends them


def startup_model(n: int):
    """Return a Model class with ``n`` records of mixed kinds named r0 .. r{n-1}."""
    from devioc import models

    makers = {
        'ao': lambda name: models.Float(name, prec=3),
        'longout': lambda name: models.Integer(name),
        'bo': lambda name: models.Toggle(name, zname='OFF', oname='ON'),
        'mbbo': lambda name: models.Enum(name, choices=['ZERO', 'ONE', 'TWO']),
        'stringout': lambda name: models.String(name),
        'ai': lambda name: models.FloatInput(name, prec=3),
    }
    attrs = {f'r{i}': makers[common.kind_of(i)](f'r{i}') for i in range(n)}
    return type('StartupIOC', (models.Model,), attrs)


def work_model():
    """Return the Model class with the round-trip, publish and intake records."""
    from devioc import models

    class WorkIOC(models.Model):
        cmd = models.Integer('cmd')
        result = models.IntegerInput('result')
        go = models.Integer('go')
        pub = models.IntegerInput('pub')
        inp = models.Integer('in')
        done = models.Integer('done')

    return WorkIOC


class WorkApp:
    """The server logic: round trip, publish loop, intake collection."""

    def __init__(self, prefix: str, out: str) -> None:
        self.out = out
        self.intake = common.Intake()
        self.ioc = work_model()(prefix, callbacks=self)

    def do_cmd(self, pv, value, ioc) -> None:
        ioc.result.put(value + 1)

    def do_go(self, pv, value, ioc) -> None:
        if not value:
            return
        from twisted.internet import reactor

        g = int(value)
        base = g * common.OFFSET
        values = iter(range(base + 1, base + common.PUBLISH_COUNT + 1))
        t0 = time.monotonic()
        put = ioc.pub.put

        def chunk():
            sent = 0
            for v in itertools.islice(values, CHUNK):
                put(v)
                sent += 1
            if sent == CHUNK:
                reactor.callLater(0, chunk)
            else:
                common.report(self.out, 'publish', go=g, t0=t0, t1=time.monotonic(),
                              count=common.PUBLISH_COUNT)

        chunk()

    def do_inp(self, pv, value, ioc) -> None:
        self.intake.add(value)

    def do_done(self, pv, value, ioc) -> None:
        if not value:
            return
        from twisted.internet import reactor

        start = time.monotonic()

        def check():
            if (self.intake.quiet_for() < common.QUIET_S
                    and time.monotonic() - start < common.QUIET_MAX_S):
                reactor.callLater(0.05, check)
            else:
                common.report(self.out, 'intake', **self.intake.summary(int(value)))

        check()


def main() -> None:
    args = common.parse_args(__doc__)
    from twisted.internet import reactor

    if args.mode == 'startup':
        ioc = startup_model(args.n)(args.prefix)
    else:
        ioc = WorkApp(args.prefix, args.out).ioc
    common.report(args.out, 'ready')
    reactor.addSystemEventTrigger('before', 'shutdown', ioc.shutdown)
    reactor.run()


if __name__ == '__main__':
    main()
