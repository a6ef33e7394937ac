"""caproto's ``enums.py`` in devioc: enumerated PVs as real bo, bi and mbbi records.

Original: caproto/caproto ``caproto/ioc_examples/enums.py`` (caproto 1.3.0).
Run: ``python -m devioc run examples/peers/enums.py:EnumIOC --device enum``
serves ``enum:bo`` ('One Value'), ``enum:bi`` ('a'), ``enum:mbbi`` ('one') and ``enum:enum_class`` ('on').

Differs: these are EPICS records, so ZNAM/ONAM and ZRST.. are real fields (``caget enum:bo.ONAM``).
The three input records (bi, mbbi) are read-only to clients, as input records are in devioc
(caproto lets a client write them).
"""
import enum

from devioc import models


class MyEnum(enum.IntEnum):
    off = 0
    on = 1
    unknown = 2


class EnumIOC(models.Model):
    """Enumerated PVs: a bo, a bi and two mbbi records."""

    bo = models.Toggle('bo', zname='Zero Value', oname='One Value', high=0, default=1)
    bi = models.BoolInput('bi', zname='a', oname='b', default=0)
    mbbi = models.EnumInput('mbbi', choices=['zero', 'one', 'two', 'three', 'four'], default=1)
    enum_class = models.EnumInput('enum_class', choices=MyEnum, default=MyEnum.on)


if __name__ == '__main__':
    import devioc
    devioc.run(EnumIOC)
