"""Remote procedure calls from a PV Access client (p4p) when the model runs with pva=True: the
JSON request written through QSRV with a blocking put completes once the reply is there."""
import importlib.util
import sys

import pytest
import pytest_twisted
from devioc.testing import epics_tool

from .test_rpc_live import C_CLIENT, PYTHON_CLIENT, App, Box, finished, run

PVA_CLIENT = '''
import json, sys
import numpy
from p4p.client.thread import Context
dev, count = sys.argv[1], int(sys.argv[2])
ctx = Context('pva')
for i in range(count):
    call_id = f'pva-{i}'
    request = json.dumps({'id': call_id, 'kwargs': {'tag': call_id, 'n': i}})
    # QSRV serves the lso's long value as rpc.VAL$, an array of bytes; process=true with wait=True
    # completes when the record does, i.e. when the app has written the reply
    data = numpy.frombuffer(request.encode() + bytes(1), dtype=numpy.uint8)
    ctx.put(f'{dev}:echo:rpc.VAL$', data, timeout=30, wait=True, process='true')
    value = ctx.get(f'{dev}:echo:reply', timeout=10)
    text = bytes(value.astype('uint8')).split(bytes(1), 1)[0].decode() if hasattr(value, 'astype') else str(value)
    mine = [r for r in json.loads(text) if r['id'] == call_id]
    assert mine and mine[0]['result'] == {'tag': call_id, 'n': i}, (call_id, text[:300])
print('ok', count)
'''


@pytest.fixture
def pva_served(run_model, ca_port):
    if importlib.util.find_spec('p4p') is None:
        pytest.skip('p4p is not installed (pip install p4p)')
    app = App()
    return run_model(Box, callbacks=app, ca_port=ca_port, pva=True), app


@pytest_twisted.inlineCallbacks
def test_a_pva_client_calls_through_qsrv_alongside_ca_clients(pva_served, ca_env):
    """A p4p client (20 calls), a Python client and a C caput -c/caget client (20 each) at once on a
    softIocPVA model: each gets its own results; the app ran every call once, one at a time."""
    ioc, app = pva_served
    dev, count = ioc.device_name, 20
    procs = [run([sys.executable, '-c', PVA_CLIENT, dev, str(count)], ca_env),
             run([sys.executable, '-c', PYTHON_CLIENT, dev, 'py', str(count)], ca_env),
             run([sys.executable, '-c', C_CLIENT, epics_tool('caput'), epics_tool('caget'), dev, 'c', str(count)],
                 ca_env)]
    for code, out, err in (yield finished(procs, timeout=240)):
        assert code == 0 and out.startswith('ok'), err[-1500:]
    assert sorted(app.seen) == sorted((f'{name}-{i}', i) for name in ('pva', 'py', 'c') for i in range(count))
    assert not app.overlap
