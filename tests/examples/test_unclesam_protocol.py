"""Unit tests of the DCS server and DHS protocols (examples/unclesam/dcs), no EPICS, no sockets."""

import os
import sys

import pytest
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

EXAMPLES = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir,
                                        'examples'))
if EXAMPLES not in sys.path:
    sys.path.insert(0, EXAMPLES)

from unclesam import dcs  # noqa: E402
from unclesam.dcs import framing  # noqa: E402

OPS = ['robot_mount', 'robot_dismount']
STRINGS = ['robot_status']


class Recorder(dcs.DCSListener):
    """Records every listener event as a tuple."""

    def __init__(self):
        self.events = []

    def dhs_connected(self, name, version):
        self.events.append(('connected', name, version))

    def dhs_disconnected(self, name, reason):
        self.events.append(('disconnected', name))

    def operation_started(self, operation, handle, args):
        self.events.append(('started', operation, handle, args))

    def operation_update(self, operation, handle, text):
        self.events.append(('update', operation, handle, text))

    def operation_completed(self, completion):
        self.events.append(('completed',) + tuple(completion))

    def string_updated(self, name, status, value):
        self.events.append(('string', name, status, value))

    def log_received(self, level, source, text):
        self.events.append(('log', level, source, text))


def make_server(**kwargs):
    clock = task.Clock()
    listener = Recorder()
    factory = dcs.DCSServerFactory(listener, OPS, STRINGS, clock=clock, **kwargs)
    return factory, listener, clock


def connect(factory):
    proto = factory.buildProtocol(IPv4Address('TCP', '127.0.0.1', 5555))
    transport = StringTransport(peerAddress=IPv4Address('TCP', '127.0.0.1', 5555))
    proto.makeConnection(transport)
    return proto, transport


def sent(transport):
    """Decode and clear what the server wrote."""
    messages = framing.Decoder().feed(transport.value())
    transport.clear()
    return messages


def handshake(factory, version=framing.V2, name='robot'):
    proto, transport = connect(factory)
    sent(transport)
    proto.dataReceived(framing.encode(f'htos_client_is_hardware {name}', version))
    return proto, transport


def test_greeting_is_v1_then_handshake_registers():
    """The server greets with a 200-byte v1 stoc_send_client_type; after the DHS names itself it
    registers every operation and string, in the DHS's framing, and reports the connection."""
    factory, listener, clock = make_server()
    proto, transport = connect(factory)
    greeting = transport.value()
    assert len(greeting) == 200 and greeting.startswith(b'stoc_send_client_type\x00')
    transport.clear()
    assert not factory.connected
    proto.dataReceived(framing.encode('htos_client_is_hardware robot', framing.V2))
    messages = sent(transport)
    assert [m.text for m in messages] == [
        'stoh_register_operation robot_mount robot_mount',
        'stoh_register_operation robot_dismount robot_dismount',
        'stoh_register_string robot_status robot_status']
    assert {m.version for m in messages} == {framing.V2}
    assert listener.events == [('connected', 'robot', framing.V2)]
    assert factory.connected


def test_v1_peer_gets_v1_replies():
    """A DHS that answers in v1 is answered in v1."""
    factory, listener, clock = make_server()
    proto, transport = handshake(factory, framing.V1)
    messages = sent(transport)
    assert messages and {m.version for m in messages} == {framing.V1}
    factory.start_operation('robot_mount', 'l', 'A', '1')
    raw = transport.value()
    assert len(raw) == 200 and raw.startswith(b'stoh_start_operation robot_mount 1.1 l A 1\x00')


def test_handshake_timeout_disconnects():
    """A peer silent for handshake_timeout seconds is disconnected and never reported."""
    factory, listener, clock = make_server(handshake_timeout=1.0)
    proto, transport = connect(factory)
    clock.advance(0.9)
    assert not transport.disconnecting
    clock.advance(0.2)
    assert transport.disconnecting
    assert listener.events == []


