"""caproto's ``mini_beamline.py`` in devioc (its pinhole, edge and slit): detectors on motors in a beam.

Original: caproto/caproto ``caproto/ioc_examples/mini_beamline.py`` (caproto 1.3.0).
Run: ``python -m devioc run examples/peers/mini_beamline.py:MiniBeamlineApp --device mini``
serves ``mini:current`` (500 + 25 sin(2 pi t / 4), every 0.1 s) and, for each of ``ph`` (pinhole),
``edge`` and ``slit``, ``mini:<d>:mtr`` (motor position), ``mini:<d>:exp`` (exposure, never below
0) and ``mini:<d>:det``: Poisson counts of N_per_I_per_s * current * exp * profile(mtr), every 0.5 s.

Differs: the exposure's lower limit is the record's (DRVL=0 clamps a client's -1 to 0 before any
Python runs); the motors jump to their setpoint (the original steps them at ``vel`` and
``mtr_tick_rate``; those two PVs and the 480 x 640 ``dot`` image detector are not ported).
"""
import math
import time

import numpy as np

from devioc import models

N_PER_I_PER_S = 200


def pinhole(m, sigma=5.0, center=0.0):
    return math.exp(-((m - center) ** 2) / (2 * sigma * sigma))


def edge(m, sigma=2.5, center=5.0):
    return math.erfc((center - m) / sigma) / 2


def slit(m, sigma=2.5, center=7.5):
    return (math.erfc((m - center) / sigma) - math.erfc((m + center) / sigma)) / 2


class Detector(models.Model):
    det = models.FloatInput('det', SCAN='.5 second', desc='Scalar detector value')
    mtr = models.Float('mtr', prec=3, desc='Motor')
    exp = models.Float('exp', default=1, min_val=0, max_val=1e9, desc='Exponential value')


class MiniBeamline(models.Model):
    current = models.FloatInput('current', default=500, SCAN='.1 second')
    ph = models.Group(Detector, prefix='ph:')
    edge = models.Group(Detector, prefix='edge:')
    slit = models.Group(Detector, prefix='slit:')


class MiniBeamlineApp:
    """A pinhole, an edge and a slit detector on motors, in an oscillating beam current."""

    def __init__(self, device, **kwargs):
        self.ioc = MiniBeamline(device, callbacks=self, **kwargs)

    def scan_current(self, pv, ioc):
        return 500 + 25 * math.sin(time.monotonic() * (2 * math.pi) / 4)

    def counts(self, group, profile):
        rate = N_PER_I_PER_S * self.ioc.current.get() * group.exp.get() * profile(group.mtr.get())
        return float(np.random.poisson(rate))

    def scan_ph_det(self, pv, ioc):
        return self.counts(ioc.ph, pinhole)

    def scan_edge_det(self, pv, ioc):
        return self.counts(ioc.edge, edge)

    def scan_slit_det(self, pv, ioc):
        return self.counts(ioc.slit, slit)


if __name__ == '__main__':
    import devioc
    devioc.run(MiniBeamlineApp)
