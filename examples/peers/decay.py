"""caproto's ``decay.py`` in devioc: an exponential decay to a setpoint, with a ``done`` flag.

Original: caproto/caproto ``caproto/ioc_examples/decay.py`` (caproto 1.3.0).
Run: ``python -m devioc run examples/peers/decay.py:DecayApp --device decay``
serves ``decay:I`` = Tvar * exp(-(t - t0) / K) + SP, computed each time the IOC scans it (every
0.1 s, the record's SCAN field), ``decay:done`` (bi, Off/On: On once I is within 5 % of the excursion
|SP - Tvar| from SP) and the controls ``decay:SP`` (100), ``decay:K`` (10), ``decay:Tvar`` (10).
Every write to SP, the same value too, restarts the decay (t0 = now).

Differs: ``I`` and ``done`` are real ai/bi records (alarm limits, ZNAM/ONAM). ``done`` is read-only to
clients; ``I`` is writable (``read_only=False``) so that a client can change its SCAN: EPICS access
security cannot refuse VAL and allow SCAN (see ``thermo_sim.py``); a write to ``I`` lasts until the
next scan.
``done`` is published on every scan: a bi posts only changes, so the original's "write if changed"
guard is the record's job. ``K`` is clamped to 0.001..1e9 s by the record (DRVL/DRVH): the original
divides by whatever a client writes (0: numpy warnings at every scan).
"""
import math
import time

from devioc import models


class Decay(models.Model):
    readback = models.FloatInput('I', SCAN='.1 second', read_only=False, desc='The current readback value')
    done = models.BoolInput('done', zname='Off', oname='On', desc='Readback close to the setpoint')
    setpoint = models.Float('SP', default=100.0, desc='Where to go - the setpoint')
    K = models.Float('K', default=10.0, min_val=1e-3, max_val=1e9, units='s', desc='The decay constant')
    Tvar = models.Float('Tvar', default=10.0, desc='The scale of the initial excursion')

    class Meta:
        access_level = 1   # clients may set SCAN (a configuration field), as the original's


class DecayApp:
    """An exponential decay of I to the setpoint SP; done when close."""

    def __init__(self, device, **kwargs):
        self.t0 = time.monotonic()
        self.ioc = Decay(device, callbacks=self, **kwargs)

    def write_setpoint(self, pv, value, ioc):
        self.t0 = time.monotonic()

    def scan_readback(self, pv, ioc):
        setpoint, t_var = ioc.setpoint.get(), ioc.Tvar.get()
        value = t_var * math.exp(-(time.monotonic() - self.t0) / ioc.K.get()) + setpoint
        ioc.done.put(abs(value - setpoint) < 0.05 * abs(setpoint - t_var))
        return value


if __name__ == '__main__':
    import devioc
    devioc.run(DecayApp)
