"""unclesam: serves a DCS (Blu-Ice) sample-mounting robot as EPICS PVs.

The bridge plays the DCS server (the role DCSS plays in Blu-Ice): it listens on a TCP port
(127.0.0.1:14242 by default) and the robot's DHS connects to it. EPICS commands become DCS
operations with handles ``1.<n>``; the DHS's operation updates, completions, strings and log lines
become PV updates. The message payloads are the documented subset in payloads.py.

PVs (all ``<device>:<name>``; R = read-only, W = clients write it):

Connection: connected (R, DISCONNECTED/CONNECTED), dhs_name, framing (NONE/V1/V2), dcs_port,
    connections, disconnects, conn_time (s), idle_time (s since the last DHS message), stale
    (no DHS message for ``stale_after`` s), heartbeat (the DHS's robot_heartbeat counter), alive
    (bridge counter, +1 a second), uptime (s), health (OK/WARNING/ERROR/OFFLINE), health_msg,
    enable (W, DISABLED/ENABLED: commands are refused while DISABLED).
Commands (W): mount (port such as ``lA1``; starts robot_mount l A 1), prefetch (port), dismount,
    abort (stoh_abort_all soft|hard as abort_mode says), abort_mode (W, SOFT/HARD), standby,
    config (NONE / PROBE ALL / PROBE L|M|R / CALIBRATE / RESET / CLEAR: starts robot_config and
    returns to NONE), probe_l, probe_m, probe_r, reset. Buttons are momentary (1, then back to 0);
    mount and prefetch go back to '' once the operation is started or refused.
Operations: handle (last handle, e.g. ``1.7``), handle_count (its counter), operation, op_args,
    op_state (IDLE/BUSY/NORMAL/ERROR/ABORTED/REFUSED), op_msg (last update or result text),
    op_time (s the running operation has taken), last_op_time, busy, op_count, error_count,
    abort_count, refused_count, mount_count, dismount_count, last_mount_time.
Robot status: status, state (IDLE/STANDBY/MOUNTING/...), need_reset, need_cal, need_clear,
    pin_lost, manual_mode, needs (calc: any need flag), error, error_msg, warning, cal_msg.
Logs: log (last line, ``<level> <source>: <text>``), log_level, log_count, sample_log (last
    mount/dismount event with its time).
Sample: sample (mounted port or ''), sample_mounted, prefetched, sample_time (s since mounted).
Safety: prepare, ready, approach (from robot_safety), prepare_out / ready_out / approach_out
    (calcout records writing them to ``$(gonio):robot_prepare|ready|approach``), safe (calc:
    neither prepare nor approach).
Cassettes: ports_l / ports_m / ports_r (96 SHORT each: -1 unknown, 0 empty, 1 occupied,
    2 mounted, 3 bad, 4 jam, 5 absent; index = column * 8 + row - 1), type_l|m|r
    (UNKNOWN/ABSENT/CASSETTE/CALIBRATION/ADAPTOR), full_l|m|r, empty_l|m|r, bad_l|m|r, fit_l|m|r
    (NONE/TRANSLATION/RIGID/AFFINE), fit_rms_l|m|r (mm).
I/O: inputs, outputs (bitmasks), force_x, force_y, force_z (N).

When the DHS disconnects, ``connected`` goes to DISCONNECTED, a running operation ends in ERROR
("DHS disconnected"), and every command is refused with a log line saying so until the DHS is back.
"""
from __future__ import annotations

import logging
import time
from typing import Dict, List, Optional

from twisted.internet import defer, error

import devioc
from devioc import models

from . import payloads as pl
from .dcs import Completion, DCSListener, DCSServerFactory, NotConnected
from .robot import CONFIG_ARGS, Robot

logger = logging.getLogger(__name__)

OPERATIONS = ['robot_mount', 'robot_dismount', 'robot_prefetch', 'robot_standby', 'robot_config']
STRINGS = ['robot_status', 'robot_state', 'robot_sample', 'robot_cassette', 'robot_fit',
           'robot_safety', 'robot_io', 'robot_force', 'robot_heartbeat']
LOG_LEVELS = {'info': 0, 'warning': 1, 'error': 2}
DEFAULT_DCS_PORT = 14242


class RobotError(RuntimeError):
    """A remote call of a robot operation was refused, or the operation ended in error or aborted."""


class BridgeError(RuntimeError):
    """The bridge cannot start (for example, its DCS port is taken)."""


