"""The robot's DCS message payloads: the documented subset this bridge and the simulated DHS speak.

Real robot payloads are not public; this subset follows the shape of the Stanford Auto Mounter as
served through Blu-Ice, and every byte of it is described here.

Ports: three cassette positions ``l``, ``m``, ``r`` (left, middle, right), each with 96 ports in
12 columns ``A``..``L`` of 8 rows ``1``..``8``. In strings a port is one word, ``lA1``; as
operation arguments it is three words, ``l A 1``. The port index (0..95) used in the port-state
arrays is ``column * 8 + row - 1`` (``A1`` = 0, ``A8`` = 7, ``B1`` = 8, ``L8`` = 95).

Operations (``stoh_start_operation <op> <handle> <args>``), completed with ``normal <result>``,
``error <reason> <details...>`` or ``aborted``:
    robot_mount <c> <col> <row>      mount that port's sample (a mounted sample is first put back)
    robot_dismount                   put the mounted sample back in its port
    robot_prefetch <c> <col> <row>   pick that port's sample into the gripper, ready to mount
    robot_standby                    park the robot
    robot_config <sub> [args]        probe l|m|r|all, calibrate, reset, clear
Error reasons: busy, not_ready, need_reset, no_cassette, port_empty, port_bad, no_sample,
bad_args, unknown_command.

Strings (``htos_set_string_completed <name> normal <value>``):
    robot_status     ``status: <int> need_reset: 0|1 need_cal: 0|1 need_clear: 0|1
                     pin_lost: 0|1 manual_mode: 0|1 warning: {text} cal_msg: {text}``
                     (``key: value`` pairs; braces group words, ``{}`` is empty)
    robot_state      ``<activity>``, one of ACTIVITIES
    robot_sample     ``<mounted port>|none <prefetched port>|none``
    robot_cassette   ``<c> <type> <96 port codes>`` (one message per cassette, so each fits in a
                     200-byte v1 message). Type codes: TYPE_CODES. Port codes: PORT_CODES.
    robot_fit        ``<c> <model> <rms mm>``, model one of FIT_MODELS
    robot_safety     ``prepare: 0|1 ready: 0|1 approach: 0|1``
    robot_io         ``<inputs hex> <outputs hex>``
    robot_force      ``<fx> <fy> <fz>`` (N)
    robot_heartbeat  ``<counter>``, sent by the DHS every heartbeat period
Logs: ``htos_log info|warning|error <source> <text...>``.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

CASSETTES = ('l', 'm', 'r')
COLUMNS = 'ABCDEFGHIJKL'
ROWS = 8
PORTS = len(COLUMNS) * ROWS      # 96

# port code -> value in the SHORT port-state arrays
PORT_CODES = {'u': -1, '0': 0, '1': 1, 'm': 2, 'b': 3, 'j': 4, '-': 5}
PORT_STATES = ['EMPTY', 'OCCUPIED', 'MOUNTED', 'BAD', 'JAM', 'ABSENT']   # index = code value
# cassette type code -> index in CASSETTE_TYPES
TYPE_CODES = {'u': 0, '0': 1, '1': 2, '2': 3, '3': 4}
CASSETTE_TYPES = ['UNKNOWN', 'ABSENT', 'CASSETTE', 'CALIBRATION', 'ADAPTOR']
FIT_MODELS = ['none', 'translation', 'rigid', 'affine']
ACTIVITIES = ['idle', 'standby', 'mounting', 'dismounting', 'prefetching', 'probing',
              'calibrating', 'resetting', 'aborting', 'fault']
CONFIG_COMMANDS = ('probe', 'calibrate', 'reset', 'clear')
STATUS_KEYS = ('status', 'need_reset', 'need_cal', 'need_clear', 'pin_lost', 'manual_mode',
               'warning', 'cal_msg')
SAFETY_KEYS = ('prepare', 'ready', 'approach')

_PORT_RE = re.compile(r'^\s*([lmr])\s*([a-l])\s*([1-8])\s*$', re.IGNORECASE)


class PayloadError(ValueError):
    """A payload or port name does not follow the documented format."""


def parse_port(text: str) -> Tuple[str, str, int]:
    """Return (cassette, column, row) for 'lA1', 'L A 1', 'r l 8'...; raise PayloadError."""
    match = _PORT_RE.match(text or '')
    if not match:
        raise PayloadError(f'bad port {text!r}: use <cassette l|m|r><column A-L><row 1-8>, '
                           f'e.g. lA1')
    return match.group(1).lower(), match.group(2).upper(), int(match.group(3))


def port_name(cassette: str, column: str, row: int) -> str:
    """Return the one-word port name, e.g. 'lA1'."""
    return f'{cassette}{column}{row}'


def port_index(column: str, row: int) -> int:
    """Return the 0..95 index of a port in its cassette's port-state array."""
    return COLUMNS.index(column) * ROWS + row - 1


def parse_pairs(value: str) -> Dict[str, str]:
    """Parse ``key: value`` pairs where a value is one word or a ``{braced group}``."""
    pairs = {}
    for key, braced, word in re.findall(r'(\w+):\s*(?:\{([^}]*)\}|(\S*))', value):
        pairs[key] = braced if braced or not word else word
    return pairs


def format_pairs(pairs: Dict[str, object]) -> str:
    """Format ``key: value`` pairs; values with spaces or empty ones are braced."""
    parts = []
    for key, value in pairs.items():
        text = str(value)
        if not text or ' ' in text or '{' in text:
            text = '{' + text.replace('{', '(').replace('}', ')') + '}'
        parts.append(f'{key}: {text}')
    return ' '.join(parts)


def flag(pairs: Dict[str, str], key: str) -> int:
    """Return 1 if pairs[key] is a true number, else 0."""
    try:
        return 1 if int(pairs.get(key, '0')) else 0
    except ValueError:
        return 0


def parse_cassette(value: str) -> Tuple[str, int, List[int]]:
    """Parse a robot_cassette value into (cassette, type index, 96 port-state values)."""
    words = value.split()
    if len(words) != 3 or words[0] not in CASSETTES or words[1] not in TYPE_CODES \
            or len(words[2]) != PORTS or any(c not in PORT_CODES for c in words[2]):
        raise PayloadError(f'bad robot_cassette value {value[:60]!r}...: expected '
                           f'<l|m|r> <type code> <{PORTS} port codes>')
    return words[0], TYPE_CODES[words[1]], [PORT_CODES[c] for c in words[2]]


def format_cassette(cassette: str, type_code: str, codes: str) -> str:
    """Format a robot_cassette value."""
    return f'{cassette} {type_code} {codes}'


def parse_sample(value: str) -> Tuple[Optional[str], Optional[str]]:
    """Parse a robot_sample value into (mounted port or None, prefetched port or None)."""
    words = value.split()
    words += ['none'] * (2 - len(words))
    result = []
    for word in words[:2]:
        if word == 'none':
            result.append(None)
        else:
            parse_port(word)
            result.append(word)
    return result[0], result[1]


def parse_fit(value: str) -> Tuple[str, int, float]:
    """Parse a robot_fit value into (cassette, model index, rms in mm)."""
    words = value.split()
    try:
        if len(words) != 3 or words[0] not in CASSETTES:
            raise ValueError(value)
        return words[0], FIT_MODELS.index(words[1]), float(words[2])
    except ValueError:
        raise PayloadError(f'bad robot_fit value {value!r}: expected <l|m|r> '
                           f'<{"|".join(FIT_MODELS)}> <rms mm>') from None
