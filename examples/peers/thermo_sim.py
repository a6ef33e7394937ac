"""caproto's ``thermo_sim.py`` in devioc: an oscillating temperature controller, simulated (poorly).

Original: caproto/caproto ``caproto/ioc_examples/thermo_sim.py`` (caproto 1.3.0).
Run: ``python -m devioc run examples/peers/thermo_sim.py:ThermoApp --device thermo``
serves ``thermo:I`` = Tvar * exp(-(t - t0) / K) * sin(omega * t) + SP, computed each time the IOC
scans it (every 0.1 s; ``caput thermo:I.SCAN '1 second'`` changes the rate), and the controls
``thermo:SP`` (100), ``thermo:K`` (10), ``thermo:omega`` (pi), ``thermo:Tvar`` (10).
Every write to SP, the same value too, restarts the decay (t0 = now).

Differs: ``I`` is a real ai record, so it has alarm limits (``caput thermo:I.HIHI 120``) and
everything else an ai has. It is writable (``read_only=False``): EPICS access security grants
writes per record and level, VAL is a level-0 field and SCAN a level-1 one, and a rule that lets a
client write level 1 lets it write level 0 too: no rule refuses VAL and allows SCAN. The rate
control wins; a client's write to ``I`` lasts until the next scan. ``K`` is clamped to 0.001..1e9 s
by the record (DRVL/DRVH): the original divides by whatever a client writes.
"""
import math
import time

from devioc import models


class Thermo(models.Model):
    readback = models.FloatInput('I', SCAN='.1 second', read_only=False, desc='Readback temperature')
    setpoint = models.Float('SP', default=100, desc='Setpoint temperature')
    K = models.Float('K', default=10, min_val=1e-3, max_val=1e9, units='s', desc='Decay constant')
    omega = models.Float('omega', default=math.pi, desc='Oscillation frequency')
    Tvar = models.Float('Tvar', default=10, desc='Scale of oscillations')

    class Meta:
        access_level = 1   # clients may set SCAN (a configuration field), as the original's


class ThermoApp:
    """A simulated temperature controller: I oscillates around SP with a decaying amplitude."""

    def __init__(self, device, **kwargs):
        self.t0 = time.monotonic()
        self.ioc = Thermo(device, callbacks=self, **kwargs)

    def write_setpoint(self, pv, value, ioc):
        self.t0 = time.monotonic()

    def scan_readback(self, pv, ioc):
        t = time.monotonic()
        return ioc.Tvar.get() * math.exp(-(t - self.t0) / ioc.K.get()) * math.sin(ioc.omega.get() * t) + ioc.setpoint.get()


if __name__ == '__main__':
    import devioc
    devioc.run(ThermoApp)
