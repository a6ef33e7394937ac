"""Unit tests of the simulated robot (examples/unclesam/simdhs.py) and the payload formats, no EPICS."""

import os
import sys

import pytest
from twisted.internet import task

EXAMPLES = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir,
                                        'examples'))
if EXAMPLES not in sys.path:
    sys.path.insert(0, EXAMPLES)

from unclesam import payloads as pl  # noqa: E402
from unclesam.simdhs import SimRobot  # noqa: E402


class FakeProto:
    """Stands in for DHSProtocol: records what the robot sends."""

    name = 'robot'

    def __init__(self):
        self.sent = []

    def operation_update(self, operation, handle, *text):
        self.sent.append(('update', operation, handle, ' '.join(text)))

    def operation_completed(self, operation, handle, status, *text):
        self.sent.append(('completed', operation, handle, status, ' '.join(text)))

    def set_string_completed(self, name, *value, status='normal'):
        self.sent.append(('string', name, ' '.join(str(v) for v in value)))

    def log(self, level, source, *text):
        self.sent.append(('log', level, ' '.join(str(t) for t in text)))

    def of(self, kind, name=None):
        return [m for m in self.sent if m[0] == kind and (name is None or m[1] == name)]


@pytest.fixture
def robot():
    clock = task.Clock()
    sim = SimRobot(step_time=1.0, heartbeat=0.5, clock=clock)
    proto = FakeProto()
    sim.connected(proto)
    return sim, proto, clock


def test_connect_publishes_every_string(robot):
    """On connect the robot publishes status, state, sample, three cassettes and three fits, all
    in the documented formats."""
    sim, proto, clock = robot
    strings = {m[1] for m in proto.of('string')}
    assert strings >= {'robot_status', 'robot_state', 'robot_sample', 'robot_cassette',
                       'robot_fit', 'robot_safety', 'robot_io', 'robot_force'}
    cassettes = [pl.parse_cassette(m[2]) for m in proto.of('string', 'robot_cassette')]
    assert [(c, t) for c, t, _ in cassettes] == [('l', 2), ('m', 4), ('r', 1)]
    left = cassettes[0][2]
    assert left[pl.port_index('A', 1)] == 1 and left[pl.port_index('G', 1)] == 0
    assert left[pl.port_index('B', 2)] == 3 and left[pl.port_index('C', 3)] == 4
    status = pl.parse_pairs(proto.of('string', 'robot_status')[0][2])
    assert status['need_reset'] == '0' and status['warning'] == ''


def test_heartbeat(robot):
    """robot_heartbeat counts up every heartbeat period."""
    sim, proto, clock = robot
    clock.advance(0.5)
    clock.advance(0.5)
    assert [m[2] for m in proto.of('string', 'robot_heartbeat')] == ['1', '2']


def test_mount_steps_and_completion(robot):
    """A mount sends one update per step, raises then drops the safety flags, marks the port
    mounted and completes normal with the port."""
    sim, proto, clock = robot
    proto.sent.clear()
    sim.start_operation(proto, 'robot_mount', '1.1', ['l', 'A', '1'])
    clock.advance(0)
    assert proto.of('update')[0] == ('update', 'robot_mount', '1.1', 'prepare goniometer')
    for _ in range(6):
        clock.advance(1.0)
    assert [m[3] for m in proto.of('update')][2:] == ['picking lA1', 'approaching goniometer',
                                                     'mounting lA1']
    assert proto.of('completed') == [('completed', 'robot_mount', '1.1', 'normal', 'lA1')]
    safety = [pl.parse_pairs(m[2]) for m in proto.of('string', 'robot_safety')]
    assert safety[0]['prepare'] == '1' and safety[-1] == {'prepare': '0', 'ready': '0',
                                                          'approach': '0'}
    assert sim.mounted == 'lA1' and sim.ports['l'][0] == 'm'
    assert proto.of('string', 'robot_sample')[-1][2] == 'lA1 none'
    assert sim.activity == 'idle'


