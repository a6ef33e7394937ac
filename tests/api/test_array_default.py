"""Array(default=[...]): checked when the class is built (length, element type, range), rendered as a
constant JSON input link that softIoc loads at iocInit; caget and get() see it from the start."""
import numpy as np
import pytest

from devioc import models, render
from devioc.checks import ModelError
from devioc.testing import caget


class Tables(models.Model):
    gains = models.Array('gains', type=float, length=5, default=[1.5, 2, -3.25])
    counts = models.Array('counts', type='SHORT', length=4, default=[1, -2, 32767])
    names = models.Array('names', type=str, length=3, default=['alpha', 'beta gamma'])
    flags = models.Array('flags', type='UCHAR', length=3, default=np.array([0, 255], dtype=np.uint8))
    empty = models.Array('empty', type=int, length=3)


def test_default_is_rendered_as_a_constant_link():
    """INP={"const":[...]}, integers for integer FTVLs, and no INP without a default."""
    text = render.render_db(Tables, 'D')
    assert 'field(INP, {"const":[1.5,2,-3.25]})' in text
    assert 'field(INP, {"const":[1,-2,32767]})' in text
    assert 'field(INP, {"const":["alpha","beta gamma"]})' in text
    assert 'field(INP, {"const":[0,255]})' in text
    assert text.count('field(INP') == 4


def test_softioc_loads_the_default(run_model, ca_port, ca_env):
    """caget (C client) and ioc.<field>.get() see the default elements as the first value."""
    ioc = run_model(Tables, ca_port=ca_port)
    dev = ioc.device_name
    def elements(name):   # caget prints NELM elements, its count first: NORD says how many were loaded
        nord = int(caget(f'{dev}:{name}.NORD', ca_env))
        return caget(f'{dev}:{name}', ca_env).split()[1:nord + 1]

    assert elements('gains') == ['1.5', '2', '-3.25']
    assert elements('counts') == ['1', '-2', '32767']
    assert caget(f'{dev}:names.NORD', ca_env) == '2'
    assert caget(f'{dev}:names', ca_env, '-#', '2') == '2 alpha beta gamma'
    assert elements('flags') == ['0', '-1']   # CA has no unsigned char: caget shows the UCHAR 255 as -1
    assert list(ioc.flags.get()) == [0, 255]
    assert caget(f'{dev}:empty.NORD', ca_env) == '0'
    assert list(ioc.gains.get()) == [1.5, 2.0, -3.25]
    assert list(ioc.names.get()) == ['alpha', 'beta gamma']
    assert caget(f'{dev}:gains.SEVR', ca_env) == 'NO_ALARM'


@pytest.mark.parametrize('kwargs, error', [
    (dict(type=int, length=2, default=[1, 2, 3]), r'devioc.E018.*3 elements; the array holds length=2'),
    (dict(type=int, length=2, default='12'), r'devioc.E015.*must be a list'),
    (dict(type=int, length=2, default=5), r'devioc.E015.*must be a list'),
    (dict(type='SHORT', length=2, default=[40000]), r'devioc.E018.*default\[0\]=40000.*-32768..32767'),
    (dict(type=int, length=2, default=[1, 2.5]), r'devioc.E019.*default\[1\]=2.5.*integers'),
    (dict(type=float, length=2, default=['a']), r'devioc.E019.*holds numbers'),
    (dict(type=float, length=2, default=[float('inf')]), r'devioc.E019.*inf or nan'),
    (dict(type='FLOAT', length=2, default=[1e39]), r'devioc.E018.*FLOAT'),
    (dict(type=str, length=2, default=[3]), r'devioc.E019.*holds strings'),
    (dict(type=str, length=2, default=['x' * 40]), r'devioc.E013.*40 bytes'),
    (dict(type=int, length=2, default=[1], INP='$(device):other'), r'devioc.E017.*default= and INP'),
])
def test_bad_defaults_are_refused_with_the_element(kwargs, error):
    """Each fault is one message naming the field, the element and the limit."""
    with pytest.raises(ModelError, match=r'(?s)Bad\.a: \(' + error):
        class Bad(models.Model):
            a = models.Array('a', **kwargs)
