"""A Twisted implementation of the DCS (Blu-Ice) protocol: framing, server side and DHS side.

Free of EPICS, so it unit-tests with twisted.test.proto_helpers.StringTransport and task.Clock.
"""
from .framing import V1, V2, Decoder, FramingError, Message, encode, parse_framing
from .server import (Completion, DCSListener, DCSServerFactory, DCSServerProtocol, NotConnected,
                     Operation)
from .dhs import DHSClientFactory, DHSHandler, DHSProtocol

__all__ = ['V1', 'V2', 'Decoder', 'FramingError', 'Message', 'encode', 'parse_framing',
           'Completion', 'DCSListener', 'DCSServerFactory', 'DCSServerProtocol', 'NotConnected',
           'Operation', 'DHSClientFactory', 'DHSHandler', 'DHSProtocol']