def test_handshake_in_time_cancels_timer():
    """After a handshake the timeout no longer fires."""
    factory, listener, clock = make_server(handshake_timeout=1.0)
    proto, transport = handshake(factory)
    clock.advance(5)
    assert not transport.disconnecting
    assert clock.getDelayedCalls() == []


def test_wrong_dhs_name_is_refused():
    """With dhs_name set, a DHS of another name is disconnected."""
    factory, listener, clock = make_server(dhs_name='sam')
    proto, transport = handshake(factory, name='other')
    assert transport.disconnecting and not factory.connected and listener.events == []


def test_messages_before_handshake_are_ignored():
    """Operation messages from an unidentified peer change nothing."""
    factory, listener, clock = make_server()
    proto, transport = connect(factory)
    proto.dataReceived(framing.encode('htos_log info robot hi'))
    assert listener.events == []


def test_handles_are_unique_and_increment_across_reconnects():
    """Handles are <client_id>.<counter>, counting up, and keep counting after a reconnect."""
    factory, listener, clock = make_server(client_id=3)
    proto, transport = handshake(factory)
    handles = [factory.start_operation('robot_mount', 'l', 'A', str(i)).handle for i in (1, 2)]
    assert handles == ['3.1', '3.2']
    proto.connectionLost(None)
    proto, transport = handshake(factory)
    assert factory.start_operation('robot_dismount').handle == '3.3'


def test_operation_lifecycle():
    """start -> stoh_start_operation; updates and the completion reach the listener and the
    Operation's Deferred fires with the Completion."""
    factory, listener, clock = make_server()
    proto, transport = handshake(factory, framing.V2)
    sent(transport)
    op = factory.start_operation('robot_mount', 'l', 'B', '3')
    (message,) = sent(transport)
    assert message.text == 'stoh_start_operation robot_mount 1.1 l B 3'
    results = []
    op.deferred.addCallback(results.append)
    proto.dataReceived(
        framing.encode('htos_operation_update robot_mount 1.1 picking l B 3')
        + framing.encode('htos_operation_completed robot_mount 1.1 normal l B 3'))
    assert listener.events[1:] == [
        ('started', 'robot_mount', '1.1', ['l', 'B', '3']),
        ('update', 'robot_mount', '1.1', 'picking l B 3'),
        ('completed', 'robot_mount', '1.1', 'normal', 'l B 3')]
    assert results == [dcs.Completion('robot_mount', '1.1', 'normal', 'l B 3')]
    assert op.updates == ['picking l B 3']
    assert factory.pending == {}


def test_error_completion_and_unknown_handle():
    """An error completion is passed on; a completion for an unknown handle is ignored."""
    factory, listener, clock = make_server()
    proto, transport = handshake(factory)
    factory.start_operation('robot_mount', 'r', 'L', '8')
    proto.dataReceived(framing.encode('htos_operation_completed robot_mount 9.9 normal x')
                       + framing.encode('htos_operation_completed robot_mount 1.1 error '
                                        'port_empty r L 8'))
    assert listener.events[-1] == ('completed', 'robot_mount', '1.1', 'error', 'port_empty r L 8')
    assert len([e for e in listener.events if e[0] == 'completed']) == 1


def test_disconnect_fails_pending_and_refuses_new():
    """When the DHS goes, pending operations complete with error 'DHS disconnected', the listener
    hears it, and new operations raise NotConnected."""
    factory, listener, clock = make_server()
    proto, transport = handshake(factory)
    op = factory.start_operation('robot_mount', 'l', 'A', '1')
    results = []
    op.deferred.addCallback(results.append)
    proto.connectionLost(None)
    assert results == [dcs.Completion('robot_mount', '1.1', 'error', 'DHS disconnected')]
    assert listener.events[-1] == ('disconnected', 'robot')
    assert not factory.connected
    with pytest.raises(dcs.NotConnected, match='no DHS connected'):
        factory.start_operation('robot_mount', 'l', 'A', '1')
    with pytest.raises(dcs.NotConnected):
        factory.abort_all()


