"""Unit tests of examples/unclesam/dcs/framing.py: v1 and v2 framing, split and coalesced reads."""

import os
import sys

import pytest

EXAMPLES = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir,
                                        'examples'))
if EXAMPLES not in sys.path:
    sys.path.insert(0, EXAMPLES)

from unclesam.dcs import framing  # noqa: E402

TEXTS = ['stoc_send_client_type', 'htos_client_is_hardware robot',
         'htos_operation_update robot_mount 1.7 moving to port l A 1',
         'htos_operation_completed robot_mount 1.7 normal l A 1']


def test_v2_header_layout():
    """A v2 message is a 26-byte header (12 + 13 right-justified digits and a space), then text
    ending in ' \\x00' whose length counts both."""
    data = framing.encode('abc def', framing.V2)
    assert data[:26] == b'%12d%13d ' % (9, 0)
    assert data[:12] == b'           9'
    assert data[12:25] == b'            0'
    assert data[25:26] == b' '
    assert data[26:] == b'abc def \x00'


def test_v2_binary_part_round_trips():
    """The v2 binary length is in the header and the binary bytes follow the text."""
    data = framing.encode('img 1', framing.V2, binary=b'\x00\x01\x02')
    assert data[:26] == b'%12d%13d ' % (7, 3)
    (message,) = framing.Decoder().feed(data)
    assert message.words == ['img', '1'] and message.binary == b'\x00\x01\x02'


def test_v1_is_200_bytes_nul_padded():
    """A v1 message is exactly 200 bytes: the text then NULs."""
    data = framing.encode('htos_client_is_hardware robot', framing.V1)
    assert len(data) == 200
    assert data.startswith(b'htos_client_is_hardware robot\x00')
    assert data.rstrip(b'\x00') == b'htos_client_is_hardware robot'


def test_v1_too_long_is_a_clear_error():
    """Text that does not fit 200 bytes with a NUL raises FramingError saying so."""
    with pytest.raises(framing.FramingError, match='does not fit a 200-byte v1'):
        framing.encode('x' * 200, framing.V1)
    assert len(framing.encode('x' * 199, framing.V1)) == 200


def test_nul_in_text_is_refused():
    """Text holding a NUL cannot be framed."""
    with pytest.raises(framing.FramingError, match='NUL'):
        framing.encode('a\x00b', framing.V2)


@pytest.mark.parametrize('version', [framing.V1, framing.V2])
def test_byte_by_byte(version):
    """Messages fed one byte at a time decode only when complete, in order, with their version."""
    decoder = framing.Decoder()
    stream = b''.join(framing.encode(text, version) for text in TEXTS)
    got = []
    for i in range(len(stream)):
        got.extend(decoder.feed(stream[i:i + 1]))
    assert [m.text for m in got] == TEXTS
    assert {m.version for m in got} == {version}
    assert decoder.pending == 0


@pytest.mark.parametrize('version', [framing.V1, framing.V2])
def test_coalesced_in_one_read(version):
    """Several messages in one read all decode from that one feed."""
    decoder = framing.Decoder()
    got = decoder.feed(b''.join(framing.encode(text, version) for text in TEXTS))
    assert [m.text for m in got] == TEXTS
    assert decoder.version == version


@pytest.mark.parametrize('version', [framing.V1, framing.V2])
def test_split_and_coalesced(version):
    """Chunks that cut messages anywhere (header, text, padding) still give every message once."""
    stream = b''.join(framing.encode(text, version) for text in TEXTS)
    for size in (3, 7, 25, 26, 27, 150, 199, 201, 333):
        decoder = framing.Decoder()
        got = []
        for i in range(0, len(stream), size):
            got.extend(decoder.feed(stream[i:i + size]))
        assert [m.text for m in got] == TEXTS, f'chunk size {size}'


def test_partial_message_waits():
    """A message missing its last byte gives nothing; the last byte completes it."""
    decoder = framing.Decoder()
    data = framing.encode('htos_log info robot hello', framing.V2)
    assert decoder.feed(data[:-1]) == []
    assert decoder.pending == len(data) - 1
    (message,) = decoder.feed(data[-1:])
    assert message.words == ['htos_log', 'info', 'robot', 'hello']


def test_version_detected_per_message():
    """A peer that sends its first message as v1 and then v2 is read correctly, and the decoder
    reports the framing of the latest message."""
    decoder = framing.Decoder()
    assert decoder.version is None
    got = decoder.feed(framing.encode(TEXTS[1], framing.V1) + framing.encode(TEXTS[2], framing.V2))
    assert [(m.text, m.version) for m in got] == [(TEXTS[1], 1), (TEXTS[2], 2)]
    assert decoder.version == framing.V2


def test_v1_short_first_bytes_wait_for_200():
    """26 bytes of text are not mistaken for a v2 header: the decoder waits for 200 bytes."""
    decoder = framing.Decoder()
    data = framing.encode('htos_client_is_hardware robot', framing.V1)
    assert decoder.feed(data[:150]) == []
    (message,) = decoder.feed(data[150:])
    assert message.version == framing.V1 and message.words[1] == 'robot'


def test_absurd_binary_length_is_refused():
    """A v2 header announcing a huge binary part raises FramingError instead of buffering."""
    with pytest.raises(framing.FramingError, match='binary part'):
        framing.Decoder().feed(b'%12d%13d ' % (5, 10 ** 12))


def test_parse_framing():
    """'v1'/'v2' (any case) and 1/2 are framings; anything else is a clear error."""
    assert framing.parse_framing('V1') == 1 and framing.parse_framing(2) == 2
    with pytest.raises(framing.FramingError, match='use one of v1, v2'):
        framing.parse_framing('v3')
