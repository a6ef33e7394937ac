"""A small Channel Access server inside the app, for links from the model's softIoc to Python.

softIoc's "Async Soft Channel" output device support completes a record's processing, and with it a
client's put with callback (``caput -c``), only when the put on its CA output link completes
(EPICS base ``devAoSoftCallback`` and kin, through ``dbCaPutLinkCallback``). An :class:`AppServer`
serves the PVs such links point at, and answers each put only when the Python coroutine that handles
it returns: that is how a write to a record can wait for the app (:mod:`devioc.blocking`).

The server is caproto's asyncio server (not a home-made one) in a thread of its own, on 127.0.0.1 and
a UDP/TCP port of its own: the model's softIoc finds it through ``127.0.0.1:<port>`` in its
``EPICS_CA_ADDR_LIST`` (:attr:`AppServer.address`). It sends no beacons: nobody but that softIoc
searches for its PVs. (libca's TCP name-server search, ``EPICS_CA_NAME_SERVERS``, does not work
with it: caproto refuses the second priority on the name-server circuit.)
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from typing import Any, Awaitable, Callable

logger = logging.getLogger(__name__)

#: what a putter gets: the value the link wrote, in the PV's Python type
Putter = Callable[[Any], Awaitable[None]]


class AppServerError(RuntimeError):
    """The app's CA server could not start (no free port, caproto missing, ...); the message says why."""


def free_port(host: str = '127.0.0.1') -> int:
    """A port free for both TCP and UDP on ``host`` now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
            return port
    raise AppServerError(f'no port free for both TCP and UDP on {host}')


def _tcp_row(peer: tuple, server_port: int, table: str) -> list[str] | None:
    """The columns of the ``/proc/net/tcp`` row of the loopback socket ``peer`` (host, port)
    connected to ``server_port`` (both ends of a loopback connection are listed there, each with its
    owner's uid and its inode); None when it cannot be told (not Linux, the connection already gone)."""
    try:
        with open(table) as rows:
            lines = rows.readlines()[1:]
    except OSError:
        return None
    want_local, want_remote = f':{peer[1]:04X}', f':{server_port:04X}'
    for line in lines:
        cols = line.split()
        if len(cols) > 9 and cols[1].endswith(want_local) and cols[2].endswith(want_remote):
            return cols
    return None


def peer_inode(peer: tuple, server_port: int, table: str = '/proc/net/tcp') -> int | None:
    """The inode of the loopback TCP socket ``peer`` connected to ``server_port`` (the row's tenth
    column), None when it cannot be told."""
    row = _tcp_row(peer, server_port, table)
    return int(row[9]) if row is not None else None


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux ``/proc/<pid>/task/<tid>/children``)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        try:
            for tid in os.listdir(f'/proc/{current}/task'):
                with open(f'/proc/{current}/task/{tid}/children') as children:
                    todo.extend(int(child) for child in children.read().split())
        except OSError:
            continue
    return out


def owns_socket(pid: int, inode: int) -> bool:
    """True when process ``pid`` or one of its descendants (a ``command=`` wrapper's softIoc) holds
    socket ``inode``: one of its ``/proc/<pid>/fd`` entries links to it."""
    target = f'socket:[{inode}]'
    for owner in _tree(pid):
        try:
            fds = os.listdir(f'/proc/{owner}/fd')
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f'/proc/{owner}/fd/{fd}') == target:
                    return True
            except OSError:
                continue
    return False


def softioc_pid(model: Any) -> Callable[[], int | None]:
    """The ``peer_pid`` of a model's :class:`AppServer`: its softIoc's PID while one runs."""
    def pid() -> int | None:
        process = getattr(model, '_process', None)
        return getattr(process, 'pid', None) if process is not None else None
    return pid


def peer_uid(peer: tuple, server_port: int, table: str = '/proc/net/tcp') -> int | None:
    """The uid owning the loopback TCP socket ``peer`` (host, port) connected to ``server_port`` (the
    row's eighth column of Linux's ``/proc/net/tcp``), None when it cannot be told."""
    row = _tcp_row(peer, server_port, table)
    return int(row[7]) if row is not None else None


