"""A simulated sample-mounting robot DHS: a Twisted DCS client speaking the payloads in payloads.py.

It connects to the bridge (the DCS server), answers the handshake as ``--name`` (default
``robot``), publishes its strings, runs operations step by step (``step_time`` seconds a step) and
reconnects when the link drops. Sends in v1 or v2 framing (``--framing``); reads either.

Starting layout (deterministic, so tests and demos know what to expect):
    l: a normal cassette; ports A1..F8 (0..47) occupied, G1..L8 empty, except lB2 bad and lC3 jammed
    m: a puck adaptor; every other port occupied
    r: absent

Behaviour and failure modes:
    - mount of an empty port completes ``error port_empty``; of a bad or jammed port
      ``error port_bad``; in an absent cassette ``error no_cassette``.
    - a second operation while one runs completes ``error busy``.
    - dismount without a mounted sample completes ``error no_sample``.
    - ``stoh_abort_all`` stops the running operation, which completes ``aborted``; ``hard``
      also sets need_reset, and every later motion fails ``error need_reset`` until
      ``robot_config reset``.
    - mount and dismount raise and drop the safety flags prepare / ready / approach as they go.
"""
from __future__ import annotations

import argparse
import logging
from typing import Callable, Dict, List, Optional

from twisted.internet import task

from . import payloads as pl
from .dcs import DHSClientFactory, DHSHandler, DHSProtocol, framing

logger = logging.getLogger(__name__)

INITIAL_TYPES = {'l': '1', 'm': '3', 'r': '0'}


def initial_ports() -> Dict[str, List[str]]:
    """Return the starting port codes of each cassette."""
    left = ['1'] * 48 + ['0'] * 48
    left[pl.port_index('B', 2)] = 'b'
    left[pl.port_index('C', 3)] = 'j'
    middle = ['1' if i % 2 == 0 else '0' for i in range(pl.PORTS)]
    return {'l': left, 'm': middle, 'r': ['-'] * pl.PORTS}


