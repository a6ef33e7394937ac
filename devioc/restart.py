"""Restart a model's softIoc when it dies, with back-off, until it dies too often.

``Model(..., restart=True)`` (or ``restart=RestartPolicy(...)``) gives the model a
:class:`Supervisor`. When softIoc exits on its own, the supervisor waits (Twisted procmon's
back-off: ``min_delay``, doubled at each death still in the window, at most ``max_delay``), then
saves the autosaved values (``model._autosave.flush()``), renders the .db again (records come up
holding their saved values, the health records their counts), starts a new softIoc on the same
port and waits until every channel is connected again. libca reconnects the model's channels by
itself and installs their monitors again, so the first values of the new IOC reach the
``do_<field>`` callbacks as at the first start, and the app object, its state and its reactor
stay alive throughout. Then ``on_ioc_restart(ioc)`` is called on the callbacks object, if it has
one. The ``max_deaths``-th death within ``window`` seconds gives up: the model's ``on_ioc_exit``
stops the app as without restart, with a non-zero exit status, so procServ or systemd take over.

While softIoc is down the app's puts raise RuntimeError (not connected), as they do today when
the IOC is gone; the health records are updated again from the first tick after the restart.
"""
from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

logger = logging.getLogger(__name__)

#: seconds a restart keeps the old channels before clearing them: a put another thread began with one
#: (between reading the channel id and calling libca) has long reached libca by then
RETIRE_AFTER = 10.0


@dataclass(frozen=True)
class RestartPolicy:
    """When a dead softIoc is started again, and when devioc gives up.

    Args:
        min_delay: seconds before the first restart (procmon's minRestartDelay).
        max_delay: the longest wait, seconds (procmon's maxRestartDelay); the wait doubles with
            each death still within ``window``.
        max_deaths: give up (the app exits non-zero) at this many deaths within ``window``.
        window: seconds over which deaths are counted.

    Raises:
        ValueError: a delay or window that is not a positive number, ``max_delay < min_delay``,
            or ``max_deaths`` below 1.
    """

    min_delay: float = 1.0
    max_delay: float = 60.0
    max_deaths: int = 5
    window: float = 300.0

    def __post_init__(self) -> None:
        for name in ('min_delay', 'max_delay', 'window'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f'RestartPolicy({name}={value!r}): give a positive number of seconds')
        if self.max_delay < self.min_delay:
            raise ValueError(f'RestartPolicy(max_delay={self.max_delay!r}) is below min_delay={self.min_delay!r}: '
                             'make max_delay at least min_delay')
        if isinstance(self.max_deaths, bool) or not isinstance(self.max_deaths, int) or self.max_deaths < 1:
            raise ValueError(f'RestartPolicy(max_deaths={self.max_deaths!r}): give a whole number, at least 1 '
                             '(1 gives up at the first death, as restart=False does)')

    def delay(self, deaths: int) -> float:
        """Seconds to wait before the restart that follows the ``deaths``-th death in the window."""
        return min(self.max_delay, self.min_delay * 2 ** max(0, deaths - 1))


def policy_of(restart: Any) -> RestartPolicy | None:
    """The policy for a model's ``restart=`` keyword: None (no restart), or a :class:`RestartPolicy`.

    Raises:
        TypeError: ``restart`` is neither a bool nor a RestartPolicy.
    """
    if restart is None or restart is False:
        return None
    if restart is True:
        return RestartPolicy()
    if isinstance(restart, RestartPolicy):
        return restart
    raise TypeError(f'restart={restart!r}: give True, False or devioc.restart.RestartPolicy(min_delay=..., '
                    'max_delay=..., max_deaths=..., window=...)')


def supervisor_for(model: Any, restart: Any) -> 'Supervisor | None':
    """The supervisor of ``model`` for its ``restart=`` keyword (None: no restart; see :func:`policy_of`)."""
    policy = policy_of(restart)
    return None if policy is None else Supervisor(model, policy)


