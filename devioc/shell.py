"""The IOC shell on the app's terminal, and the run loop of ``app.server``.

:func:`attach_console` bridges a terminal to the softIoc: lines typed go to the IOC shell's stdin and
its output comes back raw (prompt included), so ``dbl``, ``dbpr`` and ``dbgf`` work at a desk and in
a procServ console (procServ gives the app a pty). On anything that is not a terminal (systemd without
procServ, tests, a pipe) nothing is attached: the app runs headless, logs the IOC's output line by
line and stays up whatever happens to its stdin.

``exit`` typed on the console is not passed to the softIoc: it shuts the whole app down cleanly
(exit status 0), which under procServ means a fresh start after its holdoff. Ctrl-D does the same.

:func:`serve` is the run loop of a generated project's ``app.server``: start the app, attach the
console, run the reactor until SIGTERM/SIGINT/SIGHUP or the IOC's death, stop the IOC, return an exit status.
"""
from __future__ import annotations

import os
import select
from typing import Any, Callable

from . import log

logger = log.get_module_logger(__name__)

EXIT_COMMANDS = (b'exit',)


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, waiting when a non-blocking fd is full."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        except OSError:
            return   # the terminal went away: nothing to show the output on
        view = view[written:]


def _stop_reactor(reactor: Any) -> None:
    from twisted.internet.error import ReactorNotRunning

    try:
        reactor.stop()
    except ReactorNotRunning:
        pass


PROMPT = b'epics> '
DOUBLE_PROMPT = PROMPT + PROMPT


class Console:
    """The link between a terminal and a running model's IOC shell (made by :func:`attach_console`)."""

    def __init__(self, model: Any, reactor: Any, stdin_fd: int = 0, stdout_fd: int = 1):
        self.model, self.reactor = model, reactor
        self.stdin_fd, self.stdout_fd = stdin_fd, stdout_fd
        self.active = False
        self.exit_requested = False
        self._partial = b''
        self._stdio = None

    def start(self) -> None:
        from twisted.internet import protocol, stdio

        console = self

        class _Input(protocol.Protocol):
            def dataReceived(self, data: bytes) -> None:
                console.typed(data)

            def connectionLost(self, reason: Any = None) -> None:
                console.end_of_input()

        # Read the terminal through a descriptor of our own: Twisted makes it non-blocking, and doing
        # that to fd 0 would do it to fds 1 and 2 as well (one open file under a pty, as procServ
        # gives), so writes to stdout and the log on stderr could fail with EAGAIN and be lost.
        reader = os.open(os.ttyname(self.stdin_fd), os.O_RDWR | os.O_NOCTTY)
        writer = os.dup(reader)
        self.active = True
        self.model._process.console = self.show
        self._stdio = stdio.StandardIO(_Input(), stdin=reader, stdout=writer, reactor=self.reactor)
        self.reactor.addSystemEventTrigger('before', 'shutdown', self._shutting_down)
        self.reactor.addSystemEventTrigger('after', 'shutdown', self.detach)
        self.model._process.send(b'\n')   # a fresh prompt for the operator

    def _shutting_down(self) -> None:
        self.active = False   # the terminal closing at shutdown is not the operator's Ctrl-D

    def show(self, chunk: bytes) -> None:
        """Pass the IOC's output to the terminal (called from the IOC's reader thread).

        softIoc's prompt from after iocInit sits in its stdout buffer until the empty line that
        :meth:`start` sends flushes it together with the prompt that line gives: show one of them.
        """
        _write_all(self.stdout_fd, chunk.replace(DOUBLE_PROMPT, PROMPT))

    def typed(self, data: bytes) -> None:
        """Send complete lines to the IOC shell; ``exit`` shuts the app down instead."""
        lines = (self._partial + data).split(b'\n')
        self._partial = lines.pop()
        for line in lines:
            if line.strip(b' \t\r\x00') in EXIT_COMMANDS:   # telnet may add CR or NUL
                self.exit_requested = True
                logger.log(log.IMPORTANT, "'exit' typed on the console: shutting down")
                self.active = False
                _stop_reactor(self.reactor)
                return
            try:
                self.model._process.send(line + b'\n')
            except RuntimeError as err:    # the IOC died; the model stops the reactor
                logger.warning('console input dropped: %s', err)
                return

    def end_of_input(self) -> None:
        """Ctrl-D (end of input on the terminal) shuts the app down, as it would a plain softIoc."""
        if self.active:
            self.active = False
            self.exit_requested = True
            logger.log(log.IMPORTANT, 'end of input on the console: shutting down')
            _stop_reactor(self.reactor)

    def detach(self) -> None:
        """Stop bridging: the IOC's output is logged again and the terminal is let go."""
        self.active = False
        process = getattr(self.model, '_process', None)
        if process is not None and process.console == self.show:
            process.console = None
        if self._stdio is not None:
            stdio, self._stdio = self._stdio, None
            try:
                stdio.loseConnection()
            except Exception:   # already closed with the reactor
                pass


