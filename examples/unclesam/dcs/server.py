"""The DCS server side (the role DCSS plays): the bridge listens and a hardware DHS connects.

Conversation, as the server sees it:

1. On connect the server sends ``stoc_send_client_type`` as a 200-byte v1 message (every DCS peer
   reads that; v2 peers detect the framing per message) and waits ``handshake_timeout`` seconds for
   ``htos_client_is_hardware <name>``; a silent or wrong peer is disconnected.
2. It then sends ``stoh_register_operation <op> <op>`` and ``stoh_register_string <s> <s>`` for
   every operation and string the factory was given, and tells the listener the DHS is connected.
3. ``start_operation(op, *args)`` sends ``stoh_start_operation <op> <handle> <args...>``; handles are
   ``<client_id>.<counter>`` and the counter keeps counting across reconnects. The DHS answers with
   ``htos_operation_update`` messages and one ``htos_operation_completed <op> <handle> <status> ...``.
4. ``htos_set_string_completed <name> <status> <value...>`` and ``htos_log <level> <source> <text>``
   are passed to the listener. ``htos_operation_completed`` for a handle that is not pending is
   logged and ignored (late answers after a reconnect).
5. When the DHS disconnects, every pending operation completes with status ``error`` and the text
   ``DHS disconnected``, then the listener hears ``dhs_disconnected``.

One DHS is served at a time: a newer DHS that completes the handshake replaces the older
connection (a robot controller that rebooted reconnects before the old TCP link times out).
Nothing here imports EPICS: the protocol unit-tests with StringTransport and task.Clock.
"""
from __future__ import annotations

import logging
from typing import Dict, Iterable, List, NamedTuple, Optional

from twisted.internet import defer, protocol

from . import framing
from .base import DCSProtocol

logger = logging.getLogger(__name__)

COMPLETION_STATUSES = ('normal', 'error', 'aborted')


class NotConnected(RuntimeError):
    """An operation was asked for while no DHS is connected."""


class Completion(NamedTuple):
    """How an operation ended: its name, handle, status ('normal'|'error'|'aborted') and text."""

    operation: str
    handle: str
    status: str
    text: str


class DCSListener:
    """What the server tells its user; override the methods you need (all default to no-ops)."""

    def dhs_connected(self, name: str, version: int) -> None:
        """A DHS named ``name`` completed the handshake, speaking framing ``version``."""

    def dhs_disconnected(self, name: str, reason: str) -> None:
        """The DHS named ``name`` went away."""

    def operation_started(self, operation: str, handle: str, args: List[str]) -> None:
        """``stoh_start_operation`` was sent with this new handle."""

    def operation_update(self, operation: str, handle: str, text: str) -> None:
        """``htos_operation_update`` arrived for a pending operation."""

    def operation_completed(self, completion: Completion) -> None:
        """An operation ended (also with status 'error' when the DHS disconnects)."""

    def string_updated(self, name: str, status: str, value: str) -> None:
        """``htos_set_string_completed`` arrived."""

    def log_received(self, level: str, source: str, text: str) -> None:
        """``htos_log`` arrived."""

    def message_received(self, text: str) -> None:
        """Any message arrived from the DHS (called before the specific method)."""


class Operation:
    """A started operation: its name, handle, args and a Deferred that fires with a Completion."""

    def __init__(self, name: str, handle: str, args: List[str]) -> None:
        self.name = name
        self.handle = handle
        self.args = args
        self.deferred: defer.Deferred = defer.Deferred()
        self.updates: List[str] = []

    def __repr__(self) -> str:
        return f'<Operation {self.name} {self.handle} {" ".join(self.args)}>'


