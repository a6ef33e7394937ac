"""The unclesam robot bridge's operations as remote procedures, driven by the Python client: the
bridge (bin/app.server) and the simulated robot DHS (bin/simdhs) run in subprocesses, stopped by PID."""
import os
import socket
import subprocess
import sys

import pytest

from devioc.client import Client
from devioc.rpc import RPCError
from devioc.testing import caget, stop_process, wait_for

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
BIN = os.path.join(ROOT, 'examples', 'unclesam', 'bin')


def free_tcp_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _get(pv, env):
    try:
        return caget(pv, env)
    except (AssertionError, subprocess.TimeoutExpired):
        return None


@pytest.fixture
def robot(device, ca_env, ca_port, tmp_path, request):
    """A running bridge with the simulated DHS connected; yields (device, env)."""
    env = dict(ca_env, EPICS_CA_SERVER_PORT=str(ca_port), DEVIOC_CACHE_DIR=str(tmp_path / 'cache'),
               PYTHONUNBUFFERED='1')
    dcs_port = free_tcp_port()
    log = tmp_path / 'bridge.log'
    with open(log, 'wb') as out:
        bridge = subprocess.Popen([sys.executable, os.path.join(BIN, 'app.server'), '--device', device, '--port',
                                   str(dcs_port), '--macro', f'gonio={device}G'], env=env, stdout=out,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    request.addfinalizer(lambda: stop_process(bridge))
    wait_for(lambda: _get(f'{device}:dcs_port', env) == str(dcs_port) or bridge.poll() is not None, timeout=30,
             what='the bridge to serve its PVs', interval=0.2)
    assert bridge.poll() is None, log.read_text()[-3000:]
    with open(tmp_path / 'sim.log', 'wb') as out:
        sim = subprocess.Popen([sys.executable, os.path.join(BIN, 'simdhs'), '--host', '127.0.0.1', '--port',
                                str(dcs_port), '--framing', 'v2', '--step-time', '0.1', '--heartbeat', '0.2'],
                               env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    request.addfinalizer(lambda: stop_process(sim))
    wait_for(lambda: _get(f'{device}:connected', env) == 'CONNECTED', timeout=15, what='the DHS to connect',
             interval=0.1)
    wait_for(lambda: _get(f'{device}:type_l', env) == 'CASSETTE', timeout=15, what='the cassette string',
             interval=0.1)
    yield device, env, tmp_path / 'sim.log'


def test_a_mount_driven_from_the_python_client_returns_when_the_robot_is_done(robot):
    """Client.mount('lA1') returns the DHS's completion text after the sample is mounted; the
    bridge's PVs show it; a bad port and a second mount are refused with RobotError; dismount works."""
    device, env, sim_log = robot
    client = Client(device)
    assert {'mount', 'dismount', 'abort', 'prefetch', 'standby', 'reset'} <= set(client.functions)
    assert client.functions['mount']['signature'] == 'mount(port: str) -> str'
    assert client.mount(port='lA1') == 'lA1'
    assert caget(f'{device}:sample', env) == 'lA1'          # already there when the call returned
    assert caget(f'{device}:mount_count', env) == '1'
    assert 'operation robot_mount 1.1 l A 1' in sim_log.read_text()
    with pytest.raises(RPCError) as caught:
        client.mount('zZ9')
    assert caught.value.type_name == 'RobotError' and 'refused mount zZ9' in caught.value.message
    with pytest.raises(RPCError, match='ValueError: mode must be soft or hard'):
        client.abort(mode='medium')
    client.dismount()
    assert caget(f'{device}:sample', env) == ''