class Supervisor:
    """Restarts one model's softIoc (see the module docstring).

    Args:
        model: the running model.
        policy: the restart policy.
        reactor: schedules the restarts (the global reactor by default).
        clock: monotonic seconds (deaths are counted by it).
    """

    def __init__(self, model: Any, policy: RestartPolicy, reactor: Any = None,
                 clock: Callable[[], float] = time.monotonic):
        self.model, self.policy, self.clock = model, policy, clock
        self._reactor = reactor
        self.deaths: collections.deque[float] = collections.deque()
        self.restarts = 0
        self.gave_up = False
        self.stopped = False
        self._call = None
        self._retired: list[Any] = []   # old channel ids of the restarts, cleared RETIRE_AFTER s later

    def retire(self, chids: list[Any]) -> None:
        """Clear these old channel ids :data:`RETIRE_AFTER` seconds from now (any thread), or at stop()."""
        from .channels import clear_channels

        batch = list(chids)
        self._retired.append(batch)

        def clear() -> None:
            if batch in self._retired:
                self._retired.remove(batch)
                clear_channels(batch)

        self.reactor.callFromThread(self.reactor.callLater, RETIRE_AFTER, clear)

    @property
    def reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor
            self._reactor = reactor
        return self._reactor

    def ioc_died(self, code: int) -> bool:
        """Note a death of softIoc (reactor thread): True if a restart is scheduled, False to give up."""
        from .softioc import describe_returncode

        if self.stopped or self.gave_up:
            return False
        now = self.clock()
        self.deaths.append(now)
        while self.deaths and now - self.deaths[0] > self.policy.window:
            self.deaths.popleft()
        device = self.model._device_name
        if len(self.deaths) >= self.policy.max_deaths:
            self.gave_up = True
            logger.critical('%s: softIoc died (%s) for the %d%s time in %g s: giving up on restarting it',
                            device, describe_returncode(code), len(self.deaths), _th(len(self.deaths)),
                            self.policy.window)
            return False
        delay = self.policy.delay(len(self.deaths))
        logger.error('%s: softIoc died (%s); starting it again in %.1f s (death %d of %d allowed in %g s)',
                     device, describe_returncode(code), delay, len(self.deaths), self.policy.max_deaths - 1,
                     self.policy.window)
        self._call = self.reactor.callLater(delay, self._restart)
        return True

    def _restart(self) -> None:
        from twisted.internet import threads

        self._call = None
        if self.stopped:
            return
        d = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), start_again, self.model)
        d.addCallbacks(self._restarted, self._failed)

    def _restarted(self, _: Any) -> None:
        model = self.model
        if self.stopped:
            return
        process = model._process
        if process is not None and process.exited.is_set():
            # died after start_again's last look at it (e.g. while autosave waited for first values):
            # on_ioc_exit ignored that death (not ready), so it is handled here, as any other death
            logger.error('%s: the restarted softIoc (pid %s) died before the restart was done',
                         model._device_name, process.pid)
            model._ready = True
            model.on_ioc_exit(process.returncode if process.returncode is not None else 1)
            return
        self.restarts += 1
        health = getattr(model, '_health', None)
        if health is not None:
            health.restarted()
        model._ready = True
        logger.warning('%s: softIoc restarted (pid %s), restart %d; every channel is connected again',
                       model._device_name, model._process.pid, self.restarts)
        hook = getattr(model._callbacks, 'on_ioc_restart', None)
        if callable(hook):
            try:
                hook(model)
            except Exception:
                logger.exception('%s: on_ioc_restart raised', model._device_name)

    def _failed(self, failure: Any) -> None:
        if self.stopped:
            return
        code = getattr(failure.value, 'returncode', None)
        logger.error('%s: the restart failed: %s', self.model._device_name, failure.getErrorMessage())
        if self.ioc_died(1 if code is None else code):
            return
        # give up: the model's on_ioc_exit stops the app, as for a death without restart
        self.model._ready = True
        self.model.on_ioc_exit(1 if code is None else code)

    def stop(self) -> None:
        """No more restarts (the model is shutting down); the old channels are cleared now."""
        from .channels import clear_channels

        self.stopped = True
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()
        while self._retired:
            clear_channels(self._retired.pop())