class DCSServerProtocol(DCSProtocol):
    """One DHS connection on the server side."""

    version = framing.V1          # what we speak until the peer has spoken

    def __init__(self) -> None:
        self.dhs_name: Optional[str] = None
        self._handshake_call = None

    def connectionMade(self) -> None:
        super().connectionMade()
        logger.info('DHS connection from %s, asking for its client type', self.peer_text())
        self.send_message('stoc_send_client_type', version=framing.V1)
        self._handshake_call = self.factory.clock.callLater(
            self.factory.handshake_timeout, self._handshake_timed_out)

    def _handshake_timed_out(self) -> None:
        self._handshake_call = None
        logger.warning('DCS peer %s did not send htos_client_is_hardware within %.1f s; '
                       'disconnecting', self.peer_text(), self.factory.handshake_timeout)
        self.transport.loseConnection()

    def _cancel_handshake_timer(self) -> None:
        if self._handshake_call is not None and self._handshake_call.active():
            self._handshake_call.cancel()
        self._handshake_call = None

    def connectionLost(self, reason=protocol.connectionDone) -> None:
        self._cancel_handshake_timer()
        self.factory.protocol_lost(self, reason.getErrorMessage() if reason else 'closed')

    def message_received(self, message: framing.Message) -> None:
        if self.dhs_name is None and message.command != 'htos_client_is_hardware':
            logger.warning('DCS peer %s sent %r before identifying itself; ignored',
                           self.peer_text(), message.text)
            return
        if self.dhs_name is not None:
            self.factory.listener.message_received(message.text)
        super().message_received(message)

    # -- messages from the DHS --------------------------------------------------------------
    def message_htos_client_is_hardware(self, args: List[str]) -> None:
        if not args:
            logger.warning('htos_client_is_hardware without a name from %s; disconnecting',
                           self.peer_text())
            self.transport.loseConnection()
            return
        if self.dhs_name is not None:
            logger.debug('repeated htos_client_is_hardware from %s ignored', self.peer_text())
            return
        name = args[0]
        expected = self.factory.dhs_name
        if expected and name != expected:
            logger.error('DHS %r connected from %s but this bridge serves %r; disconnecting',
                         name, self.peer_text(), expected)
            self.transport.loseConnection()
            return
        self._cancel_handshake_timer()
        self.dhs_name = name
        for operation in self.factory.operations:
            self.send_message('stoh_register_operation', operation, operation)
        for string in self.factory.strings:
            self.send_message('stoh_register_string', string, string)
        self.factory.protocol_ready(self)

    def message_htos_operation_update(self, args: List[str]) -> None:
        if len(args) < 2:
            logger.warning('malformed htos_operation_update: %r', args)
            return
        self.factory.operation_update(args[0], args[1], ' '.join(args[2:]))

    def message_htos_operation_completed(self, args: List[str]) -> None:
        if len(args) < 3:
            logger.warning('malformed htos_operation_completed: %r', args)
            return
        status = args[2] if args[2] in COMPLETION_STATUSES else 'error'
        text = ' '.join(args[3:] if args[2] in COMPLETION_STATUSES else args[2:])
        self.factory.operation_completed(Completion(args[0], args[1], status, text))

    def message_htos_set_string_completed(self, args: List[str]) -> None:
        if len(args) < 2:
            logger.warning('malformed htos_set_string_completed: %r', args)
            return
        self.factory.listener.string_updated(args[0], args[1], ' '.join(args[2:]))

    def message_htos_log(self, args: List[str]) -> None:
        level = args[0] if args else 'info'
        source = args[1] if len(args) > 1 else ''
        self.factory.listener.log_received(level, source, ' '.join(args[2:]))


