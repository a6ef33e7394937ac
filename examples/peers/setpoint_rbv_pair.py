"""caproto's ``setpoint_rbv_pair.py`` in devioc: setpoints whose ``_RBV`` readbacks follow every write.

Original: caproto/caproto ``caproto/ioc_examples/setpoint_rbv_pair.py`` (caproto 1.3.0).
Run: ``python -m devioc run examples/peers/setpoint_rbv_pair.py:Pairs --device setpoint_rbv``
serves ``setpoint_rbv:pair`` / ``pair_RBV`` (int), ``pair2`` / ``pair2_RBV`` (float) and
``pair3`` / ``pair3_RBV`` (bo / bi, No/Yes).

Differs: no Python at all: each readback is an input record with a CP link to its setpoint, so the
IOC copies the value itself, in the same lock set (no callback, no lost update if the app is busy).
The readbacks are read-only to clients, as the original's. The original's putter also printed the
group; nothing here prints.
"""
from devioc import models


class Pairs(models.Model):
    """Setpoint/readback pairs: each _RBV follows its setpoint through a CP link."""

    pair = models.Integer('pair', desc='This is the first pair, of data type int')
    pair_RBV = models.IntegerInput('pair_RBV', INP='$(device):pair CP')
    pair2 = models.Float('pair2', desc='pair2 has a separate data type of float')
    pair2_RBV = models.FloatInput('pair2_RBV', INP='$(device):pair2 CP')
    pair3 = models.Toggle('pair3', zname='No', oname='Yes', high=0)
    pair3_RBV = models.BoolInput('pair3_RBV', zname='No', oname='Yes', INP='$(device):pair3 CP')


if __name__ == '__main__':
    import devioc
    devioc.run(Pairs)
