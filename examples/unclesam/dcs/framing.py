"""DCS message framing: encode and decode version 1 and version 2 messages.

Version 2 ("xos2"): a 26-byte ASCII header, then the text, then an optional binary part. The header
holds the text length right-justified in 12 characters, the binary length right-justified in 13
characters, and one space. The text is the message words separated by spaces and ends with
``' \\x00'``, which is counted in the text length.

Version 1 ("xos1"): fixed 200-byte messages, the text padded with NUL bytes.

The decoder tells the two apart at every message boundary: a v2 header is made only of digits,
spaces and NULs and holds two integers; the first 26 bytes of a v1 message are message text, which
always starts with a letter (``htos_...``, ``stoh_...``). Per-message detection also copes with the
real DCSS habit of exchanging the first two messages as 200-byte v1 messages and then switching to
v2. Bytes are buffered, so a message split across TCP reads and several messages coalesced in one
read both decode the same way.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional

V1 = 1
V2 = 2
V1_SIZE = 200
HEADER_SIZE = 26
TEXT_WIDTH = 12
BINARY_WIDTH = 13
MAX_TEXT_V2 = 10 ** TEXT_WIDTH - 1
MAX_BINARY_V2 = 1024 * 1024 * 64     # refuse absurd binary parts instead of buffering forever
FRAMINGS = {'v1': V1, 'v2': V2}


class FramingError(ValueError):
    """A message cannot be encoded, or the peer sent bytes that are not a DCS message."""


class Message(NamedTuple):
    """One decoded message: its words, its binary part and the framing version it came in."""

    words: List[str]
    binary: bytes
    version: int

    @property
    def command(self) -> str:
        return self.words[0] if self.words else ''

    @property
    def text(self) -> str:
        return ' '.join(self.words)


def parse_framing(value) -> int:
    """Return V1 or V2 for 'v1', 'v2', 1 or 2; raise FramingError naming the valid choices."""
    if value in (V1, V2):
        return value
    try:
        return FRAMINGS[str(value).lower()]
    except KeyError:
        raise FramingError(f'unknown DCS framing {value!r}: use one of v1, v2') from None


def encode(text: str, version: int = V2, binary: bytes = b'') -> bytes:
    """Return the bytes of one message holding ``text`` (and ``binary``, v2 only).

    Raises FramingError when the text does not fit a v1 message (199 bytes and a NUL), holds a NUL,
    or when a binary part is asked of v1.
    """
    data = text.encode('latin-1', errors='replace')
    if b'\x00' in data:
        raise FramingError('DCS message text must not contain NUL bytes')
    if version == V1:
        if binary:
            raise FramingError('version 1 DCS messages cannot carry a binary part')
        if len(data) >= V1_SIZE:
            raise FramingError(
                f'message of {len(data)} bytes does not fit a {V1_SIZE}-byte v1 DCS message '
                f'(at most {V1_SIZE - 1}): {text[:40]!r}...')
        return data.ljust(V1_SIZE, b'\x00')
    if version != V2:
        raise FramingError(f'unknown DCS framing version {version!r}: use 1 or 2')
    body = data + b' \x00'
    header = b'%*d%*d ' % (TEXT_WIDTH, len(body), BINARY_WIDTH, len(binary))
    return header + body + binary


def _parse_header(header: bytes) -> Optional[tuple]:
    """Return (text length, binary length) if ``header`` is a v2 header, else None."""
    if len(header) != HEADER_SIZE or header[-1:] not in (b' ', b'\x00'):
        return None
    if header.strip(b' \x00') == b'':
        return None
    if any(c not in b'0123456789 \x00' for c in header):
        return None
    text_field = header[:TEXT_WIDTH].strip(b' \x00')
    binary_field = header[TEXT_WIDTH:TEXT_WIDTH + BINARY_WIDTH].strip(b' \x00')
    if not text_field.isdigit() or (binary_field and not binary_field.isdigit()):
        return None
    return int(text_field), int(binary_field or b'0')


def _split_text(data: bytes) -> List[str]:
    return data.split(b'\x00', 1)[0].decode('latin-1').split()


class Decoder:
    """Accumulates received bytes and returns the complete messages they hold."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.version: Optional[int] = None    # framing of the last message received

    @property
    def pending(self) -> int:
        """Number of bytes buffered that do not yet make a complete message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> List[Message]:
        """Add ``data`` and return every message it completes, in order.

        Raises FramingError if a v2 header announces a binary part larger than MAX_BINARY_V2.
        """
        self._buffer.extend(data)
        messages = []
        while True:
            message = self._next()
            if message is None:
                return messages
            messages.append(message)

    def _next(self) -> Optional[Message]:
        buf = self._buffer
        if len(buf) < HEADER_SIZE:
            return None
        lengths = _parse_header(bytes(buf[:HEADER_SIZE]))
        if lengths is None:
            if len(buf) < V1_SIZE:
                return None
            raw = bytes(buf[:V1_SIZE])
            del buf[:V1_SIZE]
            self.version = V1
            return Message(_split_text(raw), b'', V1)
        text_len, binary_len = lengths
        if binary_len > MAX_BINARY_V2:
            raise FramingError(f'v2 DCS header announces a {binary_len}-byte binary part; '
                               f'the limit is {MAX_BINARY_V2}')
        total = HEADER_SIZE + text_len + binary_len
        if len(buf) < total:
            return None
        text = bytes(buf[HEADER_SIZE:HEADER_SIZE + text_len])
        binary = bytes(buf[HEADER_SIZE + text_len:total])
        del buf[:total]
        self.version = V2
        return Message(_split_text(text), binary, V2)
