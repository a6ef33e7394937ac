"""Unit tests of the hand-over of monitor events to the reactor (a fake reactor; the live path is in test_live)."""
from devioc.channels import _Dispatcher


class FakeReactor:
    def __init__(self):
        self.woken = []

    def callFromThread(self, function, *args):
        self.woken.append(function)


class FakePV:
    """Records dispatched values; while dispatching, may post more events as a flood of writes would."""

    def __init__(self, dispatcher, reactor, more=0):
        self.dispatcher, self.reactor, self.more, self.got = dispatcher, reactor, more, []

    def _dispatch(self, value):
        self.got.append(value)
        if self.more:
            self.more -= 1
            self.dispatcher.post(self.reactor, self, value + 100)


def test_a_burst_wakes_the_reactor_once_and_keeps_order():
    dispatcher, reactor = _Dispatcher(), FakeReactor()
    a, b = FakePV(dispatcher, reactor), FakePV(dispatcher, reactor)
    for pv, value in [(a, 1), (b, 2), (a, 3)]:
        dispatcher.post(reactor, pv, value)
    assert reactor.woken == [dispatcher.drain]
    reactor.woken.pop()()
    assert (a.got, b.got) == ([1, 3], [2])
    assert not dispatcher.events and not reactor.woken


def test_events_posted_while_draining_go_to_the_next_drain():
    """A drain runs only what was queued when it started, so a flood cannot keep the reactor from its other work."""
    dispatcher, reactor = _Dispatcher(), FakeReactor()
    pv = FakePV(dispatcher, reactor, more=2)
    dispatcher.post(reactor, pv, 1)
    reactor.woken.pop()()
    assert pv.got == [1] and list(dispatcher.events) == [(pv, 101)]
    assert reactor.woken == [dispatcher.drain]  # and the next drain is already scheduled
    reactor.woken.pop()()
    reactor.woken.pop()()
    assert pv.got == [1, 101, 201] and not reactor.woken
