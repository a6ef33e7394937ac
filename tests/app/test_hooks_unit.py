"""devioc.app without an IOC: a fake reactor (Twisted's Clock) drives on_start, @every, scan_ and on_stop."""
import logging

import pytest
from twisted.internet import defer, task

from devioc import app as hooks
from devioc import every, models


class FakeReactor(task.Clock):
    """A Clock with the reactor calls Hooks makes: callFromThread (queued) and system event triggers."""

    def __init__(self):
        super().__init__()
        self.queued, self.triggers, self.running = [], {}, True

    def callFromThread(self, func, *args):
        self.queued.append((func, args))

    def run_queued(self):
        while self.queued:
            func, args = self.queued.pop(0)
            func(*args)

    def addSystemEventTrigger(self, phase, event, func, *args):
        key = object()
        self.triggers[key] = (phase, event, func)
        return key

    def removeSystemEventTrigger(self, key):
        del self.triggers[key]


class Tank(models.Model):
    level = models.Float('level', SCAN='1 second')
    temp = models.Float('temp', FLNK='$(device):other')
    other = models.Integer('other')
    total = models.Calc('total', calc='A+1')


class FakePV:
    _shell = False   # written over CA (devioc.access.through_shell), as a PV of a writable field at level 1

    def __init__(self, name):
        self.name, self.puts = name, []

    def put(self, value, wait=False):
        self.puts.append(value)


class FakeModel:
    def __init__(self, *names):
        self._pvs = {name: FakePV(f'DEV:{name}') for name in names}


def make(app, *fields, scanned=None):
    reactor = FakeReactor()
    model = FakeModel(*fields)
    h = hooks.Hooks(model, app, scanned or {}, reactor=reactor)
    h.proc = {name: FakePV(f'DEV:{name}.PROC') for name in (scanned or {})}
    return h, model, reactor


class Recorder:
    def __init__(self):
        self.calls = []

    def on_start(self, ioc):
        self.calls.append('on_start')

    def on_stop(self, ioc):
        self.calls.append('on_stop')

    @every(2)
    def tick(self, ioc):
        self.calls.append('tick')


def test_on_start_then_every_then_on_stop_in_that_order():
    """on_start runs on the reactor after the model is up, then the periodic method at once and every
    2 s; stop() ends the loop before on_stop runs, and on_stop runs once however often stop() is called."""
    app = Recorder()
    h, model, reactor = make(app)
    h.start()
    assert app.calls == []                       # nothing before the reactor runs the queued start
    reactor.run_queued()
    assert app.calls == ['on_start', 'tick']
    reactor.advance(2)
    reactor.advance(2)
    assert app.calls == ['on_start', 'tick', 'tick', 'tick']
    assert [t[:2] for t in reactor.triggers.values()] == [('before', 'shutdown')]
    h.stop()
    h.stop()
    reactor.advance(10)
    assert app.calls == ['on_start', 'tick', 'tick', 'tick', 'on_stop']
    assert reactor.triggers == {}                # the shutdown trigger is removed with the hooks


def test_every_keeps_going_after_an_exception_and_logs_each_failure_with_its_name(caplog):
    """A failing @every method is logged once per failure, naming Class.method, and called again."""
    class Flaky:
        def __init__(self):
            self.n = 0

        @every(1)
        def poll(self):
            self.n += 1
            if self.n % 2:
                raise ZeroDivisionError(f'failure {self.n}')

    app = Flaky()
    h, _, reactor = make(app)
    with caplog.at_level(logging.ERROR, logger='devioc.app'):
        h.start()
        reactor.run_queued()
        for _ in range(4):
            reactor.advance(1)
    assert app.n == 5
    failures = [r for r in caplog.records if r.name == 'devioc.app']
    assert [r.getMessage() for r in failures] == [
        f'test_every_keeps_going_after_an_exception_and_logs_each_failure_with_its_name.<locals>.Flaky.poll '
        f'raised ZeroDivisionError: failure {n}; it runs again in 1 s' for n in (1, 3, 5)]
    assert all(r.exc_info for r in failures)


def test_every_waits_for_a_deferred_and_never_overlaps():
    """A call that returns a Deferred delays the next one until it fires; missed periods are skipped."""
    pending = []

    class Slow:
        @every(1)
        def work(self):
            d = defer.Deferred()
            pending.append(d)
            return d

    h, _, reactor = make(Slow())
    h.start()
    reactor.run_queued()
    reactor.advance(1)
    reactor.advance(1)
    reactor.advance(1)
    assert len(pending) == 1                     # still running: no second call
    pending[0].callback(None)
    reactor.advance(1)
    assert len(pending) == 2


