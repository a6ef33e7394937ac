"""pythonSoftIOC's ``example_records_calculate.py`` in devioc: a calc record multiplying two outputs.

Original: DiamondLightSource/pythonSoftIOC ``docs/examples/example_records_calculate.py``.
Run: ``python -m devioc run examples/peers/records_calculate.py:Calculate --device XX-XX-XX-01``
serves ``XX-XX-XX-01:VALUE`` (ao, 5), ``XX-XX-XX-01:TEST`` (ao, 10) and ``XX-XX-XX-01:CALC``
(calc ``A*B`` scanned every second: 50).

Differs: nothing; both are the same three EPICS records. The original mixes pythonSoftIOC's builder
with raw iocbuilder records to show the second kind; in devioc every field is such a record.
"""
from devioc import models


class Calculate(models.Model):
    """CALC = VALUE * TEST, computed by a calc record every second."""

    VALUE = models.Float('VALUE', default=5)
    TEST = models.Float('TEST', default=10)
    CALC = models.Calc('CALC', calc='A*B', scan='1 second', inpa='$(device):VALUE', inpb='$(device):TEST')


if __name__ == '__main__':
    import devioc
    devioc.run(Calculate)