class DCSServerFactory(protocol.ServerFactory):
    """Serves one hardware DHS and turns operations into handles and Deferreds.

    Args:
        listener: receives the connection, operation, string and log events.
        operations: operation names registered with the DHS after the handshake.
        strings: string names registered with the DHS after the handshake.
        client_id: first part of every handle (``<client_id>.<counter>``).
        dhs_name: if set, only a DHS of this name is accepted.
        handshake_timeout: seconds a new peer has to identify itself.
        clock: an IReactorTime (the reactor, or task.Clock in tests).
    """

    protocol = DCSServerProtocol

    def __init__(self, listener: DCSListener, operations: Iterable[str] = (),
                 strings: Iterable[str] = (), client_id: int = 1, dhs_name: Optional[str] = None,
                 handshake_timeout: float = 1.0, clock=None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.listener = listener
        self.operations = list(operations)
        self.strings = list(strings)
        self.client_id = client_id
        self.dhs_name = dhs_name
        self.handshake_timeout = handshake_timeout
        self.clock = clock
        self.counter = 0
        self.active: Optional[DCSServerProtocol] = None
        self.pending: Dict[str, Operation] = {}

    # -- state ------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while a DHS that completed the handshake is connected."""
        return self.active is not None

    def next_handle(self) -> str:
        """Return a new handle ``<client_id>.<counter>``; the counter starts at 1."""
        self.counter += 1
        return f'{self.client_id}.{self.counter}'

    # -- used by the protocol ---------------------------------------------------------------
    def protocol_ready(self, proto: DCSServerProtocol) -> None:
        old = self.active
        if old is not None and old is not proto:
            logger.warning('DHS %s reconnected from %s; dropping its older connection',
                           proto.dhs_name, proto.peer_text())
            self.active = None
            self._fail_pending('DHS replaced by a new connection')
            self.listener.dhs_disconnected(old.dhs_name, 'replaced by a new connection')
            old.transport.loseConnection()
        self.active = proto
        logger.info('DHS %s connected from %s (framing v%d)', proto.dhs_name, proto.peer_text(),
                    proto.version)
        self.listener.dhs_connected(proto.dhs_name, proto.version)

    def protocol_lost(self, proto: DCSServerProtocol, reason: str) -> None:
        if proto is not self.active:
            return
        self.active = None
        logger.warning('DHS %s disconnected: %s', proto.dhs_name, reason)
        self._fail_pending('DHS disconnected')
        self.listener.dhs_disconnected(proto.dhs_name, reason)

    def _fail_pending(self, text: str) -> None:
        pending, self.pending = self.pending, {}
        for op in pending.values():
            self._complete(op, Completion(op.name, op.handle, 'error', text))

    def _complete(self, op: Operation, completion: Completion) -> None:
        self.listener.operation_completed(completion)
        op.deferred.callback(completion)

    def operation_update(self, operation: str, handle: str, text: str) -> None:
        op = self.pending.get(handle)
        if op is None:
            logger.info('update for unknown operation handle %s (%s) ignored', handle, operation)
            return
        op.updates.append(text)
        self.listener.operation_update(operation, handle, text)

    def operation_completed(self, completion: Completion) -> None:
        op = self.pending.pop(completion.handle, None)
        if op is None:
            logger.info('completion for unknown operation handle %s (%s) ignored',
                        completion.handle, completion.operation)
            return
        self._complete(op, completion)

    # -- public API -------------------------------------------------------------------------
    def start_operation(self, operation: str, *args) -> Operation:
        """Send ``stoh_start_operation`` and return the Operation (handle, Deferred).

        Raises NotConnected if no DHS is connected and ValueError for an unregistered operation.
        """
        if self.active is None:
            raise NotConnected(f'cannot start {operation}: no DHS connected')
        if self.operations and operation not in self.operations:
            raise ValueError(f'operation {operation!r} is not registered; '
                             f'known: {", ".join(self.operations)}')
        words = [str(arg) for arg in args]
        handle = self.next_handle()
        op = Operation(operation, handle, words)
        self.pending[handle] = op
        self.active.send_message('stoh_start_operation', operation, handle, *words)
        self.listener.operation_started(operation, handle, words)
        return op

    def set_string(self, name: str, *value) -> None:
        """Ask the DHS to change a string (``stoh_set_string``). Raises NotConnected."""
        if self.active is None:
            raise NotConnected(f'cannot set {name}: no DHS connected')
        self.active.send_message('stoh_set_string', name, *value)

    def abort_all(self, mode: str = 'soft') -> None:
        """Send ``stoh_abort_all soft|hard``. Raises NotConnected."""
        if mode not in ('soft', 'hard'):
            raise ValueError(f'abort mode must be soft or hard, not {mode!r}')
        if self.active is None:
            raise NotConnected('cannot abort: no DHS connected')
        self.active.send_message('stoh_abort_all', mode)

    def disconnect(self) -> None:
        """Close the DHS connection, if any."""
        if self.active is not None:
            self.active.transport.loseConnection()