def test_coroutines_are_awaited():
    """An async on_start is awaited before the periodic calls start; an async @every method is awaited."""
    gate = defer.Deferred()
    calls = []

    class Async:
        async def on_start(self, ioc):
            calls.append('start begins')
            await gate
            calls.append('start ends')

        @every(1)
        async def tick(self):
            calls.append('tick')

    h, _, reactor = make(Async())
    h.start()
    reactor.run_queued()
    reactor.advance(3)
    assert calls == ['start begins']
    gate.callback(None)
    assert calls == ['start begins', 'start ends', 'tick']


def test_a_failing_on_start_is_logged_and_the_periodic_calls_start_anyway(caplog):
    class Broken:
        calls = 0

        def on_start(self, ioc):
            raise RuntimeError('no hardware')

        @every(1)
        def tick(self):
            Broken.calls += 1

    h, _, reactor = make(Broken())
    with caplog.at_level(logging.ERROR, logger='devioc.app'):
        h.start()
        reactor.run_queued()
    assert Broken.calls == 1
    assert 'Broken.on_start raised RuntimeError: no hardware; the periodic and scan calls start anyway' in caplog.text


def test_on_stop_deferred_is_returned_and_its_failure_logged(caplog):
    """stop() returns on_stop's Deferred (the runner waits on it); a failure is logged, not raised."""
    later = defer.Deferred()

    class Stopper:
        def on_stop(self, ioc):
            return later

    h, _, reactor = make(Stopper())
    h.start()
    reactor.run_queued()
    d = h.stop()
    assert h.stopping and not d.called
    with caplog.at_level(logging.ERROR, logger='devioc.app'):
        later.errback(OSError('disk full'))
    assert d.called and not h.stopping
    assert 'Stopper.on_stop raised OSError: disk full; the IOC stops anyway' in caplog.text


def test_on_stop_that_never_finishes_is_given_up_after_the_timeout(caplog):
    class Hangs:
        def on_stop(self, ioc):
            return defer.Deferred()

    h, _, reactor = make(Hangs())
    h.start()
    reactor.run_queued()
    d = h.stop()
    reactor.advance(hooks.STOP_TIMEOUT - 0.1)
    assert not d.called
    with caplog.at_level(logging.ERROR, logger='devioc.app'):
        reactor.advance(0.2)
    assert d.called
    assert 'Hangs.on_stop raised TimeoutError' in caplog.text or 'Hangs.on_stop raised CancelledError' in caplog.text


def test_on_stop_is_not_called_for_a_model_that_never_came_up():
    app = Recorder()
    h, _, _ = make(app)
    h.stop()
    assert app.calls == []


def test_scan_publishes_the_value_then_processes_the_record():
    """Each counter event after the first (its value at connection) calls scan_<field>(pv, ioc); the
    value goes to VAL and then 1 to PROC; None publishes nothing; a still-running call skips a scan."""
    pending = defer.Deferred()
    results = [1.5, None, pending, 4.0]

    class Scanner:
        def __init__(self):
            self.calls = []

        def scan_level(self, pv, ioc):
            self.calls.append(pv.name)
            return results.pop(0)

    app = Scanner()
    h, model, reactor = make(app, 'level', scanned={'level': app.scan_level})
    h.start()
    reactor.run_queued()                         # the call at start
    level, proc = model._pvs['level'], h.proc['level']
    assert (level.puts, proc.puts) == ([1.5], [1])
    h._scanned('level')                          # first counter event: its value at connection
    assert len(app.calls) == 1
    h._scanned('level')                          # None: nothing published
    assert (level.puts, proc.puts) == ([1.5], [1])
    h._scanned('level')                          # a Deferred: published when it fires
    h._scanned('level')                          # skipped: the last call is still running
    assert len(app.calls) == 3
    pending.callback(2.5)
    assert (level.puts, proc.puts) == ([1.5, 2.5], [1, 1])
    h.stop()
    h._scanned('level')
    assert len(app.calls) == 3                   # no scan calls once stopped


def test_scan_failure_is_logged_with_the_name_and_the_next_scan_calls_again(caplog):
    class Scanner:
        n = 0

        def scan_level(self, pv, ioc):
            Scanner.n += 1
            if Scanner.n == 1:
                raise ValueError('sensor off')
            return 7.0

    app = Scanner()
    h, model, reactor = make(app, 'level', scanned={'level': app.scan_level})
    with caplog.at_level(logging.ERROR, logger='devioc.app'):
        h.start()
        reactor.run_queued()
    assert 'Scanner.scan_level raised ValueError: sensor off; the next scan calls it again' in caplog.text
    h._scanned('level')
    h._scanned('level')
    assert model._pvs['level'].puts == [7.0]