def _channel_classes() -> dict[str, type]:
    """caproto channel classes whose writes wait for a putter, by kind ('float', 'int', 'string')."""
    from caproto import ChannelChar, ChannelDouble, ChannelInteger, ChannelString

    def held(base: type) -> type:
        class Held(base):
            """A caproto channel whose writes complete when ``putter(value)`` has returned."""

            def __init__(self, *, putter: Putter, **kwargs: Any):
                super().__init__(**kwargs)
                self._putter = putter

            async def verify_value(self, value: Any) -> Any:
                value = await super().verify_value(value)
                try:
                    await self._putter(value)
                except Exception:  # never fail the link's put: the record would complete in no alarm anyway
                    logger.exception('the handler of a write to %s failed', getattr(self, 'name', '?'))
                return value

        Held.__name__ = f'Held{base.__name__}'
        return Held

    return {'float': held(ChannelDouble), 'int': held(ChannelInteger), 'string': held(ChannelString),
            'chars': held(ChannelChar)}  # 'chars': a long string (an lso's link put, devioc.rpc)


def _alarm_channel() -> Any:
    """A caproto integer channel clients cannot write (an alarm source of :mod:`devioc.alarms`)."""
    from caproto import AccessRights, ChannelInteger

    class AlarmSource(ChannelInteger):
        def check_access(self, hostname: str, username: str) -> Any:
            # read-only to every client: caput says "Write access denied", and the write never reaches
            # verify_value (which logged a traceback in the app's log at each attempt)
            return AccessRights.READ

        async def verify_value(self, value: Any) -> Any:
            raise ValueError('an alarm source of devioc is set by the app only')

    return AlarmSource(value=0)


