"""The DHS side of DCS (the role a hardware server plays): connects to the server and serves it.

A ``DHSProtocol`` answers ``stoc_send_client_type`` with ``htos_client_is_hardware <name>``, notes
the operations and strings the server registers, and hands ``stoh_start_operation``,
``stoh_abort_all`` and ``stoh_set_string`` to its handler. It always sends in the framing it was
built with (``version``), whatever the server uses; it reads either framing.
"""
from __future__ import annotations

import logging
from typing import List, Optional, Set

from twisted.internet import protocol

from . import framing
from .base import DCSProtocol

logger = logging.getLogger(__name__)


class DHSHandler:
    """What a DHS protocol tells its hardware; override what you implement."""

    def connected(self, proto: 'DHSProtocol') -> None:
        """The server accepted our client type and may now send operations."""

    def disconnected(self, proto: 'DHSProtocol') -> None:
        """The server connection closed."""

    def start_operation(self, proto: 'DHSProtocol', operation: str, handle: str,
                        args: List[str]) -> None:
        """The server asked for an operation; answer with proto.operation_completed(...)."""
        proto.operation_completed(operation, handle, 'error', 'not implemented')

    def abort_all(self, proto: 'DHSProtocol', mode: str) -> None:
        """The server asked to stop everything."""

    def set_string(self, proto: 'DHSProtocol', name: str, value: List[str]) -> None:
        """The server asked to change a string."""


class DHSProtocol(DCSProtocol):
    """One connection from a DHS to its server."""

    def __init__(self, name: str, handler: DHSHandler, version: int = framing.V2) -> None:
        self.name = name
        self.handler = handler
        self.version = version
        self.send_version = version
        self.operations: Set[str] = set()
        self.strings: Set[str] = set()
        self.identified = False

    def send_message(self, *words, version: Optional[int] = None) -> None:
        super().send_message(*words, version=self.send_version if version is None else version)

    def connectionLost(self, reason=protocol.connectionDone) -> None:
        if self.identified:
            self.identified = False
            self.handler.disconnected(self)

    # -- messages from the server -----------------------------------------------------------
    def message_stoc_send_client_type(self, args: List[str]) -> None:
        self.send_message('htos_client_is_hardware', self.name)
        if not self.identified:
            self.identified = True
            self.handler.connected(self)

    def message_stoh_register_operation(self, args: List[str]) -> None:
        if args:
            self.operations.add(args[0])

    def message_stoh_register_string(self, args: List[str]) -> None:
        if args:
            self.strings.add(args[0])

    def message_stoh_start_operation(self, args: List[str]) -> None:
        if len(args) < 2:
            logger.warning('malformed stoh_start_operation: %r', args)
            return
        self.handler.start_operation(self, args[0], args[1], args[2:])

    def message_stoh_abort_all(self, args: List[str]) -> None:
        self.handler.abort_all(self, args[0] if args else 'soft')

    def message_stoh_set_string(self, args: List[str]) -> None:
        if args:
            self.handler.set_string(self, args[0], args[1:])

    # -- messages to the server -------------------------------------------------------------
    def operation_update(self, operation: str, handle: str, *text) -> None:
        self.send_message('htos_operation_update', operation, handle, *text)

    def operation_completed(self, operation: str, handle: str, status: str, *text) -> None:
        self.send_message('htos_operation_completed', operation, handle, status, *text)

    def set_string_completed(self, name: str, *value, status: str = 'normal') -> None:
        self.send_message('htos_set_string_completed', name, status, *value)

    def log(self, level: str, source: str, *text) -> None:
        self.send_message('htos_log', level, source, *text)


class DHSClientFactory(protocol.ReconnectingClientFactory):
    """Connects a DHS to its server and reconnects with back-off when the link drops.

    Args:
        name: the DHS name sent in ``htos_client_is_hardware``.
        handler: the hardware behind the DHS.
        version: framing used for every message sent (framing.V1 or framing.V2).
        max_delay: longest wait between reconnection attempts, seconds.
    """

    def __init__(self, name: str, handler: DHSHandler, version: int = framing.V2,
                 max_delay: float = 2.0, clock=None) -> None:
        self.name = name
        self.handler = handler
        self.version = version
        self.maxDelay = max_delay
        self.initialDelay = min(0.2, max_delay)
        if clock is not None:
            self.clock = clock

    def buildProtocol(self, addr):
        self.resetDelay()
        proto = DHSProtocol(self.name, self.handler, self.version)
        proto.factory = self
        return proto

    def clientConnectionFailed(self, connector, reason) -> None:
        logger.info('cannot reach DCS server %s: %s; retrying', connector.getDestination(),
                    reason.getErrorMessage())
        super().clientConnectionFailed(connector, reason)

    def clientConnectionLost(self, connector, unused_reason) -> None:
        logger.info('DCS server connection lost; reconnecting')
        super().clientConnectionLost(connector, unused_reason)