class Good:
    def scan_level(self, pv, ioc):
        return 1.0


def test_scan_methods_match_fields():
    assert list(hooks.scan_methods(Tank, Good())) == ['level']


def test_a_scan_method_that_matches_no_field_is_a_warning_not_an_error(caplog):
    """An app written before scan_ existed may have a scan_<something> method: it still starts."""
    class Old:
        def scan_levl(self, pv, ioc):
            pass

    with caplog.at_level(logging.WARNING, logger='devioc.app'):
        assert hooks.scan_methods(Tank, Old()) == {}
    assert 'Old.scan_levl' in caplog.text
    assert 'matches no field of Tank, so devioc does not call it: did you mean scan_level?' in caplog.text


def test_hooks_without_the_ioc_argument_are_called_without_it():
    calls = []

    class Plain:
        def on_start(self):
            calls.append('start')

        def on_stop(self):
            raise RuntimeError('x')

    h, _, reactor = make(Plain())
    h.start()
    reactor.run_queued()
    assert calls == ['start']
    assert hooks._name(h.on_stop).endswith('Plain.on_stop')


@pytest.mark.parametrize('source, message', [
    ('def scan_level(self, pv): pass', 'cannot be called with (pv, ioc): define it as def scan_level(self, pv, ioc):'),
    ('def scan_total(self, pv, ioc): pass', 'Tank.total is a calc record, whose processing computes its value'),
])
def test_scan_methods_that_cannot_work_are_refused(source, message):
    scope = {}
    exec(source, scope)
    bad = type('Bad', (), {k: v for k, v in scope.items() if k.startswith('scan_')})()
    with pytest.raises(hooks.HookError) as err:
        hooks.scan_methods(Tank, bad)
    assert message in str(err.value)


def test_scan_records_link_the_hidden_counter_and_chain_the_users_flnk():
    """The scanned record forwards to <pv>:_scan, a PUTF-guarded counter that forwards to the record's own FLNK."""
    records = {'level': ('D:level', {'SCAN': '1 second'}), 'temp': ('D:temp', {'FLNK': 'D:other'})}
    wired, counters = hooks.scan_records(records, {'level': None, 'temp': None})
    assert wired['level'] == ('D:level', {'SCAN': '1 second', 'FLNK': 'D:level:_scan'})
    assert wired['temp'] == ('D:temp', {'FLNK': 'D:temp:_scan'})
    assert counters == [
        ('calc', 'D:level:_scan', {'INPA': 'D:level:_scan NPP', 'INPB': 'D:level.PUTF NPP', 'CALC': 'B?A:A+1'}),
        ('calc', 'D:temp:_scan', {'INPA': 'D:temp:_scan NPP', 'INPB': 'D:temp.PUTF NPP', 'CALC': 'B?A:A+1',
                                  'FLNK': 'D:other'}),
    ]
    assert records['level'][1] == {'SCAN': '1 second'}     # the model's own expansion is not changed


def test_a_counter_name_too_long_for_epics_is_refused():
    name = 'D' * 50 + ':level'                   # 56 bytes: its counter would be 62
    with pytest.raises(hooks.HookError, match='EPICS allows 60: use a shorter device or field name'):
        hooks.scan_records({'level': (name, {'SCAN': '1 second'})}, {'level': None})


@pytest.mark.parametrize('period', [0, -1, 'fast', None, True])
def test_every_needs_a_positive_period(period):
    with pytest.raises(ValueError, match='give the period as a positive number of seconds'):
        every(period)


def test_every_and_hooks_with_a_wrong_signature_are_refused():
    class Wrong:
        @every(1)
        def tick(self, a, b):
            pass

    with pytest.raises(hooks.HookError, match=r'an @every method is called as tick\(ioc\) or tick\(\)'):
        make(Wrong())

    class WrongHook:
        def on_start(self, a, b):
            pass

    with pytest.raises(hooks.HookError, match=r'cannot be called with \(ioc\): define it as def on_start\(self, ioc\):'):
        make(WrongHook())


def test_every_leaves_the_method_callable():
    app = Recorder()
    app.tick(None)
    assert app.calls == ['tick'] and Recorder.tick._devioc_every == 2.0