class AppServer:
    """caproto's asyncio CA server in its own thread, serving PVs whose puts wait for Python.

    Args:
        host: the interface to serve on (loopback by default: only the model's softIoc uses it).

    Add the PVs with :meth:`add` before :meth:`start`; :meth:`stop` ends the thread and frees the
    port. Putters run on the server's asyncio loop (its own thread): they hand work to the reactor
    with ``reactor.callFromThread`` and wait for it there (:mod:`devioc.blocking` does).
    """

    def __init__(self, host: str = '127.0.0.1', peer_pid: Callable[[], int | None] | None = None):
        self.host = host
        #: the PID of the one process that may connect (the model's softIoc, which changes at a
        #: restart), or None while it is not known: then any process of this user may
        self.peer_pid = peer_pid
        self.port: int | None = None
        self._pvs: dict[str, tuple[str, Putter, Any]] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._channels: dict[str, Any] = {}   # the caproto channels, by name, once running

    def add(self, name: str, kind: str, putter: Putter, value: Any = None) -> None:
        """Serve PV ``name`` of ``kind`` ('float', 'int' or 'string'); a put to it awaits ``putter(value)``."""
        if kind not in ('float', 'int', 'string', 'chars', 'alarm'):
            raise ValueError(f'AppServer.add({name!r}): kind must be float, int or string, not {kind!r} '
                             "('chars' too: a long string, for devioc.rpc)")
        if self._thread is not None:
            raise RuntimeError(f'AppServer.add({name!r}): the server is already running; add PVs before start()')
        self._pvs[name] = (kind, putter, value)

    @property
    def names(self) -> list[str]:
        """The PV names served."""
        return list(self._pvs)

    @property
    def address(self) -> str:
        """``host:port`` of the server's search port, for a client's EPICS_CA_ADDR_LIST."""
        if self.port is None:
            raise RuntimeError('the app server is not running')
        return f'{self.host}:{self.port}'

    @property
    def running(self) -> bool:
        """True while the server thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 10.0) -> None:
        """Start serving; returns once the server answers searches.

        Raises:
            AppServerError: caproto is not installed, no port could be bound, or the server did not
                come up within ``timeout`` seconds.
        """
        if self._thread is not None:
            return
        try:
            import caproto.asyncio.server  # noqa: F401
        except ImportError as err:
            raise AppServerError(f'blocking fields, functions and alarm=True fields need caproto (pip install caproto): {err}') from None
        caproto_log = logging.getLogger('caproto')
        if caproto_log.level == logging.NOTSET:   # its circuits' DEBUG chatter flooded an app's DEBUG console;
            caproto_log.setLevel(logging.WARNING)  # an app that wants it sets the 'caproto' logger's level
        self.port = free_port(self.host)
        self._thread = threading.Thread(target=self._run, name=f'devioc-appserver-{self.port}', daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            error = self._error
            self.stop()
            raise AppServerError(f'the app\'s CA server (for blocking fields) did not start on {self.host}:'
                                 f'{self.port} within {timeout:.0f} s' + (f': {error}' if error else ''))

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as err:  # reported by start(), or logged if it dies later
            self._error = err
            if self._ready.is_set():
                logger.exception('the app\'s CA server stopped')
            self._ready.set()

    async def _main(self) -> None:
        from caproto.asyncio.server import Context

        server = self

        class QuietContext(Context):
            async def broadcast_beacon_loop(self) -> None:
                return  # only the model's softIoc searches these PVs, by address: no beacons on the network

            async def tcp_handler(self, client: Any, addr: tuple) -> None:
                # Only the model's softIoc (a child of this process: this user) may connect. The PV
                # names are no secret (any client reads a record's OUT link) and the port is listed
                # in /proc/net/tcp: another local user writing here would bypass softIoc's access
                # security and call the app's handlers directly.
                uid = peer_uid(addr, client.getsockname()[1]) if os.path.exists('/proc/net/tcp') else os.getuid()
                if uid != os.getuid():
                    logger.warning('the app\'s CA server refused a connection from %s:%s (uid %s, not this '
                                   'process\'s): only the model\'s softIoc may write its link PVs', *addr[:2], uid)
                    client.close()
                    return
                # and of this user's processes, only the model's softIoc: a caput of the same user
                # would bypass the access groups softIoc applies to the fields' own puts
                pid = server.peer_pid() if server.peer_pid is not None else None
                inode = peer_inode(addr, client.getsockname()[1]) if pid is not None else None
                if pid is not None and inode is not None and not owns_socket(pid, inode):
                    logger.warning('the app\'s CA server refused a connection from %s:%s (not the model\'s '
                                   'softIoc, pid %s): only it may write its link PVs', *addr[:2], pid)
                    client.close()
                    return
                await super().tcp_handler(client, addr)

        classes = _channel_classes()
        pvdb = {}
        for name, (kind, putter, value) in self._pvs.items():
            if kind == 'alarm':   # devioc.alarms: an alarm source, its STAT/SEVR set by set_alarm()
                pvdb[name] = _alarm_channel()
                continue
            initial = value if value is not None else {'float': 0.0, 'int': 0, 'string': '', 'chars': ''}[kind]
            extra = {'string_encoding': 'latin-1'} if kind == 'string' else {}
            if kind == 'chars':  # devioc.rpc: a long string of up to 65535 bytes, as UTF-8 text
                initial, extra = '', {'string_encoding': 'utf-8', 'max_length': 65535}
            pvdb[name] = classes[kind](putter=putter, value=initial, **extra)
        self._channels = pvdb
        context = QuietContext(pvdb, [self.host])
        # caproto's start/stop/connect lines are noise in an app's log: ours, at WARNING unless set
        context.log = logging.getLogger('devioc.appserver.caproto')
        if context.log.level == logging.NOTSET:
            context.log.setLevel(logging.WARNING)
        context.ca_server_port = self.port  # UDP search port, and the first TCP port tried
        self._loop = asyncio.get_running_loop()

        async def started(async_lib: Any) -> None:
            self._ready.set()

        self._task = asyncio.current_task()
        await context.run(startup_hook=started)

    def set_alarm(self, name: str, status: str, severity: str, timeout: float = 5.0) -> None:
        """Set the STAT and SEVR of the 'alarm' PV ``name`` (names of menuAlarmStat/menuAlarmSevr);
        returns once its subscribers (the model's softIoc) have been sent the change.

        Raises:
            RuntimeError: the server is not running or did not answer within ``timeout`` seconds.
        """
        from caproto import AlarmSeverity, AlarmStatus

        loop, channel = self._loop, self._channels.get(name)
        if loop is None or channel is None or not self.running:
            raise RuntimeError(f'cannot set the alarm of {name}: the app\'s CA server is not running')
        sevr = AlarmSeverity[severity if severity == 'NO_ALARM' else f'{severity}_ALARM']
        future = asyncio.run_coroutine_threadsafe(channel.alarm.write(status=AlarmStatus[status], severity=sevr),
                                                  loop)
        try:
            future.result(timeout)
        except Exception as err:
            raise RuntimeError(f'cannot set the alarm of {name}: the app\'s CA server did not answer: '
                               f'{err or type(err).__name__}') from None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server: held puts are dropped (their link sees a disconnect), the port is freed."""
        thread, loop, task = self._thread, self._loop, self._task
        if thread is None:
            return
        if loop is not None and task is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the loop closed meanwhile
                pass
        thread.join(timeout)
        if thread.is_alive():
            logger.error('the app\'s CA server thread did not stop within %.1f s', timeout)
        self._thread = self._loop = self._task = None
