"""The demo IOC: the original devioc's example model and app, unchanged, on the Twisted reactor.

Run ``python -m devioc.demo --device DEMO`` and, from another shell, ``caget DEMO:enum``,
``caput DEMO:toggle 1`` (cycles DEMO:enum), ``caput DEMO:intval 3`` (DEMO:calc follows).
"""
from __future__ import annotations

import argparse
import logging
import sys

from devioc import log, models

logger = log.get_module_logger(__name__)


class DemoIOC(models.Model):
    enum = models.Enum('enum', choices=['ZERO', 'ONE', 'TWO'], default=0, desc='Enum Test')
    toggle = models.Toggle('toggle', zname='ON', oname='OFF', desc='Toggle Test')
    sstring = models.String('sstring', max_length=20, desc='Short String Test')
    lstring = models.String('lstring', max_length=512, desc='Long String Test')
    intval = models.Integer('intval', max_val=1000, min_val=-1000, default=0, desc='Int Test')
    floatval = models.Float('floatval', max_val=1e6, min_val=1e-6, default=0.0, prec=5, desc='Float Test')
    floatout = models.Float('floatout', desc='Test Float Output')
    intarray = models.Array('intarray', type=int, length=16, desc='Int Array Test')
    floatarray = models.Array('floatarray', type=float, length=16, desc='Float Array Test')
    calc = models.Calc('calc', calc='A+B', inpa='$(device):intval CP NMS', inpb='$(device):floatval CP NMS',
                       desc='Calc Test')


class DemoApp:
    """Cycles the enum each time the toggle is pressed; logs the calc result."""

    def __init__(self, device: str, macros: dict | None = None):
        self.ioc = DemoIOC(device, callbacks=self, macros=macros)

    def do_toggle(self, pv, value, ioc):
        if value == 1:
            ioc.enum.put((ioc.enum.get() + 1) % 3, wait=True)

    def do_enum(self, pv, value, ioc):
        logger.info('enum is now %s (%s)', value, pv.get(as_string=True))

    def do_calc(self, pv, value, ioc):
        logger.info('calc = %s + %s = %s', ioc.intval.get(), ioc.floatval.get(), value)

    def shutdown(self):
        self.ioc.shutdown()


def main(argv: list[str] | None = None) -> int:
    """Run the demo IOC until SIGINT/SIGTERM/SIGHUP; return the exit status of :func:`devioc.shell.serve`."""
    from .shell import serve, stop_quietly_until_served

    stop_quietly_until_served()
    parser = argparse.ArgumentParser(description='Run the devioc demo IOC')
    parser.add_argument('--device', default='DEMO', help='device name (PV prefix), default DEMO')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    args = parser.parse_args(argv)
    log.log_to_console(logging.DEBUG if args.verbose else logging.INFO)

    def start() -> DemoApp:
        app = DemoApp(args.device)
        logger.info('demo IOC running: try  caget %s:enum  and  caput %s:toggle 1  (Ctrl-C stops)',
                    args.device, args.device)
        return app

    return serve(start, verbose=args.verbose)


if __name__ == '__main__':
    sys.exit(main())