class RobotBridge(DCSListener):
    """Runs the Robot model and a DCS server, and translates between them.

    Args:
        device: EPICS device name (PV prefix).
        macros: extra macros for the model; ``gonio`` defaults to ``<device>-GONIO``.
        port: DCS TCP port to listen on (0 picks a free one; see ``self.port``).
        interface: address to listen on (127.0.0.1 unless you serve a robot on another host).
        dhs_name: only accept a DHS of this name (None accepts any).
        stale_after: seconds without a DHS message before ``stale`` is set.
        reactor: the Twisted reactor (the global one by default).
    """

    def __init__(self, device: str, macros: Optional[Dict[str, str]] = None,
                 port: int = DEFAULT_DCS_PORT, interface: str = '127.0.0.1',
                 dhs_name: Optional[str] = None, stale_after: float = 5.0, reactor=None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.stale_after = stale_after
        self.started = time.time()
        self.connected_at: Optional[float] = None
        self.last_message = time.time()
        self.op_started: Optional[float] = None
        self.mounted_at: Optional[float] = None
        self.current = None              # the running Operation, if any
        self.alive = 0
        self.counts = {'connections': 0, 'disconnects': 0, 'op_count': 0, 'error_count': 0,
                       'abort_count': 0, 'refused_count': 0, 'mount_count': 0,
                       'dismount_count': 0, 'log_count': 0}
        self.robot_status: Dict[str, str] = {}
        self.last_refusal: Optional[str] = None
        all_macros = {'gonio': f'{device}-GONIO'}
        all_macros.update(macros or {})
        # operators' settings (enable, abort_mode) are autosaved; a softIoc that dies is restarted
        self.ioc = Robot(device, callbacks=self, macros=all_macros, restart=True)
        self.factory = DCSServerFactory(self, OPERATIONS, STRINGS, client_id=1, dhs_name=dhs_name,
                                        clock=reactor)
        try:
            self.listener = reactor.listenTCP(port, self.factory, interface=interface)
        except error.CannotListenError as exc:
            self.ioc.shutdown()
            raise BridgeError(f'cannot listen for the robot DHS on {interface}:{port} '
                              f'({exc.socketError}); is another bridge running? '
                              f'choose another --port') from None
        self.port = self.listener.getHost().port
        self.ioc.dcs_port.put(self.port)
        logger.info('listening for the robot DHS on %s:%d', interface, self.port)

    # -- helpers ------------------------------------------------------------------------------
    def count(self, name: str) -> None:
        self.counts[name] += 1
        getattr(self.ioc, name).put(self.counts[name])

    def post_log(self, level: str, source: str, text: str) -> None:
        """Show one log line on the log PVs and in the bridge's own log."""
        line = f'{level} {source}: {text}'[:199]
        logger.log({'error': logging.ERROR, 'warning': logging.WARNING}.get(level, logging.INFO),
                   '%s', line)
        self.ioc.log.put(line)
        self.ioc.log_level.put(LOG_LEVELS.get(level, 0))
        self.count('log_count')

    def refuse(self, command: str, why: str) -> None:
        self.last_refusal = why  # for the remote procedures (devioc.rpc), which raise it
        self.post_log('warning', 'bridge', f'refused {command}: {why}')
        self.ioc.op_state.put(5)
        self.ioc.op_msg.put(f'refused {command}: {why}'[:199])
        self.count('refused_count')

    def command(self, command: str, operation: str, *args: str) -> None:
        """Start ``operation`` for the EPICS ``command``, or refuse it with a log line."""
        if not self.factory.connected:
            self.refuse(command, 'robot DHS not connected')
            return
        if self.ioc.enable.get() != 1:
            self.refuse(command, 'robot commands disabled (enable is DISABLED)')
            return
        if self.current is not None:
            self.refuse(command, f'busy with {self.current.name} {self.current.handle}')
            return
        try:
            self.current = self.factory.start_operation(operation, *args)
        except (NotConnected, ValueError) as exc:
            self.refuse(command, str(exc))

    # -- EPICS commands -----------------------------------------------------------------------
    def _port_command(self, command: str, operation: str, pv, value) -> None:
        text = (value or '').strip()
        if not text:
            return
        pv.put('')
        try:
            cassette, column, row = pl.parse_port(text)
        except pl.PayloadError as exc:
            self.refuse(f'{command} {text}', str(exc))
            return
        self.command(f'{command} {text}', operation, cassette, column, str(row))

    def do_mount(self, pv, value, ioc) -> None:
        self._port_command('mount', 'robot_mount', pv, value)

    def do_prefetch(self, pv, value, ioc) -> None:
        self._port_command('prefetch', 'robot_prefetch', pv, value)

    def do_dismount(self, pv, value, ioc) -> None:
        if value:
            self.command('dismount', 'robot_dismount')

    def do_standby(self, pv, value, ioc) -> None:
        if value:
            self.command('standby', 'robot_standby')

    def do_config(self, pv, value, ioc) -> None:
        if not value:
            return
        pv.put(0)
        args = CONFIG_ARGS.get(int(value))
        if args:
            self.command('config ' + ' '.join(args), 'robot_config', *args)

    def do_probe_l(self, pv, value, ioc) -> None:
        if value:
            self.command('probe l', 'robot_config', 'probe', 'l')

    def do_probe_m(self, pv, value, ioc) -> None:
        if value:
            self.command('probe m', 'robot_config', 'probe', 'm')

    def do_probe_r(self, pv, value, ioc) -> None:
        if value:
            self.command('probe r', 'robot_config', 'probe', 'r')

    def do_reset(self, pv, value, ioc) -> None:
        if value:
            self.command('reset', 'robot_config', 'reset')

    def do_abort(self, pv, value, ioc) -> None:
        if not value:
            return
        mode = 'hard' if ioc.abort_mode.get() == 1 else 'soft'
        try:
            self.factory.abort_all(mode)
        except NotConnected:
            self.refuse('abort', 'robot DHS not connected')
            return
        self.post_log('warning', 'bridge', f'abort ({mode}) sent')

    # -- remote procedures (devioc.rpc): the same commands as calls that end with the operation ---
    # ``devioc call ROBOT-1 mount port=lA1`` or ``Client('ROBOT-1').mount('lA1')`` returns the DHS's
    # completion text once the robot has finished, or raises RobotError (refused, error, aborted).
    def _operation(self, command: str, operation: str, *args: str) -> defer.Deferred:
        before, self.last_refusal = self.current, None
        self.command(command, operation, *args)
        op = self.current
        if op is None or op is before:
            raise RobotError(f'refused {command}: {self.last_refusal or "not started"}')

        def cancel(_: defer.Deferred) -> None:  # a client's cancel, or the call's timeout
            try:
                self.factory.abort_all('soft')
                self.post_log('warning', 'bridge', f'abort (soft) sent: the call of {command} was cancelled')
            except NotConnected:
                pass

        result = defer.Deferred(canceller=cancel)

        def ended(completion: Completion) -> Completion:
            if not result.called:
                if completion.status == 'normal':
                    result.callback(completion.text)
                else:
                    result.errback(RobotError(f'{completion.operation} {completion.handle} {completion.status}: '
                                              f'{completion.text}'))
            return completion

        op.deferred.addCallback(ended)
        return result

    def _port(self, command: str, port: str) -> tuple:
        try:
            cassette, column, row = pl.parse_port(port.strip())
        except pl.PayloadError as exc:
            self.refuse(f'{command} {port}', str(exc))
            raise RobotError(f'refused {command} {port}: {exc}') from None
        return cassette, column, str(row)

    @models.function(timeout=600)
    def mount(self, port: str) -> str:
        """Mount the sample at port (e.g. lA1); returns when the robot has finished."""
        return self._operation(f'mount {port}', 'robot_mount', *self._port('mount', port))

    @models.function(timeout=600)
    def prefetch(self, port: str) -> str:
        """Prefetch the sample at port (e.g. lA1) into the gripper."""
        return self._operation(f'prefetch {port}', 'robot_prefetch', *self._port('prefetch', port))

    @models.function(timeout=600)
    def dismount(self) -> str:
        """Put the mounted sample back; returns when the robot has finished."""
        return self._operation('dismount', 'robot_dismount')

    @models.function(timeout=600)
    def standby(self) -> str:
        """Send the robot to standby."""
        return self._operation('standby', 'robot_standby')

    @models.function(timeout=600)
    def reset(self) -> str:
        """Reset the robot (robot_config reset)."""
        return self._operation('reset', 'robot_config', 'reset')

    @models.function(timeout=10)
    def abort(self, mode: str = 'soft') -> str:
        """Abort every running operation (mode soft or hard); returns at once."""
        if mode not in ('soft', 'hard'):
            raise ValueError(f'mode must be soft or hard, not {mode!r}')
        try:
            self.factory.abort_all(mode)
        except NotConnected:
            self.refuse('abort', 'robot DHS not connected')
            raise RobotError('refused abort: robot DHS not connected') from None
        self.post_log('warning', 'bridge', f'abort ({mode}) sent')
        return mode
    # -- end remote procedures

    # -- DCS events ---------------------------------------------------------------------------
    def dhs_connected(self, name: str, version: int) -> None:
        self.connected_at = self.last_message = time.time()
        self.ioc.connected.put(1)
        self.ioc.dhs_name.put(name[:39])
        self.ioc.framing.put(version)
        self.count('connections')
        self.post_log('info', 'bridge', f'robot DHS {name} connected (framing v{version})')
        self.update_health()

    def dhs_disconnected(self, name: str, reason: str) -> None:
        self.connected_at = None
        self.ioc.connected.put(0)
        self.ioc.framing.put(0)
        self.count('disconnects')
        self.post_log('error', 'bridge', f'robot DHS {name} disconnected: {reason}; '
                                         f'commands refused until it reconnects')
        self.update_health()

    def message_received(self, text: str) -> None:
        self.last_message = time.time()

    def operation_started(self, operation: str, handle: str, args: List[str]) -> None:
        self.op_started = time.time()
        self.ioc.handle.put(handle)
        self.ioc.handle_count.put(self.factory.counter)
        self.ioc.operation.put(operation)
        self.ioc.op_args.put(' '.join(args)[:39])
        self.ioc.op_state.put(1)
        self.ioc.op_msg.put('started')
        self.ioc.busy.put(1)
        self.ioc.op_time.put(0.0)
        self.post_log('info', 'bridge', f'{operation} {handle} started {" ".join(args)}')

    def operation_update(self, operation: str, handle: str, text: str) -> None:
        self.ioc.op_msg.put(text[:199])

    def operation_completed(self, completion: Completion) -> None:
        if self.current is not None and self.current.handle == completion.handle:
            self.current = None
        duration = time.time() - (self.op_started or time.time())
        self.op_started = None
        state = {'normal': 2, 'error': 3, 'aborted': 4}[completion.status]
        self.ioc.op_state.put(state)
        self.ioc.op_msg.put(f'{completion.status} {completion.text}'.strip()[:199])
        self.ioc.busy.put(0)
        self.ioc.last_op_time.put(round(duration, 2))
        self.count('op_count')
        if completion.status == 'error':
            self.count('error_count')
            self.ioc.error.put(1)
            self.ioc.error_msg.put(f'{completion.operation} {completion.handle}: '
                                   f'{completion.text}'[:199])
        elif completion.status == 'aborted':
            self.count('abort_count')
        else:
            self.ioc.error.put(1 if self.robot_status.get('status', '0') not in ('0', '') else 0)
            if completion.operation == 'robot_mount':
                self.count('mount_count')
                self.ioc.last_mount_time.put(round(duration, 2))
                self.sample_event(f'mounted {completion.text}')
            elif completion.operation == 'robot_dismount':
                self.count('dismount_count')
                self.sample_event(f'dismounted {completion.text}')
        level = 'info' if completion.status == 'normal' else 'warning'
        self.post_log(level, 'bridge', f'{completion.operation} {completion.handle} '
                                       f'{completion.status} {completion.text}')

    def sample_event(self, text: str) -> None:
        stamp = time.strftime('%Y-%m-%d %H:%M:%S')
        self.ioc.sample_log.put(f'{stamp} {text}'[:199])

    def log_received(self, level: str, source: str, text: str) -> None:
        self.post_log(level if level in LOG_LEVELS else 'info', source, text)

    def string_updated(self, name: str, status: str, value: str) -> None:
        if status != 'normal':
            self.post_log('warning', name, f'{status} {value}')
            return
        handler = getattr(self, 'string_' + name, None)
        if handler is None:
            logger.debug('string %s ignored: %s', name, value)
            return
        try:
            handler(value)
        except (pl.PayloadError, ValueError) as exc:
            self.post_log('warning', 'bridge', f'bad {name} from DHS: {exc}')

    # -- robot strings ------------------------------------------------------------------------
    def string_robot_status(self, value: str) -> None:
        pairs = pl.parse_pairs(value)
        self.robot_status = pairs
        try:
            self.ioc.status.put(int(pairs.get('status', '0')))
        except ValueError:
            self.ioc.status.put(-1)
        for key in ('need_reset', 'need_cal', 'need_clear', 'pin_lost', 'manual_mode'):
            getattr(self.ioc, key).put(pl.flag(pairs, key))
        self.ioc.warning.put(pairs.get('warning', '')[:79])
        self.ioc.cal_msg.put(pairs.get('cal_msg', '')[:79])
        self.update_health()

    def string_robot_state(self, value: str) -> None:
        word = value.split()[0] if value.split() else 'idle'
        if word not in pl.ACTIVITIES:
            raise pl.PayloadError(f'unknown activity {word!r}')
        self.ioc.state.put(pl.ACTIVITIES.index(word))

    def string_robot_sample(self, value: str) -> None:
        mounted, prefetched = pl.parse_sample(value)
        was = self.ioc.sample.get()
        self.ioc.sample.put(mounted or '')
        self.ioc.sample_mounted.put(1 if mounted else 0)
        self.ioc.prefetched.put(prefetched or '')
        if mounted and mounted != was:
            self.mounted_at = time.time()
        elif not mounted:
            self.mounted_at = None
            self.ioc.sample_time.put(0.0)

    def string_robot_cassette(self, value: str) -> None:
        cassette, type_index, states = pl.parse_cassette(value)
        getattr(self.ioc, 'ports_' + cassette).put(states)
        getattr(self.ioc, 'type_' + cassette).put(type_index)
        getattr(self.ioc, 'full_' + cassette).put(sum(1 for s in states if s in (1, 2)))
        getattr(self.ioc, 'empty_' + cassette).put(sum(1 for s in states if s == 0))
        getattr(self.ioc, 'bad_' + cassette).put(sum(1 for s in states if s in (3, 4)))

    def string_robot_fit(self, value: str) -> None:
        cassette, model, rms = pl.parse_fit(value)
        getattr(self.ioc, 'fit_' + cassette).put(model)
        getattr(self.ioc, 'fit_rms_' + cassette).put(rms)

    def string_robot_safety(self, value: str) -> None:
        pairs = pl.parse_pairs(value)
        self.ioc.prepare.put(pl.flag(pairs, 'prepare'))
        self.ioc.ready_flag.put(pl.flag(pairs, 'ready'))
        self.ioc.approach.put(pl.flag(pairs, 'approach'))

    def string_robot_io(self, value: str) -> None:
        words = value.split()
        self.ioc.inputs.put(int(words[0], 0))
        self.ioc.outputs.put(int(words[1], 0))

    def string_robot_force(self, value: str) -> None:
        fx, fy, fz = (float(w) for w in value.split()[:3])
        self.ioc.force_x.put(fx)
        self.ioc.force_y.put(fy)
        self.ioc.force_z.put(fz)

    def string_robot_heartbeat(self, value: str) -> None:
        self.ioc.heartbeat.put(int(value.split()[0]))

    # -- timers and health --------------------------------------------------------------------
    @devioc.every(1.0)
    def tick(self) -> None:
        """Once a second: counters, timers, staleness and health."""
        now = time.time()
        self.alive += 1
        self.ioc.alive.put(self.alive)
        self.ioc.uptime.put(round(now - self.started))
        if self.connected_at is not None:
            self.ioc.conn_time.put(round(now - self.connected_at))
            self.ioc.idle_time.put(round(now - self.last_message, 1))
        self.ioc.stale.put(1 if self.connected_at is not None
                           and now - self.last_message > self.stale_after else 0)
        if self.op_started is not None:
            self.ioc.op_time.put(round(now - self.op_started, 1))
        if self.mounted_at is not None:
            self.ioc.sample_time.put(round(now - self.mounted_at))
        self.update_health()

    def update_health(self) -> None:
        status = self.robot_status
        if not self.factory.connected:
            health, msg = 3, 'robot DHS not connected'
        elif pl.flag(status, 'need_reset') or pl.flag(status, 'pin_lost'):
            health, msg = 2, 'robot needs reset' if pl.flag(status, 'need_reset') else 'pin lost'
        elif status.get('status', '0') not in ('0', ''):
            health, msg = 2, f'robot status {status.get("status")}'
        elif pl.flag(status, 'need_cal') or pl.flag(status, 'need_clear'):
            health, msg = 1, 'robot needs calibration or clear'
        elif self.ioc.stale.get():
            health, msg = 1, f'no DHS message for over {self.stale_after:g} s'
        elif status.get('warning'):
            health, msg = 1, status['warning']
        else:
            health, msg = 0, ''
        if self.ioc.health.get() != health:
            self.ioc.health.put(health)
        if self.ioc.health_msg.get() != msg[:79]:
            self.ioc.health_msg.put(msg[:79])

    def shutdown(self) -> None:
        """Stop listening, drop the DHS and stop the IOC."""
        self.factory.disconnect()
        self.listener.stopListening()
        self.ioc.shutdown()
