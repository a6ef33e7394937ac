"""A flood of client writes (10,000 puts as fast as a pyepics client sends them, no wait): write_<field>
sees the writes in order, never one twice, always the last one; CA may coalesce events under load,
and the test prints how many of the 10,000 reached the callback (a measure, not a speed assertion)."""
import subprocess
import sys
import textwrap

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from devioc import models

SENT = 10_000

CLIENT = textwrap.dedent('''
    import sys
    import epics
    pv = epics.PV(sys.argv[1])
    if not pv.wait_for_connection(10):
        sys.exit('no connection to ' + sys.argv[1])
    if sys.argv[3] == 'raw':       # libca's put, one flush at the end: as fast as the client can queue
        import ctypes
        value = ctypes.c_int32()
        for i in range(1, int(sys.argv[2]) + 1):
            value.value = i
            epics.ca.libca.ca_array_put(epics.dbr.LONG, 1, pv.chid, ctypes.byref(value))
    else:                          # pyepics' put (it polls libca on every call, ~10k puts/s)
        for i in range(1, int(sys.argv[2]) + 1):
            epics.ca.put(pv.chid, i, wait=False)
    epics.ca.flush_io()
    pv.put(int(sys.argv[2]), wait=True)    # once more, with completion: the IOC has them all
''')


class Counter(models.Model):
    n = models.Integer('n')


class App:
    def __init__(self):
        self.writes = []

    def write_n(self, pv, value, ioc):
        self.writes.append(int(value))


@pytest.mark.slow
@pytest.mark.parametrize('sender', ['pyepics', 'raw'])
@pytest_twisted.inlineCallbacks
def test_flood_of_client_writes(run_model, ca_port, ca_env, sender):
    """10,001 writes (1..10,000, then 10,000 again with completion): reported in order, none twice
    (the repeated last value may be two calls, or one when CA coalesced them), the last always; the
    count reported is printed."""
    app = App()
    ioc = run_model(Counter, callbacks=app, ca_port=ca_port)
    client = subprocess.Popen([sys.executable, '-c', CLIENT, f'{ioc.device_name}:n', str(SENT), sender], env=ca_env)
    try:
        for _ in range(1200):
            if client.poll() is not None:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        assert client.returncode == 0, 'the flooding client failed'
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    for _ in range(200):
        if app.writes[-1:] == [SENT]:
            break
        yield task.deferLater(reactor, 0.05, lambda: None)
    yield task.deferLater(reactor, 0.3, lambda: None)   # the repeated last write, if not coalesced
    writes = app.writes
    print(f'\nwrite flood ({sender}): {SENT + 1} client writes sent, {len(writes)} reported to write_n')
    assert writes[-1] == SENT                                # the last write always arrives
    head = writes[:-2] if writes[-2:] == [SENT, SENT] else writes
    assert all(a < b for a, b in zip(head, head[1:]))        # in order, never one twice
    assert 1 <= len(writes) <= SENT + 1
    assert ioc.n.get() == SENT


@pytest.mark.slow
@pytest_twisted.inlineCallbacks
def test_app_puts_racing_client_writes_are_never_reported(run_model, ca_port, ca_env):
    """2,000 app puts (negative values, from a worker thread) interleaved with 2,000 client writes
    (positive): write_n sees only positive values, in order, the last always (repeated 5 times)."""
    import threading

    app = App()
    ioc = run_model(Counter, callbacks=app, ca_port=ca_port)
    sent = 2000
    for round_ in range(5):
        del app.writes[:]
        client = subprocess.Popen([sys.executable, '-c', CLIENT, f'{ioc.device_name}:n', str(sent), 'pyepics'],
                                  env=ca_env)
        worker = threading.Thread(target=lambda: [ioc.n.put(-i) for i in range(1, sent + 1)])
        worker.start()
        try:
            for _ in range(1200):
                if client.poll() is not None and not worker.is_alive():
                    break
                yield task.deferLater(reactor, 0.05, lambda: None)
            assert client.returncode == 0, 'the client failed'
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
            worker.join(30)
        for _ in range(200):
            if app.writes[-1:] == [sent]:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        yield task.deferLater(reactor, 0.3, lambda: None)
        writes = app.writes
        assert writes and min(writes) > 0, f'round {round_}: an app put was reported'
        assert writes[-1] == sent
        head = writes[:-2] if writes[-2:] == [sent, sent] else writes
        assert all(a < b for a, b in zip(head, head[1:]))
