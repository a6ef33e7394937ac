"""caproto's ``random_walk.py`` in devioc: ``x`` takes a random step every ``dt`` seconds.

Original: caproto/caproto ``caproto/ioc_examples/random_walk.py`` (caproto 1.3.0).
Run: ``python -m devioc run examples/peers/random_walk.py:RandomWalkApp --device random_walk``
serves ``random_walk:dt`` (3.0 s) and ``random_walk:x`` (0.0, then a step in [-1, 1) every dt).

Differs: ``dt`` is clamped to 0.01..3600 s by the record (DRVL/DRVH); caproto sleeps for whatever a
client writes (0 or less: a busy loop). The walk starts in ``on_start``, once the IOC is up, and
reads ``dt`` at every step, as the original's loop does.
"""
import random

from twisted.internet import reactor

from devioc import models


class RandomWalk(models.Model):
    dt = models.Float('dt', default=3.0, min_val=0.01, max_val=3600, units='s', desc='Delta time [sec]')
    x = models.Float('x', default=0.0, desc='The random float value')


class RandomWalkApp:
    """x takes a random step in [-1, 1) every dt seconds."""

    def __init__(self, device, **kwargs):
        self.ioc = RandomWalk(device, callbacks=self, **kwargs)

    def on_start(self, ioc):
        self.step(ioc)

    def step(self, ioc):
        ioc.x.put(ioc.x.get() + 2.0 * random.random() - 1.0)
        reactor.callLater(ioc.dt.get(), self.step, ioc)


if __name__ == '__main__':
    import devioc
    devioc.run(RandomWalkApp)
