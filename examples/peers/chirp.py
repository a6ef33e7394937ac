"""caproto's ``chirp.py`` in devioc: one PV updates at a steady rate, another ever faster ("chirps").

Original: caproto/caproto ``caproto/ioc_examples/chirp.py`` (caproto 1.3.0).
Run: ``python examples/peers/chirp.py --device chirp --ramp-rate 0.75``
serves ``chirp:chirp`` (0, 1, 2, ... with the pause between updates shrinking by the ramp rate
from 0.5 s, starting again at 0 once it is below 1e-14 s) and ``chirp:steady`` (+1 every 0.1 s,
modulo 1000). For benchmarking a client: how fast can it follow the chirp, and does the steady PV
keep its pace beside it?

Differs: ``--ramp-rate`` is a click option of the runner (``devioc.run(..., options=[...])``), so it
is checked (0 < rate < 1) with the usual usage error; caproto's check raises a misspelled
``argparse.ArguementTypeError``. ``python -m devioc run chirp.py:ChirpApp`` runs it with rate 0.75.
"""
import click
from twisted.internet import reactor

import devioc
from devioc import models


class Chirp(models.Model):
    chirp = models.FloatInput('chirp', desc='The chirping signal')
    steady = models.IntegerInput('steady', desc='A steadily updating signal')


class ChirpApp:
    """One PV updates at a steady rate; another "chirps" (accelerating updates)."""

    def __init__(self, device, ramp_rate=0.75, **kwargs):
        self.ramp_rate, self.period, self.value = ramp_rate, 0.5, 0
        self.ioc = Chirp(device, callbacks=self, **kwargs)

    def on_start(self, ioc):
        self.step(ioc)

    def step(self, ioc):
        ioc.chirp.put(self.value)
        reactor.callLater(self.period, self.step, ioc)
        self.period, self.value = self.period * self.ramp_rate, self.value + 1
        if self.period < 10e-15:
            self.period, self.value = 0.5, 0

    @devioc.every(0.1)
    def tick(self, ioc):
        ioc.steady.put((ioc.steady.get() + 1) % 1000)


RAMP_RATE = click.option('--ramp-rate', type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.75,
                         help='The factor applied to the update period after each update.')

if __name__ == '__main__':
    devioc.run(ChirpApp, options=[RAMP_RATE])