class SimRobot(DHSHandler):
    """The simulated robot behind the DHS protocol.

    Args:
        step_time: seconds per motion step (a mount has 5 steps).
        heartbeat: seconds between robot_heartbeat strings (0 disables them).
        clock: IReactorTime; the reactor by default, task.Clock in unit tests.
    """

    def __init__(self, step_time: float = 1.0, heartbeat: float = 1.0, clock=None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self.step_time = step_time
        self.heartbeat_period = heartbeat
        self.proto: Optional[DHSProtocol] = None
        self.types = dict(INITIAL_TYPES)
        self.ports = initial_ports()
        self.mounted: Optional[str] = None
        self.prefetched: Optional[str] = None
        self.activity = 'idle'
        self.status = {'status': 0, 'need_reset': 0, 'need_cal': 0, 'need_clear': 0,
                       'pin_lost': 0, 'manual_mode': 0, 'warning': '', 'cal_msg': ''}
        self.safety = {'prepare': 0, 'ready': 0, 'approach': 0}
        self.fits = {'l': ('rigid', 0.021), 'm': ('translation', 0.034), 'r': ('none', 0.0)}
        self.inputs = 0x0011
        self.outputs = 0x0001
        self.heartbeat = 0
        self.current = None          # (operation, handle)
        self._call = None            # the DelayedCall of the next step
        self._beat = None
        self.received: List[tuple] = []   # every operation asked for, for tests and logs

    # -- connection -------------------------------------------------------------------------
    def connected(self, proto: DHSProtocol) -> None:
        self.proto = proto
        logger.info('connected to the DCS server as %s', proto.name)
        self.publish_all()
        if self.heartbeat_period > 0:
            self._beat = task.LoopingCall(self.beat)
            self._beat.clock = self.clock
            self._beat.start(self.heartbeat_period, now=False)

    def disconnected(self, proto: DHSProtocol) -> None:
        logger.info('DCS server connection lost')
        if self._beat is not None and self._beat.running:
            self._beat.stop()
        self._beat = None
        if self.current is not None:
            self._cancel_steps()
            self.current = None
            self.set_activity('idle', publish=False)
        self.proto = None

    def beat(self) -> None:
        self.heartbeat += 1
        self.publish('robot_heartbeat', self.heartbeat)

    # -- publishing -------------------------------------------------------------------------
    def publish(self, name: str, *value) -> None:
        if self.proto is not None:
            try:
                self.proto.set_string_completed(name, *value)
            except framing.FramingError as exc:      # a v1 message is limited to 199 bytes
                logger.error('cannot publish %s: %s', name, exc)

    def log(self, level: str, *text) -> None:
        logger.info('robot log %s: %s', level, ' '.join(str(t) for t in text))
        if self.proto is not None:
            self.proto.log(level, 'robot', *text)

    def publish_all(self) -> None:
        self.publish_status()
        self.publish('robot_state', self.activity)
        self.publish_sample()
        for cassette in pl.CASSETTES:
            self.publish_cassette(cassette)
            model, rms = self.fits[cassette]
            self.publish('robot_fit', cassette, model, f'{rms:.3f}')
        self.publish_safety()
        self.publish('robot_io', f'0x{self.inputs:04x}', f'0x{self.outputs:04x}')
        self.publish('robot_force', '0.00', '0.00', '0.00')

    def publish_status(self) -> None:
        self.publish('robot_status', pl.format_pairs(self.status))

    def publish_sample(self) -> None:
        self.publish('robot_sample', self.mounted or 'none', self.prefetched or 'none')

    def publish_cassette(self, cassette: str) -> None:
        self.publish('robot_cassette', pl.format_cassette(
            cassette, self.types[cassette], ''.join(self.ports[cassette])))

    def publish_safety(self) -> None:
        self.publish('robot_safety', pl.format_pairs(self.safety))

    def set_activity(self, activity: str, publish: bool = True) -> None:
        self.activity = activity
        if publish:
            self.publish('robot_state', activity)

    def set_safety(self, **flags) -> None:
        self.safety.update(flags)
        self.publish_safety()

    # -- operations -------------------------------------------------------------------------
    def start_operation(self, proto: DHSProtocol, operation: str, handle: str,
                        args: List[str]) -> None:
        self.received.append((operation, handle, tuple(args)))
        logger.info('operation %s %s %s', operation, handle, ' '.join(args))
        if self.current is not None:
            proto.operation_completed(operation, handle, 'error', 'busy', self.current[0],
                                      'is running')
            return
        method = getattr(self, 'op_' + operation, None)
        if method is None:
            proto.operation_completed(operation, handle, 'error', 'unknown_command', operation)
            return
        error = method(handle, args)
        if error:
            self.log('error', operation, 'refused:', *error)
            proto.operation_completed(operation, handle, 'error', *error)

    def run_steps(self, operation: str, handle: str, activity: str,
                  steps: List[tuple], finish: Callable[[], List[str]]) -> None:
        """Run ``steps`` (text, action) one per step_time, then complete with finish()'s words."""
        self.current = (operation, handle)
        self.set_activity(activity)
        remaining = list(steps)

        def next_step() -> None:
            self._call = None
            if self.current != (operation, handle) or self.proto is None:
                return
            if not remaining:
                result = finish()
                self.current = None
                self.set_activity('idle')
                self.proto.operation_completed(operation, handle, 'normal', *result)
                self.log('info', operation, 'done', *result)
                return
            text, action = remaining.pop(0)
            if action is not None:
                action()
            self.proto.operation_update(operation, handle, text)
            self._call = self.clock.callLater(self.step_time, next_step)

        self._call = self.clock.callLater(0, next_step)

    def _cancel_steps(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _motion_error(self) -> Optional[List[str]]:
        if self.status['need_reset']:
            return ['need_reset', 'reset the robot (robot_config reset) first']
        if self.status['manual_mode']:
            return ['not_ready', 'robot in manual mode']
        return None

    def _port_error(self, args: List[str]) -> tuple:
        """Return (error words or None, port name)."""
        try:
            cassette, column, row = pl.parse_port(''.join(args))
        except pl.PayloadError as exc:
            return ['bad_args', str(exc)], ''
        port = pl.port_name(cassette, column, row)
        if self.types[cassette] == '0':
            return ['no_cassette', port], port
        code = self.ports[cassette][pl.port_index(column, row)]
        if code == '0':
            return ['port_empty', port], port
        if code in 'bj':
            return ['port_bad', port, 'jammed' if code == 'j' else 'bad'], port
        return None, port

    def _set_port(self, port: str, code: str) -> None:
        cassette, column, row = pl.parse_port(port)
        self.ports[cassette][pl.port_index(column, row)] = code
        self.publish_cassette(cassette)

    def op_robot_mount(self, handle: str, args: List[str]) -> Optional[List[str]]:
        error = self._motion_error()
        if error:
            return error
        error, port = self._port_error(args)
        if error and port != self.prefetched:
            return error
        previous = self.mounted

        def put_back() -> None:
            if previous:
                self._set_port(previous, '1')
                self.mounted = None
                self.publish_sample()

        def pick() -> None:
            self._set_port(port, 'm')
            if self.prefetched == port:
                self.prefetched = None

        def mount() -> None:
            self.mounted = port
            self.publish_sample()

        steps = [('prepare goniometer', lambda: self.set_safety(prepare=1)),
                 (f'returning {previous}' if previous else 'gripper ready', put_back),
                 (f'picking {port}', pick),
                 ('approaching goniometer', lambda: self.set_safety(ready=1, approach=1)),
                 (f'mounting {port}', mount)]
        self.run_steps('robot_mount', handle, 'mounting', steps, lambda: self._done(port))
        return None

    def _done(self, port: str) -> List[str]:
        self.set_safety(prepare=0, ready=0, approach=0)
        return [port]

    def op_robot_dismount(self, handle: str, args: List[str]) -> Optional[List[str]]:
        error = self._motion_error()
        if error:
            return error
        port = self.mounted
        if port is None:
            return ['no_sample', 'nothing is mounted']

        def unmount() -> None:
            self.mounted = None
            self.publish_sample()

        steps = [('prepare goniometer', lambda: self.set_safety(prepare=1)),
                 ('approaching goniometer', lambda: self.set_safety(ready=1, approach=1)),
                 (f'unmounting {port}', unmount),
                 (f'returning {port}', lambda: self._set_port(port, '1'))]
        self.run_steps('robot_dismount', handle, 'dismounting', steps, lambda: self._done(port))
        return None

    def op_robot_prefetch(self, handle: str, args: List[str]) -> Optional[List[str]]:
        error = self._motion_error()
        if error:
            return error
        error, port = self._port_error(args)
        if error:
            return error

        def fetched() -> None:
            self.prefetched = port
            self.publish_sample()

        self.run_steps('robot_prefetch', handle, 'prefetching',
                       [(f'picking {port}', None), ('holding', fetched)], lambda: [port])
        return None

    def op_robot_standby(self, handle: str, args: List[str]) -> Optional[List[str]]:
        self.run_steps('robot_standby', handle, 'standby', [('parking', None)], lambda: ['parked'])
        return None

    def op_robot_config(self, handle: str, args: List[str]) -> Optional[List[str]]:
        if not args or args[0] not in pl.CONFIG_COMMANDS:
            return ['bad_args', f'use one of {",".join(pl.CONFIG_COMMANDS)}']
        sub = args[0]
        if sub == 'probe':
            which = args[1] if len(args) > 1 else 'all'
            cassettes = pl.CASSETTES if which == 'all' else (which,)
            if any(c not in pl.CASSETTES for c in cassettes):
                return ['bad_args', 'probe l|m|r|all']
            steps = [(f'probing {c}', lambda c=c: self.publish_cassette(c)) for c in cassettes]
            self.run_steps('robot_config', handle, 'probing', steps, lambda: ['probe', which])
        elif sub == 'calibrate':
            def fitted() -> None:
                for cassette in pl.CASSETTES:
                    if self.types[cassette] != '0':
                        self.fits[cassette] = ('rigid', 0.012)
                        self.publish('robot_fit', cassette, 'rigid', '0.012')
                self.status['need_cal'] = 0
                self.status['cal_msg'] = 'calibrated'
                self.publish_status()
            self.run_steps('robot_config', handle, 'calibrating',
                           [('touching posts', None), ('fitting', fitted)], lambda: ['calibrate'])
        elif sub == 'reset':
            def reset() -> None:
                self.status.update(need_reset=0, pin_lost=0, status=0, warning='')
                self.publish_status()
            self.run_steps('robot_config', handle, 'resetting', [('resetting', reset)],
                           lambda: ['reset'])
        else:
            self.status.update(need_clear=0, pin_lost=0, warning='')
            self.publish_status()
            self.proto.operation_completed('robot_config', handle, 'normal', 'clear')
        return None

    def abort_all(self, proto: DHSProtocol, mode: str) -> None:
        self.log('warning', 'abort', mode)
        if mode == 'hard':
            self.status.update(need_reset=1, status=1, warning='hard abort: reset needed')
            self.publish_status()
        if self.current is None:
            return
        operation, handle = self.current
        self._cancel_steps()
        self.current = None
        self.set_safety(prepare=0, ready=0, approach=0)
        self.set_activity('idle')
        proto.operation_completed(operation, handle, 'aborted', mode)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description='Simulated sample-mounting robot DHS (DCS client)')
    parser.add_argument('--host', default='127.0.0.1', help='DCS server host (default 127.0.0.1)')
    parser.add_argument('--port', type=int, default=14242, help='DCS server port (default 14242)')
    parser.add_argument('--name', default='robot', help='DHS name sent in the handshake')
    parser.add_argument('--framing', choices=['v1', 'v2'], default='v2',
                        help='framing of the messages this DHS sends (default v2)')
    parser.add_argument('--step-time', type=float, default=1.0,
                        help='seconds per motion step (default 1.0; a mount has 5 steps)')
    parser.add_argument('--heartbeat', type=float, default=1.0,
                        help='seconds between robot_heartbeat strings (0 = none)')
    parser.add_argument('-v', '--verbose', action='store_true', help='log every message')
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    from twisted.internet import reactor
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format='%(asctime)s %(levelname)s %(name)s: %(message)s')
    robot = SimRobot(step_time=args.step_time, heartbeat=args.heartbeat)
    factory = DHSClientFactory(args.name, robot, framing.parse_framing(args.framing))
    logger.info('simulated robot DHS %s connecting to %s:%d (framing %s)', args.name, args.host,
                args.port, args.framing)
    reactor.connectTCP(args.host, args.port, factory)
    reactor.run()