def attach_console(model: Any, reactor: Any = None, stdin_fd: int = 0, stdout_fd: int = 1) -> Console | None:
    """Bridge the terminal on ``stdin_fd``/``stdout_fd`` to the IOC shell of a running model.

    Returns the :class:`Console`, or None when stdin is not a terminal (headless: nothing is read
    from stdin, so its end never stops the app).
    """
    if not os.isatty(stdin_fd):
        logger.debug('stdin is not a terminal: running headless')
        return None
    if getattr(model, "_process", None) is None:
        raise RuntimeError('attach_console needs a running model (model.process is not set)')
    if reactor is None:
        from twisted.internet import reactor
    console = Console(model, reactor, stdin_fd, stdout_fd)
    try:
        console.start()
    except OSError as err:   # e.g. the pty has no name in this container
        console.detach()
        logger.warning('cannot open the terminal for the IOC shell (%s): running headless', err)
        return None
    logger.log(log.IMPORTANT, 'IOC shell on this terminal: try "dbl" or "dbpr <pv>"; "exit" stops the app')
    return console


#: 'starting': a stop signal interrupts a model's start-up; 'received': the first stop signal, if any
_signals: dict[str, Any] = {'starting': False, 'received': None}


def _signal_name(signum: int) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except ValueError:
        return f'signal {signum}'


def take_signals(reactor: Any) -> None:
    """Unblock SIGTERM, SIGINT and SIGHUP and make each a clean shutdown, from start-up on.

    procServ (2.7) starts its child with SIGHUP, SIGPIPE and SIGTERM blocked, so without this an
    app under procServ would ignore SIGTERM (procServ's Ctrl-X with --killsig=15, systemctl stop).
    While :func:`serve` starts the app (until it has made it) a stop signal only takes note
    (:func:`devioc.models.interrupt_start`): a model waiting for its IOC then stops softIoc and
    raises :class:`devioc.models.StartupInterrupted`, and serve() returns 0. Nothing is raised from
    the handler itself, which could land anywhere (inside an import, a lock, a finally block).
    After start-up a stop signal stops the reactor (once; a second one while the app stops is only
    logged): the reactor's own SIGTERM handler is replaced by this one when it runs. Call it in the main thread before any other thread
    starts: threads inherit the mask.
    """
    import signal

    from .models import interrupt_start

    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})

    def stop_signal(signum: int, frame: Any) -> None:
        if _signals['starting']:
            if _signals['received'] is None:
                _signals['received'] = signum
                interrupt_start(signum)
            return
        _signals['received'] = signum
        logger.info('%s: shutting down', _signal_name(signum))
        reactor.callFromThread(_stop_reactor, reactor)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop_signal)
    # the reactor puts its own SIGTERM handler in place when it starts; a second SIGTERM while the app
    # stops (a shell or `timeout` signalling the process and its group) then made it print a
    # ReactorNotRunning traceback: keep this handler, which stops the reactor once, quietly
    reactor.callWhenRunning(signal.signal, signal.SIGTERM, stop_signal)


def stop_quietly_until_served() -> None:
    """Until :func:`serve` takes the signals over, SIGTERM, SIGINT and SIGHUP end the program at once
    with status 0, without a traceback or click's "Aborted!".

    Call it first in a program's main, before the imports of the app and its model: nothing that
    needs stopping runs yet (the model's softIoc starts inside ``serve()``), and without it a signal
    in that window (an impatient Ctrl-C, ``systemctl stop`` right after a restart) killed the
    program by the default action (exit status -15) or printed a KeyboardInterrupt traceback.
    """
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)


def status_of(code: int) -> int:
    """The exit status for softIoc's return code: 128 + signal, its own code, or 1 for a clean exit."""
    return 128 - code if code < 0 else (code or 1)


