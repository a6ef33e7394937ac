"""Another local user cannot call the app's functions around softIoc's access security: the app's
own CA server (the target of the records' links) takes connections from this user's processes only."""
import getpass
import subprocess

import pytest_twisted
from twisted.internet import defer, reactor, task

from devioc import models
from devioc.appserver import peer_inode, peer_uid
from devioc.testing import caget, epics_tool, tool_as_other_user

class Door(models.Model):
    level = models.Float('level')


class App:
    def __init__(self):
        self.opened = []

    @models.function
    def open(self, n: int = 1) -> str:
        self.opened.append(n)
        return f'open {n}'


@defer.inlineCallbacks
def _call_as_me(dev, ca_env):
    """This user's caput -c on the function's :call completes (the reactor runs while it waits)."""
    mine = subprocess.Popen([epics_tool('caput'), '-c', '-w', '10', f'{dev}:open:call', '5'], env=ca_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(500):
        if mine.poll() is not None:
            break
        yield task.deferLater(reactor, 0.02, lambda: None)
    assert mine.wait(5) == 0, mine.stderr.read()


@pytest_twisted.inlineCallbacks
def test_another_user_cannot_call_through_the_apps_own_server(run_model, ca_port, ca_env, tmp_path_factory):
    """A site ACF lets only this user write: uid 65534's caput -c on :call is denied by softIoc, and
    its put straight to the link's PV on the app's server (whose name any client reads in the :call
    record's OUT field) is refused too; the function never runs. This user's call still works."""
    root = tmp_path_factory.mktemp('other')
    caput_other = tool_as_other_user('caput')
    acf = root / 'site.acf'
    acf.write_text(f'UAG(ME) {{ {getpass.getuser()} }}\nASG(DEFAULT) {{\n    RULE(1, READ)\n'
                   '    RULE(1, WRITE) { UAG(ME) }\n}\nASG(DEVIOC_RO) { RULE(1, READ) }\n')
    acf.chmod(0o644)
    app = App()
    ioc = run_model(Door, callbacks=app, ca_port=ca_port, acf=str(acf))
    dev = ioc.device_name
    other_env = {**ca_env, 'HOME': '/tmp', 'USER': 'nobody'}
    denied = subprocess.run([*caput_other, '-c', '-w', '5', f'{dev}:open:call', '3'], env=other_env,
                            capture_output=True, text=True, timeout=30)
    assert 'Write access denied' in denied.stdout + denied.stderr
    hidden = caget(f'{dev}:open:call.OUT', ca_env).split()[0]
    assert hidden.startswith(f'{dev}:open:_rpc')
    server_env = {**other_env, 'EPICS_CA_ADDR_LIST': ioc._rpc.server.address, 'EPICS_CA_AUTO_ADDR_LIST': 'NO'}
    direct = subprocess.run([*caput_other, '-w', '3', hidden, '4'], env=server_env, capture_output=True, text=True,
                            timeout=30)
    assert direct.returncode != 0, direct.stdout
    yield task.deferLater(reactor, 0.5, lambda: None)
    assert app.opened == []
    yield _call_as_me(dev, ca_env)
    assert app.opened == [1]   # :call uses the argument record's value (its default), not the trigger's


def test_peer_uid_reads_the_owner_of_the_peer_socket(tmp_path):
    """Both ends of a loopback connection are rows of /proc/net/tcp; the peer's row gives its uid."""
    table = tmp_path / 'tcp'
    table.write_text(
        '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n'
        '   0: 0100007F:83A5 0100007F:8EC2 01 00000000:00000000 00:00000000 00000000     0        0 1 1\n'
        '   1: 0100007F:8EC2 0100007F:83A5 01 00000000:00000000 00:00000000 00000000 65534        0 2 1\n')
    assert peer_uid(('127.0.0.1', 0x8EC2), 0x83A5, str(table)) == 65534
    assert peer_uid(('127.0.0.1', 0x83A5), 0x8EC2, str(table)) == 0
    assert peer_uid(('127.0.0.1', 1234), 0x83A5, str(table)) is None
    assert peer_uid(('127.0.0.1', 1234), 0x83A5, str(tmp_path / 'missing')) is None
    assert peer_inode(('127.0.0.1', 0x8EC2), 0x83A5, str(table)) == 2   # the row's inode column
    assert peer_inode(('127.0.0.1', 1234), 0x83A5, str(table)) is None


class Guarded(models.Model):
    door = models.Float('door', blocking=True, ASG='NOBODY')   # no client writes it: the app only

    class Meta:
        access = {'NOBODY': {}}


class GuardedApp(App):
    def __init__(self):
        super().__init__()
        self.doors = []

    def do_door(self, pv, value, ioc):
        self.doors.append(value)


@pytest_twisted.inlineCallbacks
def test_the_same_user_cannot_put_around_softioc_to_the_apps_server(run_model, ca_port, ca_env):
    """The app's server takes connections from the model's softIoc only, not from any process of the
    same user: a caput of this user straight to a blocking field's link PV (in a group nobody may
    write) and to a function's trigger PV is refused, and nothing runs; softIoc's own link still works."""
    app = GuardedApp()
    ioc = run_model(Guarded, callbacks=app, ca_port=ca_port)
    dev = ioc.device_name
    for server, record in ((ioc._blocking.server, f'{dev}:door'), (ioc._rpc.server, f'{dev}:open:call')):
        hidden = caget(f'{record}.OUT', ca_env).split()[0]
        env = {**ca_env, 'EPICS_CA_ADDR_LIST': server.address, 'EPICS_CA_AUTO_ADDR_LIST': 'NO'}
        direct = subprocess.run([epics_tool('caput'), '-w', '3', hidden, '7'], env=env, capture_output=True,
                                text=True, timeout=30)
        assert direct.returncode != 0, (hidden, direct.stdout)
    yield task.deferLater(reactor, 0.5, lambda: None)
    assert app.opened == [] and 7.0 not in app.doors
    yield _call_as_me(dev, ca_env)
    assert app.opened == [1]
