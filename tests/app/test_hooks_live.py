"""on_start, on_stop, @every and scan_<field> on a live softIoc, read and driven with the C CA tools."""
import logging

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from devioc import every, models
from devioc.testing import caget, caput


@defer.inlineCallbacks
def wait_on_reactor(predicate, timeout=10.0, what='condition'):
    """Poll ``predicate`` while the reactor runs (and delivers callbacks); AssertionError on timeout."""
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        yield task.deferLater(reactor, 0.05, lambda: None)
    raise AssertionError(f'timed out after {timeout} s waiting for {what}')


def pause(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


class Station(models.Model):
    mode = models.Enum('mode', choices=['OFF', 'ON'], default=1)
    level = models.Float('level', SCAN='1 second', prec=1)
    chained = models.Calc('chained', calc='A+1', inpa='$(device):chained NPP')
    relay = models.Float('relay', SCAN='10 second', FLNK='$(device):chained')

    class Meta:
        access_level = 1   # clients edit configuration fields here (ASL1: SCAN)


class StationApp:
    def __init__(self):
        self.events, self.scans, self.value = [], 0, 0.0

    def do_mode(self, pv, value, ioc):
        self.events.append(('do_mode', int(value)))

    async def on_start(self, ioc):
        self.events.append(('on_start', ioc.mode.get()))
        yield_point = task.deferLater(reactor, 0.1, lambda: None)
        await yield_point                           # a coroutine: the periodic calls wait for it
        self.events.append(('on_start done', None))

    def on_stop(self, ioc):
        self.events.append(('on_stop', ioc.level.get()))

    @every(0.2)
    def tick(self, ioc):
        self.events.append(('tick', None))
        if sum(1 for e in self.events if e[0] == 'tick') == 2:
            raise RuntimeError('second tick fails')

    def scan_level(self, pv, ioc):
        self.scans += 1
        return float(self.scans)

    def scan_relay(self, pv, ioc):
        return self.value


@pytest.fixture
def station(run_model, ca_port):
    app = StationApp()
    return run_model(Station, callbacks=app, ca_port=ca_port), app


@pytest_twisted.inlineCallbacks
def test_hooks_run_in_order_and_every_keeps_going_after_an_exception(station, caplog):
    """do_<field>'s initial call, then on_start (awaited), then the ticks (a failing one logged with its
    name and the loop going on); shutdown() calls on_stop once, and no tick comes after it."""
    ioc, app = station
    with caplog.at_level(logging.ERROR, logger='devioc.app'):
        yield wait_on_reactor(lambda: sum(1 for e in app.events if e[0] == 'tick') >= 4, what='4 ticks')
    names = [e[0] for e in app.events]
    assert names[:3] == ['do_mode', 'on_start', 'on_start done'], app.events
    assert app.events[1] == ('on_start', 1)         # the records hold their values when on_start runs
    assert set(names[3:]) == {'tick'}
    failures = [r.getMessage() for r in caplog.records if 'tick' in r.getMessage()]
    assert failures == ['StationApp.tick raised RuntimeError: second tick fails; it runs again in 0.2 s']
    ioc.shutdown()
    stopped = len(app.events)
    assert app.events[-1][0] == 'on_stop'
    yield pause(0.5)
    assert len(app.events) == stopped                # no tick after the stop
    ioc.shutdown()
    assert [e[0] for e in app.events].count('on_stop') == 1


@pytest_twisted.inlineCallbacks
def test_scan_value_is_published_at_once_and_a_caput_to_scan_changes_the_rate(station, ca_env, device):
    """scan_level's value is what a C caget reads; SCAN=Passive (C caput) stops the calls, and the app's
    own publication causes no call of its own; '.1 second' makes them ten times as frequent."""
    ioc, app = station
    yield wait_on_reactor(lambda: app.scans >= 3, what='3 scans at 1 s')
    assert float(caget(f'{device}:level', ca_env)) in (app.scans, app.scans - 1)
    start = app.scans
    yield pause(3.0)
    assert app.scans - start <= 5, 'the app\'s own publication counted as a scan (each call caused the next)'
    caput(f'{device}:level.SCAN', 'Passive', ca_env)
    yield pause(0.3)
    seen = app.scans
    yield pause(2.5)
    assert app.scans == seen, 'scan_level was called although the record is no longer scanned'
    assert float(caget(f'{device}:level', ca_env)) == seen
    caput(f'{device}:level.SCAN', '.1 second', ca_env)
    yield wait_on_reactor(lambda: app.scans >= seen + 15, timeout=6.0,
                          what='15 scans at .1 s (at 1 s they would take 15 s)')


@pytest_twisted.inlineCallbacks
def test_published_value_is_seen_before_the_next_scan_and_the_users_flnk_still_runs(station, ca_env, device):
    """relay scans every 10 s: the value scan_relay returns at start is served at once (the record is
    processed, not left for the next scan), and its declared FLNK (chained, a counter) runs after each
    processing."""
    ioc, app = station
    app.value = 12.5
    yield wait_on_reactor(lambda: caget(f'{device}:relay', ca_env) == '12.5', timeout=5.0,
                          what='relay to serve 12.5 before its first 10 s scan')
    assert float(caget(f'{device}:chained', ca_env)) >= 2   # PINI and the app's publication


@pytest_twisted.inlineCallbacks
def test_hooks_need_no_runner_for_a_bare_model(run_model, ca_port):
    """A model without callbacks object is its own: its on_start, @every and scan_ run too."""
    class Clock(models.Model):
        seconds = models.Integer('seconds', SCAN='.5 second')

        def __init__(self, *args, **kwargs):
            self.started, self.ticks, self.n = False, 0, 0
            super().__init__(*args, **kwargs)

        def on_start(self, ioc):
            self.started = True

        @every(0.1)
        def count(self):
            self.ticks += 1

        def scan_seconds(self, pv, ioc):
            self.n += 1
            return self.n

    ioc = run_model(Clock, ca_port=ca_port)
    yield wait_on_reactor(lambda: ioc.started and ioc.ticks >= 3 and ioc.n >= 3, what='the hooks of a bare model')
    yield wait_on_reactor(lambda: ioc.seconds.get() >= 2, what='seconds to be published')