def exit_status(model: Any) -> int:
    """0 after a clean stop; the IOC's exit code, 128 + signal, or 1 when it died on its own."""
    code = getattr(model, '_ioc_exit_code', None)
    return 0 if code is None else status_of(code)


def find_model(app: Any, model_attr: str | None = 'ioc') -> Any:
    """The running model of ``app``: the app itself if it is a model, its ``model_attr`` attribute if
    it has one, else the first of its attributes that holds a model.

    Raises:
        TypeError: the app holds no model; the message says where to keep it.
    """
    from .models import Model

    if isinstance(app, Model):
        return app
    if model_attr and getattr(app, model_attr, None) is not None:   # as before: whatever the app keeps there
        return getattr(app, model_attr)
    for value in vars(app).values() if hasattr(app, '__dict__') else ():
        if isinstance(value, Model):
            return value
    raise TypeError(f'{type(app).__name__} holds no devioc model in an attribute: keep the model it makes as '
                    f'self.{model_attr or "ioc"} (self.{model_attr or "ioc"} = MyModel(device, callbacks=self))')


def serve(app_factory: Callable[[], Any], reactor: Any = None, model_attr: str = 'ioc', verbose: bool = False) -> int:
    """Start an app, serve it until SIGTERM/SIGINT, ``exit`` or the IOC's death; return an exit status.

    On a stop the app's ``on_stop`` runs first (the IOC is stopped once a Deferred it returns has
    fired, at most :data:`devioc.app.STOP_TIMEOUT` s later), then the app's ``shutdown()``, or the
    model's when the app has none.

    Args:
        app_factory: makes the app (e.g. ``lambda: MyApp(device, macros=...)``) or a bare model; it
            starts the IOC.
        reactor: the Twisted reactor (the global one by default).
        model_attr: the attribute of the app that holds its model (else the first that holds one).
        verbose: show tracebacks of start-up failures.
    """
    from .checks import ModelError
    from .models import StartupInterrupted, interrupt_start, shutdown_all

    if reactor is None:
        from twisted.internet import reactor
    take_signals(reactor)
    _signals.update(starting=True, received=None)
    from . import models as _models
    before = set(_models._running)

    def stop_made() -> None:
        for made in list(_models._running):
            if made not in before:
                made.shutdown()
    try:
        try:
            app = app_factory()
        finally:
            _signals['starting'] = False
            interrupt_start(None)
        if _signals['received'] is not None:   # came while the app finished its own start-up
            raise StartupInterrupted(_signals['received'])
    except StartupInterrupted as stop:
        shutdown_all()   # models the app made before the signal; an interrupted one stopped itself
        logger.info('%s during start-up: stopped', _signal_name(stop.signum))
        return 0
    except ModelError as err:
        stop_made()   # models the app made before the failing one (at exit, libca would be gone)
        logger.error('the model has errors:\n%s', err)
        return 1
    except Exception as err:   # IOCStartError, SoftIocNotFound, DeviceBusy, the app's own failures
        stop_made()   # a model the app made before it failed is stopped now, while libca is alive
        logger.error('the IOC did not start: %s', err, exc_info=verbose)
        code = getattr(err, 'returncode', None)
        if code is None:
            return 1
        status = status_of(code)   # softIoc died during start-up: its status, as when it dies later
        logger.error('exiting with status %d: the IOC died', status)
        return status
    try:
        model = find_model(app, model_attr)
    except TypeError as err:
        logger.error('%s', err)
        shutdown_all()
        return 1
    stop_app = getattr(app, 'shutdown', None) or model.shutdown

    def shutdown() -> Any:
        from .app import stopped

        def stop(_: Any) -> None:
            logger.info('stopping the IOC')
            try:
                stop_app()
            except Exception:
                logger.exception('%s.shutdown() raised', type(app).__name__)

        return stopped(model).addBoth(stop)   # on_stop first, waited for

    reactor.addSystemEventTrigger('before', 'shutdown', shutdown)
    try:
        attach_console(model, reactor)
    except Exception:
        stop_app()
        raise
    logger.info('serving %s (pid %d): SIGTERM, SIGINT or SIGHUP stops it', getattr(model, '_device_name', '?'),
                os.getpid())
    reactor.run()
    status = exit_status(model)
    if status:
        logger.error('exiting with status %d: the IOC died', status)
    return status
