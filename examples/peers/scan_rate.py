"""caproto's ``scan_rate.py`` in devioc: an ai whose SCAN field sets how often the app computes it.

Original: caproto/caproto ``caproto/ioc_examples/scan_rate.py`` (caproto 1.3.0).
Run: ``python -m devioc run examples/peers/scan_rate.py:ScanRateApp --device periodic``
serves ``periodic:scanned``: the seconds elapsed between the last two scans (SCAN '1 second').
``caput periodic:scanned.SCAN '.5 second'`` and ``camonitor periodic:scanned`` show it change.

Differs: the rate is the record's own SCAN (any of EPICS' scan periods, or I/O Intr, Event,
Passive), not a caproto field mock; the first scan publishes 0.0 (the original publishes nothing).
``scanned`` is writable, as the original's (``read_only=False``: devioc's input kinds are read-only
by default, and that would refuse the client's write to SCAN too).
"""
import time

from devioc import log, models

logger = log.get_module_logger(__name__)


class ScanRate(models.Model):
    scanned = models.FloatInput('scanned', SCAN='1 second', prec=3, units='s', read_only=False,
                                desc='An ai with customizable scan rate')

    class Meta:
        access_level = 1   # clients may set SCAN (a configuration field), as the original's


class ScanRateApp:
    """scanned holds the seconds between its last two scans; its SCAN field sets the rate."""

    last_time = None

    def __init__(self, device, **kwargs):
        self.ioc = ScanRate(device, callbacks=self, **kwargs)

    def on_start(self, ioc):
        logger.info('%s startup called.', ioc.scanned.name)

    def scan_scanned(self, pv, ioc):
        now, last = time.time(), self.last_time
        self.last_time = now
        if last is None:
            return 0.0
        logger.info('Elapsed time since last scan: %s', now - last)
        return now - last


if __name__ == '__main__':
    import devioc
    devioc.run(ScanRateApp)
