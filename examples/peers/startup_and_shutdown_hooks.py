"""caproto's ``startup_and_shutdown_hooks.py`` in devioc: the app says when the IOC starts and stops.

Original: caproto/caproto ``caproto/ioc_examples/startup_and_shutdown_hooks.py`` (caproto 1.3.0).
Run: ``python -m devioc run examples/peers/startup_and_shutdown_hooks.py:StartupAndShutdownApp --device simple``
serves ``simple:thing`` (2) and logs, in order: the app-level start hook (which waits 1 s, without
blocking the IOC), then (after it) the "thing" start hook, and on SIGTERM/SIGINT/``exit`` the
shutdown hook, before the IOC stops.

Differs: devioc has one start and one stop hook per app, not one per PV; the original's IOC-level
hook and ``thing``'s hook become one ``on_start`` coroutine that logs both, in the same order.
"""
from twisted.internet import reactor, task

from devioc import log, models

logger = log.get_module_logger(__name__)


class StartupAndShutdown(models.Model):
    thing = models.Integer('thing', default=2, desc='An integer-valued PV')


class StartupAndShutdownApp:
    """Logs when the IOC has started and before it stops."""

    def __init__(self, device, **kwargs):
        self.ioc = StartupAndShutdown(device, callbacks=self, **kwargs)

    async def on_start(self, ioc):
        logger.warning('1. The IOC-level startup hook was called.')
        await task.deferLater(reactor, 1.0, lambda: None)
        logger.warning('(the startup hook finished after sleeping)')
        logger.warning('2. The "thing" startup hook was called.')

    def on_stop(self, ioc):
        logger.warning('3. The "thing" shutdown hook was called.')


if __name__ == '__main__':
    import devioc
    devioc.run(StartupAndShutdownApp)
