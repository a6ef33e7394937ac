"""End-to-end tests of the unclesam robot bridge, driven only through the C CA tools.

The bridge (examples/unclesam/bin/app.server) runs in a subprocess on its own CA port and a free
loopback DCS port; the simulated robot DHS (bin/simdhs) runs in another subprocess. Every process
is stopped by PID when the test ends.
"""

import os
import signal
import socket
import subprocess
import sys

import pytest

from devioc.testing import caget, caput, epics_tool, wait_for
from devioc.testing import stop_process as stop

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
BIN = os.path.join(ROOT, 'examples', 'unclesam', 'bin')
START_TIMEOUT = 30.0
OP_TIMEOUT = 10.0


def free_tcp_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class Bridge:
    """A running bridge and the helpers to drive it with caget/caput."""

    def __init__(self, device, env, dcs_port, tmp_path, request):
        self.device = device
        self.env = env
        self.dcs_port = dcs_port
        self.tmp_path = tmp_path
        self.request = request
        self.sims = []
        self.log_path = tmp_path / 'bridge.log'
        with open(self.log_path, 'wb') as out:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.join(BIN, 'app.server'), '--device', device,
                 '--port', str(dcs_port), '--macro', f'gonio={device}G'],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        request.addfinalizer(lambda: stop(self.proc))
        wait_for(lambda: self.try_get('dcs_port') == str(dcs_port) or self.exited(),
                 timeout=START_TIMEOUT, what=f'bridge {device} to serve its PVs', interval=0.2)
        assert self.proc.poll() is None, f'bridge exited early:\n{self.output()}'

    def exited(self):
        if self.proc.poll() is not None:
            raise AssertionError(f'bridge exited ({self.proc.returncode}):\n{self.output()}')
        return False

    def output(self):
        return self.log_path.read_text(errors='replace')[-4000:]

    def pv(self, name):
        return f'{self.device}:{name}'

    def get(self, name, *args):
        return caget(self.pv(name), self.env, *args)

    def get_text(self, name):
        """A long (CHAR waveform) string PV."""
        return caget(self.pv(name), self.env, '-S')

    def try_get(self, name):
        try:
            return self.get(name)
        except (AssertionError, subprocess.TimeoutExpired):
            return None

    def put(self, name, value):
        return caput(self.pv(name), value, self.env)

    def wait(self, name, value, timeout=OP_TIMEOUT, text=False):
        getter = self.get_text if text else self.get
        try:
            return wait_for(lambda: getter(name) == value, timeout=timeout, interval=0.1,
                            what=f'{self.pv(name)} == {value!r}')
        except AssertionError as exc:
            raise AssertionError(f'{exc}; now {getter(name)!r}\nbridge log:\n{self.output()}'
                                 ) from None

    def start_sim(self, framing='v2', step_time=0.1):
        log_path = self.tmp_path / f'sim{len(self.sims)}.log'
        with open(log_path, 'wb') as out:
            proc = subprocess.Popen(
                [sys.executable, os.path.join(BIN, 'simdhs'), '--host', '127.0.0.1',
                 '--port', str(self.dcs_port), '--framing', framing,
                 '--step-time', str(step_time), '--heartbeat', '0.2'],
                env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        proc.log_path = log_path
        self.sims.append(proc)
        self.request.addfinalizer(lambda: stop(proc))
        return proc


GONIO_DB = '''
record(bo, "$(G):robot_prepare") { field(ZNAM, "OFF") field(ONAM, "ON") }
record(bo, "$(G):robot_ready") { field(ZNAM, "OFF") field(ONAM, "ON") }
record(bo, "$(G):robot_approach") { field(ZNAM, "OFF") field(ONAM, "ON") }
'''


@pytest.fixture
def gonio(device, ca_env, tmp_path, request):
    """A stub goniometer IOC (three bo records <device>G:robot_*) on the session's default CA
    port; the bridge's safety calcouts write to it over CA."""
    db = tmp_path / 'gonio.db'
    db.write_text(GONIO_DB)
    proc = subprocess.Popen([epics_tool('softIoc'), '-m', f'G={device}G', '-d', str(db)],
                            env=ca_env, cwd=str(tmp_path), stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    request.addfinalizer(lambda: stop(proc))
    name = f'{device}G:robot_prepare'
    wait_for(lambda: _try(lambda: caget(name, ca_env)) == 'OFF', timeout=START_TIMEOUT,
             what=f'stub goniometer {name}', interval=0.2)
    return f'{device}G'


def _try(call):
    try:
        return call()
    except (AssertionError, subprocess.TimeoutExpired):
        return None


@pytest.fixture
def bridge(device, ca_env, ca_port, tmp_path, request):
    env = dict(ca_env)
    env['EPICS_CA_SERVER_PORT'] = str(ca_port)
    env['DEVIOC_CACHE_DIR'] = str(tmp_path / 'cache')
    env['PYTHONUNBUFFERED'] = '1'
    return Bridge(device, env, free_tcp_port(), tmp_path, request)


@pytest.mark.parametrize('framing', ['v1', 'v2'])
def test_mount_reaches_dhs_and_completion_comes_back(bridge, framing):
    """A mount written to <device>:mount reaches the simulated DHS as robot_mount with a handle;
    its updates and completion come back as PVs, and the next command gets the next handle."""
    assert bridge.get('connected') == 'DISCONNECTED'
    assert bridge.get('health') == 'OFFLINE'
    sim = bridge.start_sim(framing)
    bridge.wait('connected', 'CONNECTED')
    assert bridge.get('framing') == framing.upper()
    bridge.wait('type_l', 'CASSETTE')
    assert bridge.get('type_r') == 'ABSENT'
    assert bridge.get('fit_l') == 'RIGID'

    bridge.put('mount', 'lA1')
    bridge.wait('op_state', 'NORMAL')
    assert bridge.get('handle') == '1.1'
    assert bridge.get('handle_count') == '1'
    assert bridge.get('operation') == 'robot_mount'
    assert bridge.get_text('op_msg') == 'normal lA1'
    bridge.wait('sample', 'lA1')
    assert bridge.get('sample_mounted') == 'YES'
    assert bridge.get('mount_count') == '1'
    assert 'mounted lA1' in bridge.get_text('sample_log')
    assert bridge.get('ports_l').split()[:3] == ['96', '2', '1']   # count, lA1 mounted, lA2 full
    assert bridge.get('mount') == ''
    wait_for(lambda: 'operation robot_mount 1.1 l A 1' in sim.log_path.read_text(),
             timeout=5, what='the simulated DHS to log the mount it received')

    bridge.put('dismount', 1)
    bridge.wait('op_state', 'NORMAL')
    assert bridge.get('handle') == '1.2'
    assert bridge.get('handle_count') == '2'
    bridge.wait('sample', '')
    assert bridge.get('dismount_count') == '1'
    assert bridge.get('ports_l').split()[1] == '1'
    assert 'operation robot_dismount 1.2' in sim.log_path.read_text()
    assert int(bridge.get('heartbeat')) > 0


def test_error_completion_and_refusals(bridge):
    """Mounting an empty port ends in ERROR with the DHS's reason; a bad port name and a disabled
    bridge refuse the command without reaching the DHS."""
    bridge.start_sim('v2')
    bridge.wait('connected', 'CONNECTED')
    bridge.put('mount', 'lG1')
    bridge.wait('op_state', 'ERROR')
    assert 'port_empty lG1' in bridge.get_text('error_msg')
    assert bridge.get('error') == 'ERROR'
    assert bridge.get('error_count') == '1'

    bridge.put('mount', 'zz9')
    bridge.wait('op_state', 'REFUSED')
    assert 'bad port' in bridge.get_text('op_msg')
    bridge.put('enable', 'DISABLED')
    bridge.put('mount', 'lA2')
    bridge.wait('refused_count', '2')
    assert 'enable is DISABLED' in bridge.get_text('log')
    assert bridge.get('handle') == '1.1'


def test_disconnect_is_visible_and_reconnect_recovers(bridge):
    """Killing the DHS shows DISCONNECTED, a running operation ends in ERROR, commands are refused
    with a log line; a new DHS reconnects and commands work again with the next handle."""
    first = bridge.start_sim('v2', step_time=2.0)
    bridge.wait('connected', 'CONNECTED')
    bridge.put('mount', 'lA3')
    bridge.wait('op_state', 'BUSY')
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    bridge.wait('connected', 'DISCONNECTED')
    bridge.wait('op_state', 'ERROR')
    assert 'DHS disconnected' in bridge.get_text('op_msg')
    assert bridge.get('health') == 'OFFLINE'
    assert bridge.get('disconnects') == '1'

    bridge.put('dismount', 1)
    bridge.wait('op_state', 'REFUSED')
    assert 'refused dismount: robot DHS not connected' in bridge.get_text('log')
    assert bridge.get('refused_count') == '1'

    bridge.start_sim('v1')
    bridge.wait('connected', 'CONNECTED')
    assert bridge.get('connections') == '2'
    assert bridge.get('framing') == 'V1'
    bridge.put('mount', 'mA1')
    bridge.wait('op_state', 'NORMAL')
    assert bridge.get('handle') == '1.2'
    bridge.wait('sample', 'mA1')


def test_abort_stops_the_running_operation(bridge):
    """Abort sends stoh_abort_all and the running mount completes ABORTED; the safety flags drop."""
    bridge.start_sim('v2', step_time=1.0)
    bridge.wait('connected', 'CONNECTED')
    bridge.put('mount', 'lA4')
    bridge.wait('prepare', 'ON')
    assert bridge.get('safe') == '0'
    bridge.put('abort', 1)
    bridge.wait('op_state', 'ABORTED')
    assert bridge.get('abort_count') == '1'
    bridge.wait('prepare', 'OFF')
    assert bridge.get('safe') == '1'
    assert bridge.get('busy') == 'IDLE'


def test_safety_flags_reach_the_goniometer_ioc(gonio, bridge, ca_env):
    """During a mount the robot's prepare/ready/approach flags are written through the output links
    to the goniometer IOC named by the gonio macro, and dropped again when the mount completes."""
    bridge.start_sim('v2', step_time=1.0)
    bridge.wait('connected', 'CONNECTED')
    bridge.put('mount', 'lA5')
    wait_for(lambda: caget(f'{gonio}:robot_approach', ca_env) == 'ON', timeout=OP_TIMEOUT,
             interval=0.1, what='robot_approach ON on the goniometer IOC')
    assert caget(f'{gonio}:robot_prepare', ca_env) == 'ON'
    assert caget(f'{gonio}:robot_ready', ca_env) == 'ON'
    bridge.wait('op_state', 'NORMAL')
    wait_for(lambda: caget(f'{gonio}:robot_prepare', ca_env) == 'OFF', timeout=OP_TIMEOUT,
             interval=0.1, what='robot_prepare OFF on the goniometer IOC')
    assert caget(f'{gonio}:robot_approach', ca_env) == 'OFF'


def test_taken_dcs_port_is_a_clear_error(device, ca_env, ca_port, tmp_path):
    """app.server exits with status 1 and a message naming the port when the DCS port is taken."""
    env = dict(ca_env, EPICS_CA_SERVER_PORT=str(ca_port), DEVIOC_CACHE_DIR=str(tmp_path))
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.Popen([sys.executable, os.path.join(BIN, 'app.server'), '--device', device,
                                 '--port', str(port)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        try:
            out, err = proc.communicate(timeout=START_TIMEOUT)
        finally:
            stop(proc)
    assert proc.returncode == 1, err
    assert f'cannot listen for the robot DHS on 127.0.0.1:{port}' in err, err
