"""Benchmark subject: pythonSoftIOC (records in-process, asyncio dispatcher, CA only)."""

import asyncio
import time

import common


def build_startup(builder, n: int) -> None:
    """Create ``n`` records of mixed kinds named r0 .. r{n-1}."""
    makers = {
        'ao': lambda name: builder.aOut(name, initial_value=0.0, PREC=3),
        'longout': lambda name: builder.longOut(name, initial_value=0),
        'bo': lambda name: builder.boolOut(name, ZNAM='OFF', ONAM='ON', initial_value=0),
        'mbbo': lambda name: builder.mbbOut(name, 'ZERO', 'ONE', 'TWO', initial_value=0),
        'stringout': lambda name: builder.stringOut(name, initial_value=''),
        'ai': lambda name: builder.aIn(name, initial_value=0.0, PREC=3),
    }
    for i in range(n):
        makers[common.kind_of(i)](f'r{i}')


def build_work(builder, loop_getter, out: str) -> None:
    """Create the round-trip, publish and intake records with their logic."""
    result = builder.longIn('result', initial_value=0)
    pub = builder.longIn('pub', initial_value=0)
    intake = common.Intake()

    def publish(g: int) -> None:
        base = int(g) * common.OFFSET
        t0 = time.monotonic()
        for v in range(base + 1, base + common.PUBLISH_COUNT + 1):
            pub.set(v)
        t1 = time.monotonic()
        common.report(out, 'publish', go=int(g), t0=t0, t1=t1, count=common.PUBLISH_COUNT)

    async def finish_phase(phase: int) -> None:
        start = time.monotonic()
        while intake.quiet_for() < common.QUIET_S and time.monotonic() - start < common.QUIET_MAX_S:
            await asyncio.sleep(0.05)
        common.report(out, 'intake', **intake.summary(int(phase)))

    builder.longOut('cmd', initial_value=0, on_update=lambda v: result.set(int(v) + 1))
    builder.longOut('go', initial_value=0, on_update=lambda g: g and publish(g))
    builder.longOut('in', initial_value=0, always_update=True, on_update=intake.add)
    builder.longOut('done', initial_value=0,
                    on_update=lambda p: p and loop_getter().create_task(finish_phase(p)))


def main() -> None:
    args = common.parse_args(__doc__)
    from softioc import asyncio_dispatcher, builder, softioc

    dispatcher = asyncio_dispatcher.AsyncioDispatcher()
    builder.SetDeviceName(args.prefix)
    if args.mode == 'startup':
        build_startup(builder, args.n)
    else:
        build_work(builder, lambda: dispatcher.loop, args.out)
    builder.LoadDatabase()
    softioc.iocInit(dispatcher, enable_pva=False)
    common.report(args.out, 'ready')
    softioc.non_interactive_ioc()


if __name__ == '__main__':
    main()
