"""caproto's ``simple.py`` in devioc: three uncoupled read/writable PVs.

Original: caproto/caproto ``caproto/ioc_examples/simple.py`` (caproto 1.3.0).
Run: ``python -m devioc run examples/peers/simple.py:SimpleIOC --device simple``
serves ``simple:A`` (longout, 1), ``simple:B`` (ao, 2.0) and ``simple:C`` (waveform of 3 LONGs, [1 2 3]).

Differs: nothing a client sees. ``C`` holds at most 3 elements, as the original's ``max length 3``.
"""
from devioc import models


class SimpleIOC(models.Model):
    """Three uncoupled read/writable PVs: A (int), B (float), C (array of 3 ints)."""

    A = models.Integer('A', default=1, desc='An integer')
    B = models.Float('B', default=2.0, desc='A float')
    C = models.Array('C', type=int, length=3, default=[1, 2, 3], desc='An array of integers (max length 3)')


if __name__ == '__main__':
    import devioc
    devioc.run(SimpleIOC)
