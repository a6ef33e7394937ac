"""Put completion: put(wait=True) and put_deferred report what the IOC did with the put, and a get()
after a completed put returns the value just put (monitored and unmonitored fields alike)."""
import logging
import subprocess

import pytest
import pytest_twisted

from devioc import models
from devioc.channels import PutFailed
from devioc.testing import caget, epics_tool


class Locked(models.Model):
    locked = models.Float('locked', default=1.0, DISP=1)
    level = models.Float('level')
    count = models.Integer('count')
    watched = models.Float('watched')
    note = models.String('note', max_length=20)


class App:
    def do_watched(self, pv, value, ioc):
        pass


@pytest.fixture
def locked(device, ca_port):
    ioc = Locked(device, callbacks=App(), ca_port=ca_port)
    yield ioc
    ioc.shutdown()


def test_put_wait_to_a_record_that_refuses_returns_false(locked, ca_env, caplog):
    """DISP=1 refuses CA puts: the C caput -c exits 1, put(wait=True) returns False and logs why;
    the record keeps its value."""
    peer = subprocess.run([epics_tool('caput'), '-c', '-w', '3', f'{locked.device_name}:locked', '5'],
                          env=ca_env, capture_output=True, text=True, timeout=10)
    assert peer.returncode == 1
    with caplog.at_level(logging.ERROR):
        assert locked.locked.put(5.0, wait=True, timeout=3) is False
    assert f'the IOC refused the put of 5.0 to {locked.device_name}:locked' in caplog.text
    assert caget(f'{locked.device_name}:locked') == '1'
    assert locked.level.put(5.0, wait=True, timeout=3) is True   # a record that accepts: True


@pytest_twisted.inlineCallbacks
def test_put_deferred_to_a_record_that_refuses_errbacks(locked):
    """put_deferred errbacks with PutFailed naming the PV when the IOC refuses the put."""
    with pytest.raises(PutFailed, match=f'refused the put of 5.0 to {locked.device_name}:locked'):
        yield locked.locked.put_deferred(5.0)


@pytest.mark.parametrize('field', ['level', 'count', 'watched', 'note'])
def test_get_right_after_put_wait_returns_the_value_just_put(locked, field):
    """200 times in a row: get() right after put(wait=True) is the value put, on a field monitored
    from the start (a callback), one monitored from its first get(), and one never read before."""
    pv = getattr(locked, field)
    convert = str if field == 'note' else (int if field == 'count' else float)
    wrong = []
    for i in range(200):
        value = convert(i % 7 + i)
        assert pv.put(value, wait=True, timeout=5)
        got = pv.get()
        if got != value:
            wrong.append((value, got))
    assert wrong == []
    shown = caget(f'{locked.device_name}:{field}', None, *(['-S'] if field == 'note' else []))
    assert convert(shown) == pv.get() == value


@pytest_twisted.inlineCallbacks
def test_get_in_put_deferred_callback_returns_the_value_put(locked):
    """When put_deferred's Deferred fires, get() returns the value put (50 times)."""
    for i in range(50):
        pv = yield locked.watched.put_deferred(float(i))
        assert pv.get() == float(i)
