"""Remote procedure calls end to end: a live softIoc, the app's caproto server, and real clients (the
Python client, the C caput -c/caget, pyepics and the devioc CLI in other processes)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from devioc import models
from devioc.client import DeferredClient
from devioc.rpc import RPCError
from devioc.testing import caget, caput, epics_tool, until


class Box(models.Model):
    level = models.Float('level')


class App:
    def __init__(self):
        self.seen = []          # (tag, n) of every echo call, in the order the app ran them
        self.waiting = []
        self.running = 0
        self.overlap = False
        self.in_thread = 0
        self.thread_overlap = False

    @models.function
    def add(self, a: float, b: float = 2.0) -> float:
        """Adds two numbers."""
        return a + b

    @models.function(timeout=30)
    async def echo(self, tag: str, n: int = 0, delay: float = 0.0) -> dict:
        self.running += 1
        self.overlap = self.overlap or self.running > 1
        self.seen.append((tag, n))
        try:
            if delay:
                await task.deferLater(reactor, delay, lambda: None)
            return {'tag': tag, 'n': n}
        finally:
            self.running -= 1

    @models.function
    def scale(self, data: np.ndarray, factor: float = 2.0) -> np.ndarray:
        return data * factor

    @models.function
    def fail(self, what: str = 'boom') -> None:
        raise ValueError(what)

    @models.function(timeout=1)
    def hang(self) -> None:
        return defer.Deferred()   # never fires: the timeout cancels it

    @models.function(timeout=1, threaded=True)
    def snooze(self, seconds: float) -> int:
        """A blocking method in the thread pool; counts how many of its calls run at once."""
        import time

        self.in_thread += 1
        self.thread_overlap = self.thread_overlap or self.in_thread > 1
        try:
            time.sleep(seconds)
            return self.in_thread
        finally:
            self.in_thread -= 1

    @models.function(timeout=30)
    def wait(self) -> str:
        d = defer.Deferred()
        self.waiting.append(d)
        return d


@pytest.fixture
def served(run_model, ca_port):
    app = App()
    ioc = run_model(Box, callbacks=app, ca_port=ca_port)
    return ioc, app


def unescape(text):
    """The text the C caget -S printed, with its escapes (\\" for a quote) undone."""
    return text.encode('latin-1', 'backslashreplace').decode('unicode_escape').encode('latin-1').decode('utf-8')


def run(command, env):
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest_twisted.inlineCallbacks
def finished(procs, timeout=60.0):
    """Wait (reactor running) for every process; returns their (returncode, stdout, stderr)."""
    try:
        yield until(lambda: all(p.poll() is not None for p in procs), 'the clients to finish', timeout)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [(p.returncode, *p.communicate()) for p in procs]


@pytest_twisted.inlineCallbacks
def put_to_app(pv, value, env, *args):
    """caput -c in a child process while the reactor runs (the app must answer the put)."""
    [(code, out, err)] = yield finished([run([epics_tool('caput'), '-c', '-w', '30', *args, pv, str(value)], env)])
    assert code == 0, err


@pytest_twisted.inlineCallbacks
def test_python_client_gets_results_arrays_and_the_remote_exception(served):
    """The Deferred client: return values, numpy arrays both ways, the remote ValueError re-raised
    with its type name and message; the function works again after it."""
    ioc, app = served
    client = yield defer.maybeDeferred(DeferredClient, ioc.device_name)
    assert client.functions['add']['signature'] == 'add(a: float, b: float = 2.0) -> float'
    assert (yield client.add(1, b=5)) == 6.0
    assert (yield client.add(2.5)) == 4.5
    result = yield client.scale(np.array([1.0, 2.5, -3.0]), factor=-2)
    assert isinstance(result, np.ndarray)
    np.testing.assert_array_equal(result, [-2.0, -5.0, 6.0])
    assert (yield client.echo('é ü', n=7)) == {'tag': 'é ü', 'n': 7}
    with pytest.raises(RPCError) as caught:
        yield client.fail('no sample on L3')
    assert caught.value.type_name == 'ValueError' and caught.value.message == 'no sample on L3'
    with pytest.raises(RPCError, match=r"TypeError: argument 'a' must be float"):
        yield client.add('x')
    with pytest.raises(RPCError, match=r"TypeError: add\(a: float, b: float = 2.0\) -> float: .*unexpected"):
        yield client.add(1, c=2)
    assert (yield client.add(1)) == 3.0
    assert caget(f'{ioc.device_name}:add:status') == 'done'


@pytest_twisted.inlineCallbacks
def test_caput_c_on_the_trigger_returns_when_the_call_has_finished(served, ca_env):
    """Per-argument PVs written by the C caput, then caput -c on :call: still running during the
    1.5 s call, exits 0 after it; status done, the return value and the reply hold the result."""
    ioc, app = served
    dev = ioc.device_name
    caput(f'{dev}:echo:tag', 'from C', ca_env, '-S')
    caput(f'{dev}:echo:n', 5, ca_env)
    caput(f'{dev}:echo:delay', 1.5, ca_env)
    trigger = run([epics_tool('caput'), '-c', '-w', '30', f'{dev}:echo:call', '1'], ca_env)
    yield until(lambda: app.seen, what='echo to be called')
    assert app.seen == [('from C', 5)]
    yield task.deferLater(reactor, 0.5, lambda: None)
    assert trigger.poll() is None, 'caput -c returned while the call was running'
    assert caget(f'{dev}:echo:status', ca_env) == 'busy'
    [(code, out, err)] = yield finished([trigger])
    assert code == 0, err
    assert caget(f'{dev}:echo:status', ca_env) == 'done'
    assert json.loads(unescape(caget(f'{dev}:echo:return', ca_env, '-S'))) == {'tag': 'from C', 'n': 5}
    assert json.loads(unescape(caget(f'{dev}:echo:reply', ca_env, '-S')))[0]['result'] == {'tag': 'from C', 'n': 5}


@pytest_twisted.inlineCallbacks
def test_an_error_through_the_trigger_shows_in_status_and_message(served, ca_env):
    ioc, app = served
    dev = ioc.device_name
    caput(f'{dev}:fail:what', 'gripper open', ca_env, '-S')
    yield put_to_app(f'{dev}:fail:call', 1, ca_env)
    assert caget(f'{dev}:fail:status', ca_env) == 'error'
    assert caget(f'{dev}:fail:message', ca_env, '-S') == 'ValueError: gripper open'


@pytest_twisted.inlineCallbacks
def test_timeout_and_cancel_end_a_call_and_never_wedge_the_function(served, ca_env):
    """hang() is cancelled after its 1 s timeout (TimeoutError); wait() is cancelled by a client's
    write of '*' to :cancel (CancelledError); both functions take the next call."""
    ioc, app = served
    client = yield defer.maybeDeferred(DeferredClient, ioc.device_name)
    with pytest.raises(RPCError, match='TimeoutError: the call did not finish within 1 s'):
        yield client.hang()
    pending = client.wait()
    yield until(lambda: app.waiting, what='wait() to be called')
    yield put_to_app(f'{ioc.device_name}:wait:cancel', '*', ca_env)
    with pytest.raises(RPCError, match='CancelledError'):
        yield pending
    assert caget(f'{ioc.device_name}:wait:status', ca_env) == 'error'
    later = client.wait()
    yield until(lambda: len(app.waiting) == 2, what='the next wait() call')
    app.waiting[1].callback('released')
    assert (yield later) == 'released'
    with pytest.raises(RPCError, match='TimeoutError: the call did not finish within 0.5 s'):
        yield client.call('hang', _timeout=0.5)
    with pytest.raises(RPCError, match='TimeoutError: the call did not finish within 0.25 s'):
        yield client.hang(timeout=0.25)   # hang has no argument named timeout: it is the call's


@pytest_twisted.inlineCallbacks
def test_a_call_from_the_other_entry_point_gets_a_busy_error(served, ca_env):
    """While wait() runs from its :call trigger, a JSON call of wait gets BusyError at once."""
    ioc, app = served
    trigger = run([epics_tool('caput'), '-c', '-w', '30', f'{ioc.device_name}:wait:call', '1'], ca_env)
    yield until(lambda: app.waiting, what='wait() to be called from the trigger')
    client = yield defer.maybeDeferred(DeferredClient, ioc.device_name)
    with pytest.raises(RPCError, match='BusyError: wait is running call call-'):
        yield client.wait()
    app.waiting[0].callback('done')
    [(code, out, err)] = yield finished([trigger])
    assert code == 0, err


@pytest_twisted.inlineCallbacks
def test_a_long_call_does_not_block_the_reactor(served):
    ioc, app = served
    client = yield defer.maybeDeferred(DeferredClient, ioc.device_name)
    ticks = []
    loop = task.LoopingCall(lambda: ticks.append(1))
    loop.start(0.05)
    try:
        assert (yield client.echo('slow', delay=1.0)) == {'tag': 'slow', 'n': 0}
    finally:
        loop.stop()
    assert len(ticks) >= 5, 'the reactor did not run while the call was in progress'


PYTHON_CLIENT = '''
import sys
from devioc.client import Client
c = Client(sys.argv[1])
name, count = sys.argv[2], int(sys.argv[3])
for i in range(count):
    result = c.echo(f'{name}-{i}', n=i)
    assert result == {'tag': f'{name}-{i}', 'n': i}, (name, i, result)
print('ok', count)
'''

THREADED_CLIENT = '''
import sys, threading
from devioc.client import Client
c = Client(sys.argv[1])
count, errors = int(sys.argv[2]), []
def calls(name):
    try:
        for i in range(count):
            result = c.echo(f'{name}-{i}', n=i)
            assert result == {'tag': f'{name}-{i}', 'n': i}, (name, i, result)
    except Exception as err:
        errors.append(repr(err))
threads = [threading.Thread(target=calls, args=(f'th{k}',)) for k in range(3)]
[t.start() for t in threads]
[t.join() for t in threads]
print(f'errors {errors}' if errors else f'ok {count}')
'''

PYEPICS_CLIENT = '''
import json, sys
import epics
dev, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
request = epics.PV(f'{dev}:echo:rpc.VAL$')
reply = epics.PV(f'{dev}:echo:reply')
assert request.wait_for_connection(10) and reply.wait_for_connection(10)
for i in range(count):
    call_id = f'{name}-{i}'
    text = json.dumps({'id': call_id, 'kwargs': {'tag': call_id, 'n': i}})
    assert request.put(text, wait=True, timeout=60) == 1
    # a fresh read of the whole current value (count 0: the record's NORD); PV.get(as_string=True)
    # asks for the element count of the last monitor event, which may be shorter than the reply now
    raw = epics.ca.get(reply.chid, as_numpy=True, count=None)
    replies = json.loads(bytes(raw.astype('uint8')).split(bytes(1), 1)[0].decode())
    mine = [r for r in replies if r['id'] == call_id]
    assert mine and mine[0]['result'] == {'tag': call_id, 'n': i}, (call_id, mine)
print('ok', count)
'''

C_CLIENT = '''
import json, subprocess, sys
caput, caget, dev, name, count = sys.argv[1:6]
for i in range(int(count)):
    call_id = f'{name}-{i}'
    text = json.dumps({'id': call_id, 'kwargs': {'tag': call_id, 'n': i}})
    subprocess.run([caput, '-c', '-w', '60', '-S', f'{dev}:echo:rpc.VAL$', text], check=True, capture_output=True)
    out = subprocess.run([caget, '-w', '5', '-t', '-S', f'{dev}:echo:reply'], check=True, capture_output=True,
                         text=True).stdout
    out = out.encode('latin-1', 'backslashreplace').decode('unicode_escape')  # caget -S escapes quotes
    mine = [r for r in json.loads(out) if r['id'] == call_id]
    assert mine and mine[0]['result'] == {'tag': call_id, 'n': i}, (call_id, out[:200])
print('ok', count)
'''


@pytest.mark.parametrize('round', range(2))
@pytest_twisted.inlineCallbacks
def test_concurrent_clients_never_mix_arguments_or_results(served, ca_env, round):
    """Two Python clients, three threads sharing one Python client, a pyepics client and a C
    caput -c/caget client call echo at once (25 calls each): every caller gets its own result, the
    app saw every call once, one at a time."""
    ioc, app = served
    dev, count = ioc.device_name, 25
    procs = [run([sys.executable, '-c', PYTHON_CLIENT, dev, f'py{k}', str(count)], ca_env) for k in range(2)]
    procs.append(run([sys.executable, '-c', PYEPICS_CLIENT, dev, 'pyepics', str(count)], ca_env))
    procs.append(run([sys.executable, '-c', THREADED_CLIENT, dev, str(count)], ca_env))
    procs.append(run([sys.executable, '-c', C_CLIENT, epics_tool('caput'), epics_tool('caget'), dev, 'c',
                      str(count)], ca_env))
    results = yield finished(procs, timeout=240)
    for code, out, err in results:
        assert code == 0 and out.startswith('ok'), err[-800:]
    expected = {(f'{name}-{i}', i) for name in ('py0', 'py1', 'pyepics', 'c', 'th0', 'th1', 'th2')
                for i in range(count)}
    assert sorted(app.seen) == sorted(expected)
    assert not app.overlap


@pytest_twisted.inlineCallbacks
def test_devioc_call_lists_and_calls(served, ca_env):
    """devioc call DEVICE --list prints the signatures; devioc call DEVICE fn args prints the JSON result;
    a failing call exits 1 with TYPE: message."""
    ioc, app = served
    cli = [sys.executable, '-c', 'from devioc.cli import main; main()']
    listing, add, arr, fail = (run(cli + ['call', ioc.device_name] + args, ca_env) for args in (
        ['--list'], ['add', '1', 'b=2.5'], ['scale', 'data=[1,2]', 'factor=3'], ['fail', 'what=no puck']))
    (c1, out1, err1), (c2, out2, err2), (c3, out3, err3), (c4, out4, err4) = yield finished([listing, add, arr, fail])
    assert c1 == 0 and 'add(a: float, b: float = 2.0) -> float\n    Adds two numbers.' in out1, err1
    assert 'echo(tag: str, n: int = 0, delay: float = 0.0) -> json' in out1
    assert (c2, out2.strip()) == (0, '3.5'), err2
    assert (c3, json.loads(out3)) == (0, [3.0, 6.0]), err3
    assert c4 == 1 and 'ValueError: no puck' in err4


@pytest_twisted.inlineCallbacks
def test_shutting_down_during_a_call_stops_cleanly(run_model, ca_port, caplog):
    """The model shuts down while wait() runs; the call's later end is logged as not reported, and
    raises nothing on the reactor."""
    import logging

    app = App()
    ioc = run_model(Box, callbacks=app, ca_port=ca_port)
    client = yield defer.maybeDeferred(DeferredClient, ioc.device_name)
    failures = []
    client.call('wait', _timeout=2).addErrback(failures.append)   # its put is dropped with softIoc
    yield until(lambda: app.waiting, what='wait() to be called')
    ioc.shutdown()
    with caplog.at_level(logging.INFO, logger='devioc.rpc'):
        app.waiting[0].callback('late')
        assert 'ended after the model was shut down; not reported' in caplog.text
    # the caller learns the call ended without a reply, and is not told only to enlarge the history
    yield until(lambda: failures, 'the caller to get an error', 20)
    error = failures[0].value
    assert isinstance(error, (RPCError, TimeoutError, ConnectionError)), repr(error)
    if isinstance(error, RPCError) and error.type_name == 'ReplyLost':
        assert 'the app stopped' in error.message


ASYNC_CLIENT = '''
import asyncio, sys
from devioc.client import AsyncClient
from devioc.rpc import RPCError

async def main():
    c = AsyncClient(sys.argv[1])
    results = await asyncio.gather(c.add(1, b=2), c.echo('async', n=3), c.call('add', 10))
    try:
        await c.fail('async failure')
    except RPCError as err:
        results.append(err.type_name + ': ' + err.message)
    print(results)

asyncio.run(main())
'''


@pytest_twisted.inlineCallbacks
def test_the_asyncio_client_awaits_calls(served, ca_env):
    ioc, app = served
    [(code, out, err)] = yield finished([run([sys.executable, '-c', ASYNC_CLIENT, ioc.device_name], ca_env)])
    assert code == 0, err[-1500:]
    assert out.strip() == "[3.0, {'tag': 'async', 'n': 3}, 12.0, 'ValueError: async failure']"


CLIENTS_MADE_IN_THREADS = '''
import sys, threading
from devioc.client import Client
dev, count, errors = sys.argv[1], int(sys.argv[2]), []
start = threading.Barrier(6)
def calls(name):
    try:
        start.wait()
        c = Client(dev)   # each thread its own client, all at once, in a process with no CA context yet
        for i in range(count):
            result = c.add(i, b=1)
            assert result == i + 1, (name, i, result)
    except Exception as err:
        errors.append(repr(err))
threads = [threading.Thread(target=calls, args=(f'th{k}',)) for k in range(6)]
[t.start() for t in threads]
[t.join() for t in threads]
print(f'errors {errors}' if errors else f'ok {count}')
'''


@pytest.mark.parametrize('round', range(3))
@pytest_twisted.inlineCallbacks
def test_clients_made_at_once_in_threads_of_a_fresh_process(served, ca_env, round):
    """Six threads of a new process each make a Client at the same moment (the first CA use of the
    process): each gets its results. pyepics sets ``ca.libca`` before it has finished setting the
    library up, so a thread attaching meanwhile used a half-made libca (ctypes ArgumentError,
    'Thread is already attached to a client context', a segmentation fault)."""
    ioc, app = served
    procs = [run([sys.executable, '-c', CLIENTS_MADE_IN_THREADS, ioc.device_name, '3'], ca_env) for _ in range(2)]
    results = yield finished(procs, timeout=120)
    for code, out, err in results:
        assert code == 0 and out.startswith('ok'), (code, out, err[-1500:])


@pytest.mark.parametrize('round', range(2))
@pytest_twisted.inlineCallbacks
def test_functions_are_served_again_after_softioc_is_killed_and_restarted(run_model, ca_port, ca_env, round):
    """restart=True, kill -9 of softIoc: once it is back, a new client finds the list of functions
    (the new rpc:functions record started empty: Client() and devioc call failed for ever) and calls
    them through the Python client at once (the functions' channels are made again, not left to
    libca's search back-off), and the C caput -c on the trigger still completes."""
    import os
    import signal

    from devioc.restart import RestartPolicy

    app = App()
    ioc = run_model(Box, callbacks=app, ca_port=ca_port,
                    restart=RestartPolicy(min_delay=0.1, max_delay=0.5, max_deaths=20, window=60.0))
    old = ioc._process.pid
    os.kill(old, signal.SIGKILL)
    yield until(lambda: ioc._process.pid != old and ioc._ready and ioc._supervisor.restarts == 1,
                what='softIoc to be restarted')

    def listed():
        try:
            return caget(f'{ioc.device_name}:rpc:functions', None, '-S').strip() not in ('', '""')
        except AssertionError:   # the C caget met the old IOC's circuit going down
            return False

    yield until(listed, 'the list of functions on the new softIoc', 10)
    client = yield defer.maybeDeferred(DeferredClient, ioc.device_name)
    assert sorted(client.functions) == ['add', 'echo', 'fail', 'hang', 'scale', 'snooze', 'wait']
    result = yield client.echo('after restart', n=7)
    assert result == {'tag': 'after restart', 'n': 7}
    yield put_to_app(f'{ioc.device_name}:add:a', 4, ca_env)
    yield put_to_app(f'{ioc.device_name}:add:call', 1, ca_env)
    assert caget(f'{ioc.device_name}:add:return') == '6'


@pytest_twisted.inlineCallbacks
def test_a_timed_out_threaded_call_keeps_the_function_busy_until_its_thread_returns(served):
    """threaded=True, timeout=1: a 3 s call is answered with TimeoutError after 1 s, but its thread runs
    on (a thread cannot be stopped); calls meanwhile get BusyError instead of running beside it, and
    once it has returned the function takes calls again."""
    ioc, app = served
    client = yield defer.maybeDeferred(DeferredClient, ioc.device_name)
    with pytest.raises(RPCError) as first:
        yield client.snooze(3.0)
    assert first.value.type_name == 'TimeoutError' and 'thread runs on' in first.value.message
    with pytest.raises(RPCError) as second:
        yield client.snooze(0.01)
    assert second.value.type_name == 'BusyError' and 'still runs' in second.value.message
    assert app.in_thread == 1
    yield until(lambda: app.in_thread == 0, 'the timed-out thread to return', 10)
    result = yield client.snooze(0.01)
    assert result == 1 and not app.thread_overlap


@pytest_twisted.inlineCallbacks
def test_a_busy_call_with_the_running_call_s_id_leaves_the_running_call_alone(served, ca_env):
    """While wait() runs from its trigger (id call-1), a JSON call that reuses the id call-1 gets
    BusyError; the function still knows call-1 runs, so the next JSON call is busy too, and never
    runs beside it (the BusyError's reply used to clear the running call)."""
    ioc, app = served
    dev = ioc.device_name
    trigger = run([epics_tool('caput'), '-c', '-w', '30', f'{dev}:wait:call', '1'], ca_env)
    yield until(lambda: app.waiting, what='wait() to be called from the trigger')
    for call_id in ('call-1', 'fresh'):
        request = json.dumps({'id': call_id})
        yield put_to_app(f'{dev}:wait:rpc.VAL$', request, ca_env, '-S')
        replies = json.loads(unescape(caget(f'{dev}:wait:reply', ca_env, '-S')))
        assert replies[0]['id'] == call_id and replies[0]['error']['type'] == 'BusyError', replies[0]
    assert len(app.waiting) == 1
    app.waiting[0].callback('done')
    [(code, out, err)] = yield finished([trigger])
    assert code == 0, err



@pytest_twisted.inlineCallbacks
def test_a_queued_call_cancelled_by_id_never_runs(served, ca_env):
    """Call q1 runs; call q2 (another client) waits in softIoc's queue behind it; a third client writes
    q2 to :cancel. When q2's request comes out of the queue the app answers CancelledError instead of
    running it for nobody (a robot mount after the operator gave up); q1 is not disturbed."""
    ioc, app = served
    dev = ioc.device_name
    rpc = [epics_tool('caput'), '-c', '-w', '30', '-S', f'{dev}:wait:rpc.VAL$']
    first = run(rpc + [json.dumps({'id': 'q1'})], ca_env)
    yield until(lambda: app.waiting, what='q1 to run')
    second = run(rpc + [json.dumps({'id': 'q2'})], ca_env)
    yield task.deferLater(reactor, 1.0, lambda: None)   # q2's put is queued on the busy record by now
    yield put_to_app(f'{dev}:wait:cancel', 'q2', ca_env)
    app.waiting[0].callback('first')
    results = yield finished([first, second])
    assert all(code == 0 for code, _, _ in results), results
    replies = {r['id']: r for r in json.loads(unescape(caget(f'{dev}:wait:reply', ca_env, '-S')))}
    assert replies['q1'] == {'id': 'q1', 'ok': True, 'result': 'first'}
    assert replies['q2']['error']['type'] == 'CancelledError' and 'before it ran' in replies['q2']['error']['message']
    assert len(app.waiting) == 1