def _th(n: int) -> str:
    return {1: 'st', 2: 'nd', 3: 'rd'}.get(n if n < 20 else n % 10, 'th')


def start_again(model: Any) -> None:
    """Render the model's files again and start a new softIoc; return once all channels are connected.

    Runs in a worker thread (it waits for softIoc's iocInit and the channels). The files come from
    ``Model._write_files``, as at the first start.

    Raises:
        IOCStartError: softIoc did not load, exited, or its records did not connect in time.
    """
    from .softioc import IOCProcess

    old = model._process
    if old is not None:
        old.stop()   # it has exited: this closes its pipes
    autosave = getattr(model, '_autosave', None)
    if autosave is not None:
        autosave.flush()
    cmd_file = model._write_files()   # autosaved values restored as of now, as at the first start
    health = getattr(model, '_health', None)
    process = IOCProcess([model._command, cmd_file.name], model._directory, model._env, model._device_name,
                         on_exit=model._ioc_exited)
    process.console = old.console if old is not None else None
    model._process = process
    started = time.monotonic()
    process.start()
    supervisor = getattr(model, '_supervisor', None)
    if supervisor is not None and supervisor.stopped:   # shut down meanwhile: leave no softIoc behind
        process.stop()
        return
    limit = model._start_limit
    deadline = started + limit
    model._wait(lambda: process.synced.wait(0.05), deadline,
                lambda: f'softIoc did not finish iocInit within {limit:.1f} s')
    pvs = list(model._pvs.values()) + (list(health.pvs.values()) if health is not None else [])
    blocking = getattr(model, '_blocking', None)
    if blocking is not None:   # the helper records' channels of blocking fields (devioc.blocking)
        pvs += [field.flag for field in blocking.fields.values() if field.flag is not None]
    functions = getattr(model, '_rpc', None)   # devioc.rpc: its channels, and its list, written again
    if functions is not None:
        pvs += functions.channels()
    retired = reconnect(pvs)
    if supervisor is not None:   # the old channels are cleared once no put can be using them
        supervisor.retire(retired)
    else:
        from .channels import clear_channels
        clear_channels(retired)

    def all_connected() -> bool:
        pvs[:] = [pv for pv in pvs if not pv.connected]
        if pvs:
            time.sleep(0.005)
        return not pvs

    model._wait(all_connected, deadline, lambda: model._missing([pv.name for pv in pvs], len(model._pvs), limit,
                                                                'connect again'))
    if supervisor is not None and supervisor.stopped:   # shut down meanwhile: its autosave is stopped, so it stays
        return
    from .alarms import restore   # alarm=True fields show the alarm they had again (devioc.alarms)
    restore(model)
    if autosave is not None:   # its VAL hooks and its own channels to the extra fields, on the new IOC
        autosave.start(model._pvs)
    if functions is not None:   # the new rpc:functions record is empty: clients read the list there
        functions.publish(max(deadline - time.monotonic(), 1.0))
    logger.info('%s: softIoc (pid %s) up again in %.2f s', model._device_name, process.pid,
                time.monotonic() - started)


def reconnect(pvs: list[Any]) -> list[Any]:
    """Make the channels of ``pvs`` again (monitors and callbacks kept), searched for at once.

    libca would reconnect the old channels by itself, but only at its next search of them: its
    searches back off after a disconnection (6.8 s here after a 0.2 s restart, with no beacon
    anomaly seen). New channels are searched for now and connect within milliseconds.

    Returns:
        the old channel ids, not cleared yet (:meth:`devioc.channels.PV.renew`): the app's threads
        may be putting through them this very moment; clear them later with
        :func:`devioc.channels.clear_channels`.
    """
    from .channels import ca_flush

    retired: list[Any] = []
    for pv in pvs:
        pv.renew(retired)
    ca_flush()
    return retired
