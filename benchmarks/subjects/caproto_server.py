"""Benchmark subject: caproto (pure-Python CA server, asyncio, PVGroup built dynamically)."""

import asyncio
import time

import common


def startup_group(n: int):
    """Return a PVGroup class with ``n`` pvproperties of mixed kinds."""
    from caproto import ChannelType
    from caproto.server import PVGroup, pvproperty

    makers = {
        'ao': lambda name: pvproperty(name=name, value=0.0, precision=3),
        'longout': lambda name: pvproperty(name=name, value=0),
        'bo': lambda name: pvproperty(name=name, value='OFF', enum_strings=['OFF', 'ON'],
                                      dtype=ChannelType.ENUM),
        'mbbo': lambda name: pvproperty(name=name, value='ZERO', dtype=ChannelType.ENUM,
                                        enum_strings=['ZERO', 'ONE', 'TWO']),
        'stringout': lambda name: pvproperty(name=name, value='', max_length=40,
                                             dtype=ChannelType.STRING),
        'ai': lambda name: pvproperty(name=name, value=0.0, precision=3, read_only=True),
    }
    attrs = {f'r{i}': makers[common.kind_of(i)](f'r{i}') for i in range(n)}
    return type('StartupGroup', (PVGroup,), attrs)


def work_group(out: str):
    """Return a PVGroup class with the round-trip, publish and intake logic."""
    from caproto.server import PVGroup, pvproperty

    intake = common.Intake()

    class WorkGroup(PVGroup):
        cmd = pvproperty(name='cmd', value=0)
        result = pvproperty(name='result', value=0, read_only=True)
        go = pvproperty(name='go', value=0)
        pub = pvproperty(name='pub', value=0, read_only=True)
        inp = pvproperty(name='in', value=0)
        done = pvproperty(name='done', value=0)

        @cmd.putter
        async def cmd(self, instance, value):
            await self.result.write(value + 1)
            return value

        @go.putter
        async def go(self, instance, value):
            if value:
                asyncio.get_running_loop().create_task(self._publish(int(value)))
            return value

        async def _publish(self, g: int) -> None:
            base = g * common.OFFSET
            t0 = time.monotonic()
            for v in range(base + 1, base + common.PUBLISH_COUNT + 1):
                await self.pub.write(v)
            t1 = time.monotonic()
            common.report(out, 'publish', go=g, t0=t0, t1=t1, count=common.PUBLISH_COUNT)

        @inp.putter
        async def inp(self, instance, value):
            intake.add(value)
            return value

        @done.putter
        async def done(self, instance, value):
            if value:
                asyncio.get_running_loop().create_task(self._finish(int(value)))
            return value

        async def _finish(self, phase: int) -> None:
            start = time.monotonic()
            while (intake.quiet_for() < common.QUIET_S
                   and time.monotonic() - start < common.QUIET_MAX_S):
                await asyncio.sleep(0.05)
            common.report(out, 'intake', **intake.summary(phase))

    return WorkGroup


def main() -> None:
    args = common.parse_args(__doc__)
    from caproto.server import run

    group_class = startup_group(args.n) if args.mode == 'startup' else work_group(args.out)
    group = group_class(prefix=args.prefix + ':')

    async def ready(async_lib) -> None:
        common.report(args.out, 'ready')

    run(group.pvdb, interfaces=['127.0.0.1'], log_pv_names=False, startup_hook=ready)


if __name__ == '__main__':
    main()