def test_unregistered_operation_is_refused():
    """An operation that was not registered raises ValueError naming the known ones."""
    factory, listener, clock = make_server()
    handshake(factory)
    with pytest.raises(ValueError, match='robot_mount, robot_dismount'):
        factory.start_operation('robot_fly')


def test_newer_dhs_replaces_older():
    """A second DHS that completes the handshake replaces the first, whose close is then ignored."""
    factory, listener, clock = make_server()
    first, first_transport = handshake(factory)
    second, second_transport = handshake(factory)
    assert first_transport.disconnecting and factory.active is second
    first.connectionLost(None)
    assert factory.active is second
    assert [e[0] for e in listener.events] == ['connected', 'disconnected', 'connected']


def test_strings_logs_abort_and_set_string():
    """String updates and log lines reach the listener; abort and set_string are sent."""
    factory, listener, clock = make_server()
    proto, transport = handshake(factory)
    sent(transport)
    proto.dataReceived(framing.encode('htos_set_string_completed robot_status normal state: idle')
                       + framing.encode('htos_log warning robot gripper cold'))
    assert listener.events[-2:] == [('string', 'robot_status', 'normal', 'state: idle'),
                                    ('log', 'warning', 'robot', 'gripper cold')]
    factory.abort_all('hard')
    factory.set_string('robot_status', 'x', 'y')
    assert [m.text for m in sent(transport)] == ['stoh_abort_all hard',
                                                'stoh_set_string robot_status x y']


def test_handler_exception_does_not_drop_link():
    """An exception in the listener is logged and the next message is still handled."""
    factory, listener, clock = make_server()
    proto, transport = handshake(factory)

    def boom(*args):
        raise RuntimeError('listener bug')
    listener.log_received = boom
    proto.dataReceived(framing.encode('htos_log info robot x')
                       + framing.encode('htos_set_string_completed robot_status normal ok'))
    assert listener.events[-1] == ('string', 'robot_status', 'normal', 'ok')
    assert not transport.disconnecting


class FakeHandler(dcs.DHSHandler):
    def __init__(self):
        self.calls = []

    def connected(self, proto):
        self.calls.append('connected')

    def start_operation(self, proto, operation, handle, args):
        self.calls.append(('start', operation, handle, args))
        proto.operation_completed(operation, handle, 'normal', 'done')

    def abort_all(self, proto, mode):
        self.calls.append(('abort', mode))


@pytest.mark.parametrize('version', [framing.V1, framing.V2])
def test_dhs_and_server_talk(version):
    """A DHSProtocol and a server protocol wired back to back complete the handshake and an
    operation, the DHS sending in its own framing."""
    factory, listener, clock = make_server()
    server, server_transport = connect(factory)
    handler = FakeHandler()
    dhs_proto = dcs.DHSProtocol('robot', handler, version)
    dhs_transport = StringTransport()
    dhs_proto.makeConnection(dhs_transport)

    def pump():
        for _ in range(5):
            data = server_transport.value()
            server_transport.clear()
            if data:
                dhs_proto.dataReceived(data)
            data = dhs_transport.value()
            assert not data or framing.Decoder().feed(data)[0].version == version
            dhs_transport.clear()
            if data:
                server.dataReceived(data)
    pump()
    assert factory.connected and dhs_proto.operations == set(OPS)
    assert dhs_proto.strings == set(STRINGS)
    op = factory.start_operation('robot_dismount')
    pump()
    factory.abort_all('soft')
    pump()
    assert handler.calls == ['connected', ('start', 'robot_dismount', '1.1', []), ('abort', 'soft')]
    assert op.deferred.called
    assert listener.events[-1] == ('completed', 'robot_dismount', '1.1', 'normal', 'done')
