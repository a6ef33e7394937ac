"""A pytest plugin and helpers for testing IOCs: ``pytest_plugins = ['devioc.testing']``.

At pytest start-up (before any Channel Access client exists) it picks a pool of free loopback ports
and points every CA server and client of the session at them, on 127.0.0.1 only: the first port is
the default server port (EPICS_CA_SERVER_PORT), and the client address list holds them all, so a
test can run several IOCs at once, each on its own port (the ``ca_port`` fixture).

Fixtures: ``ca_env`` (environment for subprocesses), ``ca_port`` (a free server port of the pool),
``device`` (a fresh device name), ``run_model`` (start a model, stopped when the test ends).
Helpers: :func:`wait_for`, :func:`caget`, :func:`caput`, :func:`epics_tool`, :func:`stop_process`,
:func:`child_pids`, :func:`alive`, :func:`answers`,
:func:`stop_repeaters`.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from typing import Any, Callable

import pytest

from .softioc import epics_tool  # noqa: F401  (re-exported for tests)

POOL_SIZE = 6
_pool: list[int] = []
_taken: set[int] = set()
_released: dict[int, float] = {}


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range of ports for sockets bound to port 0 (Linux: ip_local_port_range)."""
    try:
        low, high = (int(n) for n in open('/proc/sys/net/ipv4/ip_local_port_range').read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def _free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1, outside the kernel's ephemeral range.

    The pool's ports are all in every test client's EPICS_CA_ADDR_LIST. A port from the ephemeral
    range, once its IOC is gone, could be given to any client's own UDP socket (a caget's, libca's):
    that client would then take other clients' search requests for replies, and they would see a
    second server for every name ("Identical process variable names on multiple servers", at
    0.0.0.1:5, a search request read as a reply). Below the range, only a deliberate bind takes it.
    """
    import random

    low, high = _ephemeral_ports()
    choices = range(20000, low) if low > 21000 else range(high + 1, 65000)
    for _ in range(200):
        port = random.choice(choices)
        if port in _pool:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                tcp.bind(('127.0.0.1', port))
                udp.bind(('127.0.0.1', port))
            except OSError:
                continue
        return port
    raise RuntimeError('no free loopback port for a test IOC')


def isolate(pool_size: int = POOL_SIZE) -> dict[str, str]:
    """Point this process's CA servers and clients at a private pool of loopback ports.

    Must run before the first CA context is made (libca reads the environment once).
    """
    if not _pool:
        _pool.extend(_free_port() for _ in range(pool_size))
        os.environ.update({
            'EPICS_CA_SERVER_PORT': str(_pool[0]),
            'EPICS_CA_ADDR_LIST': ' '.join(f'127.0.0.1:{port}' for port in _pool),
            'EPICS_CA_AUTO_ADDR_LIST': 'NO',
            'EPICS_CAS_INTF_ADDR_LIST': '127.0.0.1',
            'EPICS_CAS_BEACON_ADDR_LIST': '127.0.0.1',
            'EPICS_CAS_AUTO_BEACON_ADDR_LIST': 'NO',
            'EPICS_CA_REPEATER_PORT': str(_free_port()),
            'EPICS_PVA_SERVER_PORT': str(_free_port()),
            'EPICS_PVA_BROADCAST_PORT': str(_free_port()),
            'EPICS_PVA_AUTO_ADDR_LIST': 'NO',
            'EPICS_PVA_ADDR_LIST': '127.0.0.1',
            'EPICS_PVAS_INTF_ADDR_LIST': '127.0.0.1',
        })
    return ca_environment()


def ca_environment() -> dict[str, str]:
    """A copy of the environment with the session's CA settings, for subprocesses."""
    return dict(os.environ)


#: the autosave state directory this test session made (removed at its end); None if the environment gave one
_state_dir: list[str] = []


def pytest_configure(config: Any) -> None:
    isolate()
    if not os.environ.get('DEVIOC_STATE_DIR'):   # autosave files of the session's models: not in ~/.local/state
        import tempfile

        _state_dir.append(tempfile.mkdtemp(prefix='devioc-state-'))
        os.environ['DEVIOC_STATE_DIR'] = _state_dir[0]


def pytest_unconfigure(config: Any) -> None:
    # libca starts a caRepeater daemon on the session's repeater port; it outlives the session
    if _pool:
        stop_repeaters(os.environ['EPICS_CA_REPEATER_PORT'])
    if _state_dir or _tool_copies:
        import shutil

        while _tool_copies:
            shutil.rmtree(_tool_copies.pop(), ignore_errors=True)
        if _state_dir:
            shutil.rmtree(_state_dir.pop(), ignore_errors=True)
            os.environ.pop('DEVIOC_STATE_DIR', None)


@pytest.fixture
def ca_env() -> dict[str, str]:
    """The environment to give subprocesses (C CA tools, app servers) of this test."""
    return ca_environment()


@pytest.fixture
def ca_port() -> Any:
    """A server port of the session's pool that no other test holds; pass it as EPICS_CA_SERVER_PORT."""
    free = [port for port in _pool[1:] if port not in _taken]
    if not free:
        pytest.fail(f'all {len(_pool) - 1} extra CA ports of the pool are in use')
    # least recently used first: an IOC of the previous test may still be exiting on its port
    port = min(free, key=lambda p: _released.get(p, 0.0))
    _taken.add(port)
    yield port
    _taken.discard(port)
    _released[port] = time.monotonic()


@pytest.fixture
def device() -> str:
    """A fresh device name, so tests never see each other's records."""
    return f'TST{uuid.uuid4().hex[:8].upper()}'


@pytest.fixture
def run_model(device: str):
    """Start a model for this test: ``ioc = run_model(MyModel, callbacks=app)``; shut down at the end."""
    started = []

    def start(model_class: type, device_name: str | None = None, **kwargs: Any):
        model = model_class(device_name or device, **kwargs)
        started.append(model)
        return model

    yield start
    for model in reversed(started):
        model.shutdown()


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, what: str = 'condition',
             interval: float = 0.01) -> Any:
    """Poll ``predicate`` until it returns a true value; AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout} s waiting for {what} (last: {result!r})')
        time.sleep(interval)


def until(predicate: Callable[[], Any], what: str = 'condition', timeout: float = 15.0,
          interval: float = 0.02) -> Any:
    """A Deferred that fires once ``predicate()`` is true, the reactor running meanwhile.

    For tests whose app callbacks run on the reactor (``yield until(...)`` in a
    ``pytest_twisted.inlineCallbacks`` test); :func:`wait_for` blocks the thread instead.

    Raises:
        AssertionError: (through the Deferred) ``predicate()`` was still false after ``timeout`` s.
    """
    from twisted.internet import defer, reactor, task

    @defer.inlineCallbacks
    def poll() -> Any:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f'timed out after {timeout} s waiting for {what}')
            yield task.deferLater(reactor, interval, lambda: None)

    return poll()


#: uid and gid of the "other local user" security tests run CA clients as (nobody)
OTHER_UID = 65534
#: world-readable copies of the EPICS tools made for that user (removed at the session's end)
_tool_copies: list[str] = []


def tool_as_other_user(name: str, uid: int = OTHER_UID) -> list[str]:
    """The argv prefix that runs EPICS tool ``name`` (``caput``, ``caget``, ...) as uid/gid ``uid``.

    Skips the calling test when this process is not root or util-linux's ``setpriv`` is missing.
    The tool runs from where it is when that user can run it there; else from a world-readable copy
    of its EPICS tree, made once in a directory of its own under the system's temporary directory
    (pytest's tmp_path and a venv made by ``mktemp -d`` sit in directories only their owner enters).
    """
    import shutil
    import tempfile
    from pathlib import Path

    if os.geteuid() != 0:
        pytest.skip('running a CA client as another user needs root (setpriv)')
    setpriv = shutil.which('setpriv')
    if setpriv is None:
        pytest.skip('setpriv (util-linux) is not installed')
    prefix = [setpriv, f'--reuid={uid}', f'--regid={uid}', '--clear-groups']
    tool = epics_tool(name)
    if subprocess.run([*prefix, tool, '-h'], capture_output=True, timeout=10).returncode == 0:
        return [*prefix, tool]
    if not _tool_copies:
        root = Path(tempfile.mkdtemp(prefix='devioc-tools-'))   # in /tmp (mode 1777): the user reaches it
        root.chmod(0o755)
        shutil.copytree(Path(tool).parents[1], root / 'epics-usr', symlinks=True)   # .../usr: bin/ and lib/
        for path in [root / 'epics-usr', *(root / 'epics-usr').rglob('*')]:
            path.chmod(path.stat().st_mode | 0o055)
        _tool_copies.append(str(root))
    return [*prefix, str(Path(_tool_copies[0]) / 'epics-usr' / 'bin' / name)]


def _run_tool(args: list[str], env: dict[str, str] | None, timeout: float) -> str:
    result = subprocess.run(args, env=env or ca_environment(), capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f'{" ".join(args)} failed ({result.returncode}): {result.stderr or result.stdout}')
    return result.stdout.strip()


def caget(pvname: str, env: dict[str, str] | None = None, *args: str, timeout: float = 10.0) -> str:
    """The value of ``pvname`` as the C caget prints it with -t (value only); extra args go before the name."""
    return _run_tool([epics_tool('caget'), '-w', '3', '-t', *args, pvname], env, timeout)


def answers(pvname: str, env: dict[str, str] | None = None, timeout: float = 5.0) -> bool:
    """True if the C caget reads ``pvname`` (for ``wait_for`` while an IOC is starting)."""
    try:
        caget(pvname, env, timeout=timeout)
    except (AssertionError, subprocess.TimeoutExpired):
        return False
    return True


def caput(pvname: str, value: Any, env: dict[str, str] | None = None, *args: str, timeout: float = 10.0) -> str:
    """Write ``value`` with the C caput (``-c -w 3``: waits for completion); extra args go before the name."""
    values = [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    if isinstance(value, (list, tuple)):
        args = ('-a', *args)
        values = [str(len(values)), *values]
    return _run_tool([epics_tool('caput'), '-c', '-w', '3', '-t', *args, pvname, *values], env, timeout)


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop a child by its PID: SIGTERM, then SIGKILL if it is still there after ``timeout`` s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def stop_repeaters(port: str | int) -> list[int]:
    """Stop (SIGKILL, by PID) the caRepeater daemons that libca started for repeater port ``port``.

    Returns:
        the PIDs stopped. Only processes whose executable is a caRepeater and whose environment
        holds ``EPICS_CA_REPEATER_PORT=<port>`` are touched.
    """
    stopped = []
    mark = f'EPICS_CA_REPEATER_PORT={port}'.encode()
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            exe = os.readlink(f'/proc/{entry}/exe')
            with open(f'/proc/{entry}/environ', 'rb') as handle:
                environ = handle.read().split(b'\0')
        except OSError:
            continue
        if exe.endswith('/caRepeater') and mark in environ:
            try:
                os.kill(int(entry), signal.SIGKILL)
                stopped.append(int(entry))
            except ProcessLookupError:
                pass
    return stopped


def alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (read from /proc)."""
    try:
        with open(f'/proc/{pid}/stat') as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def child_pids(pid: int) -> list[int]:
    """PIDs of the live (not zombie) direct children of ``pid``, read from /proc."""
    found = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as handle:
                    fields = handle.read().rsplit(')', 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != 'Z':
                found.append(int(entry))
    return sorted(found)
