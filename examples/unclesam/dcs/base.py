"""A Twisted protocol that sends and receives DCS messages in either framing."""
from __future__ import annotations

from typing import Optional

import logging

from twisted.internet import protocol

from . import framing

logger = logging.getLogger(__name__)


class DCSProtocol(protocol.Protocol):
    """Frames and unframes DCS messages; subclasses handle them in ``message_<command>`` methods.

    A handler receives the list of words after the command. Exceptions in handlers are logged and
    the next message is handled.

    Outgoing messages use ``self.version``: the framing of the last message the peer sent, or the
    subclass's initial choice before the peer has said anything. A peer that sends bytes that cannot
    be framed is disconnected.
    """

    version: int = framing.V2

    def connectionMade(self) -> None:
        self.decoder = framing.Decoder()

    def dataReceived(self, data: bytes) -> None:
        try:
            messages = self.decoder.feed(data)
        except framing.FramingError as exc:
            logger.error('DCS peer %s sent bad data, disconnecting: %s', self.peer_text(), exc)
            self.transport.loseConnection()
            return
        for message in messages:
            self.version = message.version
            try:
                self.message_received(message)
            except Exception:      # noqa: BLE001 - one bad message must not drop the link
                logger.exception('error handling DCS message %r from %s', message.text,
                                 self.peer_text())

    def message_received(self, message: framing.Message) -> None:
        if not message.words:
            logger.debug('empty DCS message from %s ignored', self.peer_text())
            return
        handler = getattr(self, 'message_' + message.command, None)
        if handler is None:
            self.unknown_message(message)
        else:
            handler(message.words[1:])

    def unknown_message(self, message: framing.Message) -> None:
        logger.debug('unhandled DCS message from %s: %s', self.peer_text(), message.text)

    def send_message(self, *words, version: Optional[int] = None) -> None:
        """Send one message made of ``words`` joined by spaces, in ``version`` or self.version."""
        text = ' '.join(str(word) for word in words)
        data = framing.encode(text, self.version if version is None else version)
        logger.debug('DCS -> %s: %s', self.peer_text(), text)
        self.transport.write(data)

    def peer_text(self) -> str:
        transport = getattr(self, 'transport', None)
        if transport is None:
            return '(unconnected)'
        try:
            peer = transport.getPeer()
            return f'{peer.host}:{peer.port}'
        except Exception:      # noqa: BLE001 - some test transports have odd peers
            return str(transport)
