"""Any thread: get(), put(), put(wait=True) and put_deferred() from threads the app starts, checked
with the C caget (libca contexts are per thread: a thread without the model's context used to put
into a fresh, empty context that never sent anything)."""
import threading

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, threads
from twisted.python import threadable

from devioc import models
from devioc.testing import caget, wait_for


class Meter(models.Model):
    level = models.FloatInput('level', prec=2)
    rate = models.FloatInput('rate', prec=2)
    note = models.String('note', max_length=40)
    cmd = models.Integer('cmd')


class App:
    def __init__(self):
        self.cmds = []

    def do_cmd(self, pv, value, ioc):
        self.cmds.append(value)


@pytest.fixture
def meter(run_model, ca_port):
    app = App()
    return run_model(Meter, callbacks=app, ca_port=ca_port), app


def publish(ioc, level, rate, note):
    """What a worker thread of an app does: waited and unwaited puts, reads of what it wrote."""
    return {
        'wait': ioc.level.put(level, wait=True, timeout=5),
        'level': ioc.level.get(),
        'nowait': ioc.rate.put(rate),
        'note': ioc.note.put(note, wait=True, timeout=5),
        'cmd': ioc.cmd.get(),
        'thread': threading.current_thread().name,
    }


def check_published(ioc, result, level, rate, note):
    assert result['thread'] != threading.main_thread().name
    assert result['wait'] is True and result['note'] is True and result['nowait'] is True
    assert result['level'] == level and result['cmd'] == 0
    assert float(caget(f'{ioc.device_name}:level')) == level
    wait_for(lambda: caget(f'{ioc.device_name}:rate') == str(rate), what='the unwaited put from the thread')
    assert caget(f'{ioc.device_name}:note', None, '-S') == note


def test_a_threading_thread_gets_and_puts(meter):
    """A plain threading.Thread (no reactor running): every kind of put reaches the IOC."""
    ioc, _ = meter
    out = {}
    worker = threading.Thread(target=lambda: out.update(publish(ioc, 2.5, 7.25, 'from a thread')), name='worker')
    worker.start()
    worker.join(30)
    check_published(ioc, out, 2.5, 7.25, 'from a thread')


@pytest_twisted.inlineCallbacks
def test_defer_to_thread_gets_and_puts(meter):
    """Twisted's deferToThread (the reactor's thread pool) puts and reads like the reactor thread."""
    ioc, _ = meter
    result = yield threads.deferToThread(publish, ioc, 3.5, 1.25, 'from the pool')
    check_published(ioc, result, 3.5, 1.25, 'from the pool')


@pytest_twisted.inlineCallbacks
def test_call_in_thread_gets_and_puts(meter):
    """reactor.callInThread: the same, with the result handed back with callFromThread."""
    ioc, _ = meter
    d = defer.Deferred()
    reactor.callInThread(lambda: reactor.callFromThread(d.callback, publish(ioc, 4.5, 2.75, 'callInThread')))
    result = yield d
    check_published(ioc, result, 4.5, 2.75, 'callInThread')


@pytest_twisted.inlineCallbacks
def test_put_deferred_from_a_worker_thread_fires_on_the_reactor(meter):
    """put_deferred called in a worker thread: its Deferred fires on the reactor thread, after the
    IOC processed the put, and a get() in the callback returns the new value."""
    ioc, _ = meter
    fired = defer.Deferred()

    def worker():
        d = ioc.level.put_deferred(9.25)
        d.addCallback(lambda pv: fired.callback((threadable.isInIOThread(), pv.get(), pv)))

    reactor.callInThread(worker)
    in_reactor, value, pv = yield fired
    assert in_reactor and value == 9.25 and pv is ioc.level
    assert float(caget(f'{ioc.device_name}:level')) == 9.25


@pytest_twisted.inlineCallbacks
def test_many_threads_put_at_once(meter):
    """Eight threads putting at the same time: every put completes, and the callback ends on the
    value the IOC holds (CA may merge monitor events of fast writes, never lose the last one)."""
    ioc, app = meter
    results = yield defer.gatherResults([
        threads.deferToThread(lambda n=n: [ioc.cmd.put(n * 100 + i, wait=True, timeout=5) for i in range(20)])
        for n in range(1, 9)])
    assert results == [[True] * 20] * 8
    final = int(caget(f'{ioc.device_name}:cmd'))
    assert final in {n * 100 + 19 for n in range(1, 9)}
    deadline = reactor.seconds() + 10
    while (not app.cmds or app.cmds[-1] != final) and reactor.seconds() < deadline:
        yield threads.deferToThread(lambda: None)
    assert app.cmds[-1] == final and ioc.cmd.get() == final


@pytest_twisted.inlineCallbacks
def test_worker_put_is_sent_while_the_reactor_turn_goes_on(meter):
    """A worker's put without wait is sent at once, even while the reactor thread, with a flush of
    its own puts scheduled for the end of its turn, is busy (a slow do_<field>): that pending flush
    used to make the worker's put wait for the end of the reactor's turn, however long."""
    ioc, _ = meter
    yield threads.deferToThread(lambda: None)  # the pool is up
    seen = {}

    def worker():
        ioc.rate.put(4.5)
        seen['rate'] = wait_for(lambda: caget(f'{ioc.device_name}:rate') == '4.5', timeout=3,
                                what="the worker's put while the reactor thread is busy")

    assert threadable.isInIOThread()
    ioc.level.put(1.5)  # the reactor thread's put: its flush is scheduled for the end of this turn
    thread = threading.Thread(target=worker, name='publisher')
    thread.start()
    thread.join(10)     # the reactor turn goes on (blocked) while the worker publishes
    assert 'rate' in seen, "the worker's put was not sent while the reactor thread was busy"
    yield threads.deferToThread(lambda: None)
    wait_for(lambda: caget(f'{ioc.device_name}:level') == '1.5', what="the reactor thread's put")
