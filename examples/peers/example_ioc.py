"""pythonSoftIOC's example IOC in devioc: an output copied to an input that counts up every second.

Original: DiamondLightSource/pythonSoftIOC ``docs/examples/example_cothread_ioc.py`` (the same IOC as
``docs/examples/example_asyncio_ioc.py``, which runs it on asyncio).
Run: ``python -m devioc run examples/peers/example_ioc.py:ExampleApp --device MY-DEVICE-PREFIX``
serves ``MY-DEVICE-PREFIX:AI`` (ai, 5, +1 every second) and ``MY-DEVICE-PREFIX:AO`` (ao, 12.45):
every client write to AO, the same value too (``always_update=True``), is copied to AI.

Differs: the terminal gets the IOC shell (``dbl``, ``dbpr``) instead of an interactive Python
shell; the counter runs on the Twisted reactor instead of a cothread or asyncio task.
"""
import devioc
from devioc import models


class ExampleIOC(models.Model):
    AI = models.FloatInput('AI', default=5)
    AO = models.Float('AO', default=12.45)


class ExampleApp:
    """AI counts up every second; each write to AO is copied to AI."""

    def __init__(self, device, **kwargs):
        self.ioc = ExampleIOC(device, callbacks=self, **kwargs)

    def write_AO(self, pv, value, ioc):
        ioc.AI.put(value)

    @devioc.every(1.0)
    def update(self, ioc):
        ioc.AI.put(ioc.AI.get() + 1)


if __name__ == '__main__':
    devioc.run(ExampleApp)
