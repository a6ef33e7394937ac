"""The hidden records devioc adds beside a field (write_<field>'s twin and detector, scan_<field>'s
counter, a blocking field's UDF helper) must not let a client reach, through the database, what the
field's own access rules keep from it: a client outside a restricted group writing ``<pv>:_app``
(whose OUT is ``"<pv> PP"``) wrote the restricted record, and any client writing a DEFAULT field's
``<pv>:_app`` changed it with no write_<field> call; writing ``<device>:_blockingN`` set the
UDF of a restricted blocking record; writing ``<pv>:_w`` or ``<pv>:_scan`` posted a value the app
takes for a client write or a scan."""
import subprocess

import pytest
import pytest_twisted

from devioc import models
from devioc.testing import caget, epics_tool, tool_as_other_user, until


class Guarded(models.Model):
    opsw = models.Float('opsw', ASG='OPS')          # restricted, with a write_ callback: twin, gate, detector
    w = models.Float('w')                           # DEFAULT, with a write_ callback
    blops = models.Float('blops', ASG='OPS', blocking=True)   # restricted and blocking: a UDF helper
    sc = models.Float('sc', SCAN='1 second')        # scanned by the app

    class Meta:
        access = {'OPS': {'users': ['devioc-nobody-writes-here']}}


class GuardedApp:
    def __init__(self):
        self.writes = []
        self.scans = 0

    def write_opsw(self, pv, value, ioc):
        self.writes.append(('opsw', value))

    def write_w(self, pv, value, ioc):
        self.writes.append(('w', value))

    def do_blops(self, pv, value, ioc):
        pass

    def scan_sc(self, pv, ioc):
        self.scans += 1
        return 1.0


def _clients():
    users = [[epics_tool('caput')]]
    try:
        users.append(tool_as_other_user('caput'))
    except pytest.skip.Exception:
        pass   # not root: the same-user client is still checked
    return users


def _put(argv, name, value, env):
    return subprocess.run([*argv, '-w', '3', name, value], env={**env, 'HOME': '/tmp'},
                          capture_output=True, text=True, timeout=20)


def _refused(result):
    return result.returncode != 0 and 'Write access denied' in result.stdout + result.stderr


@pytest_twisted.inlineCallbacks
def test_no_client_reaches_a_restricted_record_through_a_hidden_one(run_model, ca_env):
    app = GuardedApp()
    ioc = run_model(Guarded, callbacks=app)
    dev = ioc.device_name
    yield until(lambda: app.scans >= 1, 'the first scan')
    for caput in _clients():
        for name in ('opsw', 'opsw:_app', 'opsw:_w', 'opsw:_wc', 'w:_w', 'w:_wc', 'sc:_scan', '_blocking0'):
            assert _refused(_put(caput, f'{dev}:{name}', '666', ca_env)), (caput[-1], name)
        assert _refused(_put(caput, f'{dev}:w:_app', '666', ca_env)), caput[-1]   # unseen by write_w
        assert _put(caput, f'{dev}:w', '5', ca_env).returncode == 0   # DEFAULT's value: still the clients'
    assert caget(f'{dev}:opsw', ca_env) == '0' and caget(f'{dev}:blops.UDF', ca_env) == '0'
    yield until(lambda: ('w', 5.0) in app.writes, "the clients' write to w reported")
    assert all(name == 'w' and value == 5.0 for name, value in app.writes), app.writes
    # the app still writes them all: the restricted field and its twin through the shell, w through CA
    assert ioc.opsw.put(3.5, wait=True) and ioc.w.put(4.5, wait=True)
    assert caget(f'{dev}:opsw', ca_env) == '3.5' and caget(f'{dev}:w', ca_env) == '4.5'
    assert ioc._blocking.fields['blops'].flag.put(1, wait=True)   # the helper the app sets on a failed write
    assert caget(f'{dev}:blops.UDF', ca_env) == '1'


class Robot(models.Model):
    level = models.Float('level')


class RobotApp:
    @models.function
    def mount(self, port: str = 'A1') -> str:
        if port == 'bad':
            raise ValueError('no such\nport')   # a line break: the one-line :message carries it as a space
        return f'mounted {port}'


@pytest_twisted.inlineCallbacks
def test_no_client_forges_a_functions_reply_status_message_or_listing(run_model, ca_env):
    """A function's answers go to its caller through :reply (by call id), :status and :message: a
    client that could write them could hand another client a forged result. Refused to every client;
    the app's own answers still arrive, through the shell."""
    ioc = run_model(Robot, callbacks=RobotApp())
    dev = ioc.device_name
    for caput in _clients():
        for name in ('mount:reply', 'mount:message', 'rpc:functions'):
            result = subprocess.run([*caput, '-S', '-w', '3', f'{dev}:{name}', '[{"id":"x","ok":true}]'],
                                    env={**ca_env, 'HOME': '/tmp'}, capture_output=True, text=True, timeout=20)
            assert _refused(result), (caput[-1], name, result.stdout)
        assert _refused(_put(caput, f'{dev}:mount:status', '2', ca_env)), caput[-1]
    assert 'mount' in caget(f'{dev}:rpc:functions', ca_env, '-S')

    def call(*args):
        return subprocess.run([epics_tool('caput'), '-c', '-w', '20', *args], env=ca_env, capture_output=True,
                              text=True, timeout=30)

    from twisted.internet import threads
    done = yield threads.deferToThread(call, '-S', f'{dev}:mount:rpc.VAL$', '{"id":"op-1","args":["B2"]}')
    assert done.returncode == 0, done.stderr
    assert '"id":"op-1"' in caget(f'{dev}:mount:reply', ca_env, '-S').replace('\\"', '"')
    assert 'mounted B2' in caget(f'{dev}:mount:reply', ca_env, '-S')
    assert caget(f'{dev}:mount:status', ca_env) == 'done'
    yield threads.deferToThread(subprocess.run, [epics_tool('caput'), '-S', f'{dev}:mount:port', 'bad'],
                                env=ca_env, capture_output=True, timeout=20)
    done = yield threads.deferToThread(call, f'{dev}:mount:call', '1')
    assert done.returncode == 0, done.stderr
    yield until(lambda: caget(f'{dev}:mount:status', ca_env) == 'error', 'the failed call reported')
    assert caget(f'{dev}:mount:message', ca_env, '-S') == 'ValueError: no such port'
