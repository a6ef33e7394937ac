"""caproto's ``trigger_with_pc.py`` in devioc: an acquire button whose put completes when acquired.

Original: caproto/caproto ``caproto/ioc_examples/too_clever/trigger_with_pc.py`` (caproto 1.3.0).
Run: ``python -m devioc run examples/peers/trigger_with_pc.py:TriggeredApp --device trigger_with_pc``
serves ``trigger_with_pc:acquire`` (idle/acquiring): ``caput -c trigger_with_pc:acquire 1`` returns
only after ``exposure_time`` (2.0 s), when ``reading`` holds a new random number in [0, 1) and
acquire is back to idle. With ``enabled`` off the acquisition is refused (logged) and acquire stays
idle. ``gain`` (2.0) is a plain setting, as in the original.

Differs: put completion is the record's own (an mbbo whose device support completes the put when
the app's handler has finished). The handler is ``do_acquire``: on a blocking field it runs once per
processing of the record (client writes, the app's own puts, the initial value), so it acts on 1 only. Not ported: ``wait``/``wait_time`` (a read that sleeps a random
time: a CA read of a softIoc record never waits for Python).
"""
import random

from twisted.internet import reactor, task

from devioc import log, models

logger = log.get_module_logger(__name__)


class Triggered(models.Model):
    gain = models.Float('gain', default=2.0)
    exposure_time = models.Float('exposure_time', default=2.0, min_val=0, max_val=3600, units='s')
    reading = models.Float('reading', default=0.1)
    acquire = models.Enum('acquire', choices=['idle', 'acquiring'], blocking=True)
    enabled = models.Enum('enabled', choices=['off', 'on'], default=1)


class TriggeredApp:
    """A triggered detector: a put to acquire completes when the exposure is done."""

    def __init__(self, device, **kwargs):
        self.ioc = Triggered(device, callbacks=self, **kwargs)

    async def do_acquire(self, pv, value, ioc):
        if value != 1:
            return
        if ioc.enabled.get() == 0:
            ioc.acquire.put(0)
            raise RuntimeError('Device must be enabled')
        await task.deferLater(reactor, ioc.exposure_time.get(), lambda: None)
        ioc.reading.put(random.random())
        ioc.acquire.put(0)


if __name__ == '__main__':
    import devioc
    devioc.run(TriggeredApp)