@pytest.mark.parametrize('port, reason', [('lG1', 'port_empty lG1'), ('lB2', 'port_bad lB2 bad'),
                                          ('lC3', 'port_bad lC3 jammed'),
                                          ('rA1', 'no_cassette rA1')])
def test_mount_failures(robot, port, reason):
    """Mounting an empty, bad, jammed or absent port completes with an error at once."""
    sim, proto, clock = robot
    sim.start_operation(proto, 'robot_mount', '1.1', list(port))
    assert proto.of('completed') == [('completed', 'robot_mount', '1.1', 'error', reason)]


def test_busy_dismount_without_sample_and_unknown(robot):
    """A second operation while one runs is 'busy'; dismount with nothing mounted is 'no_sample';
    an unknown operation is 'unknown_command'."""
    sim, proto, clock = robot
    sim.start_operation(proto, 'robot_dismount', '1.1', [])
    sim.start_operation(proto, 'robot_fly', '1.2', [])
    sim.start_operation(proto, 'robot_mount', '1.3', ['l', 'A', '2'])
    sim.start_operation(proto, 'robot_standby', '1.4', [])
    done = proto.of('completed')
    assert [(m[2], m[3], m[4].split()[0]) for m in done] == [
        ('1.1', 'error', 'no_sample'), ('1.2', 'error', 'unknown_command'),
        ('1.4', 'error', 'busy')]


def test_abort_and_hard_abort_needs_reset(robot):
    """Abort completes the running operation 'aborted'; a hard abort also sets need_reset, so
    motions fail until robot_config reset."""
    sim, proto, clock = robot
    sim.start_operation(proto, 'robot_mount', '1.1', ['l', 'A', '1'])
    clock.advance(1.0)
    sim.abort_all(proto, 'hard')
    assert proto.of('completed')[-1] == ('completed', 'robot_mount', '1.1', 'aborted', 'hard')
    clock.advance(10)
    assert len(proto.of('completed')) == 1
    sim.start_operation(proto, 'robot_mount', '1.2', ['l', 'A', '1'])
    assert proto.of('completed')[-1][3:5] == ('error', 'need_reset reset the robot '
                                                       '(robot_config reset) first')
    sim.start_operation(proto, 'robot_config', '1.3', ['reset'])
    clock.advance(0)
    clock.advance(1.0)
    assert proto.of('completed')[-1] == ('completed', 'robot_config', '1.3', 'normal', 'reset')
    sim.start_operation(proto, 'robot_mount', '1.4', ['l', 'A', '1'])
    assert proto.of('completed')[-1][2] == '1.3'     # 1.4 is running, not refused


def test_disconnect_stops_running_operation(robot):
    """When the server goes away the running operation is dropped and nothing more is sent."""
    sim, proto, clock = robot
    sim.start_operation(proto, 'robot_mount', '1.1', ['l', 'A', '1'])
    clock.advance(1.0)
    sim.disconnected(proto)
    count = len(proto.sent)
    clock.advance(20)
    assert len(proto.sent) == count and sim.current is None


def test_payload_helpers():
    """Ports parse in either form, pairs round-trip with braces, bad payloads are PayloadErrors."""
    assert pl.parse_port('L a 1') == ('l', 'A', 1) and pl.parse_port('rL8') == ('r', 'L', 8)
    assert pl.port_index('A', 1) == 0 and pl.port_index('B', 1) == 8 and pl.port_index('L', 8) == 95
    with pytest.raises(pl.PayloadError, match='e.g. lA1'):
        pl.parse_port('xA1')
    pairs = {'status': 0, 'warning': 'cold gripper', 'cal_msg': ''}
    assert pl.parse_pairs(pl.format_pairs(pairs)) == {'status': '0', 'warning': 'cold gripper',
                                                      'cal_msg': ''}
    assert pl.parse_sample('lA1 none') == ('lA1', None)
    assert pl.parse_fit('m affine 0.5') == ('m', 3, 0.5)
    with pytest.raises(pl.PayloadError):
        pl.parse_fit('x rigid 1')
    with pytest.raises(pl.PayloadError):
        pl.parse_cassette('l 1 ' + '1' * 95)
