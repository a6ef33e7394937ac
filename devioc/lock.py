"""One IOC per device on a host: a lock that is an abstract-namespace UNIX socket named after the device.

Linux's abstract socket namespace (unix(7): a ``sun_path`` that starts with a NUL byte) holds names,
not files: binding ``\\0devioc/<device>`` succeeds for one socket at a time on the host (per network
namespace), whoever asks. So the lock has

- no file and no directory: nothing to plant a symlink in, nothing to chmod 1777, no stale lock file
  that blocks another user after the holder stopped;
- no owner check to get wrong: the kernel frees the name when the last descriptor of the socket
  closes, which includes the holder dying by SIGKILL;
- the device name itself, byte for byte (``X:A`` and ``X_A`` are different locks), or its SHA-256
  when the name is too long for ``sun_path`` (108 bytes).

The socket is close-on-exec (softIoc and every program the app starts never hold it) and is closed
in forked children (``os.register_at_fork``), so a worker forked by the app cannot keep the device
locked after the app is gone. The holder listens on the socket, so a second start can connect and
learn the holder's pid and user from ``SO_PEERCRED`` for its :class:`DeviceBusy` message.
"""
from __future__ import annotations

import errno
import hashlib
import os
import socket
import struct
import threading
import weakref

PREFIX = b'\0devioc/'
SUN_PATH_MAX = 108          # sizeof(sockaddr_un.sun_path) on Linux

_held: weakref.WeakSet = weakref.WeakSet()
_fork_hook = threading.Lock()
_fork_hook_installed = False


class DeviceBusy(RuntimeError):
    """Another process on this host already runs an IOC for the same device."""


def lock_address(device: str) -> bytes:
    """The abstract socket address that locks ``device``.

    Args:
        device: the device name (PV prefix), used byte for byte (UTF-8).

    Returns:
        ``b'\\0devioc/<device>'``, or ``b'\\0devioc/sha256:<hex>'`` when that is longer than ``sun_path``.
    """
    name = device.encode('utf-8')
    if b'\0' in name or len(PREFIX) + len(name) > SUN_PATH_MAX:
        name = b'sha256:' + hashlib.sha256(name).hexdigest().encode()
    return PREFIX + name


class DeviceLock:
    """The held lock of one device; :meth:`close` (or the process ending) releases it.

    Args:
        device: the device name.
        sock: the bound, listening socket that is the lock.
    """

    def __init__(self, device: str, sock: socket.socket):
        self.device = device
        self._sock: socket.socket | None = sock

    @property
    def held(self) -> bool:
        """True until :meth:`close`."""
        return self._sock is not None

    def close(self) -> None:
        """Release the lock. Safe to call more than once."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        _held.discard(self)

    def _drop_in_child(self) -> None:
        # a forked child closes its copy: the name stays bound by the parent's descriptor
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def __repr__(self) -> str:
        return f'<DeviceLock {self.device!r} {"held" if self.held else "released"}>'


def _close_all_in_child() -> None:
    for held in list(_held):
        held._drop_in_child()
    _held.clear()


def _install_fork_hook() -> None:
    global _fork_hook_installed
    with _fork_hook:
        if not _fork_hook_installed:
            os.register_at_fork(after_in_child=_close_all_in_child)
            _fork_hook_installed = True


def acquire(device: str) -> DeviceLock:
    """Take the one-instance lock of ``device`` on this host.

    Args:
        device: the device name (PV prefix).

    Returns:
        The held :class:`DeviceLock`; close it to release the device.

    Raises:
        DeviceBusy: another process holds the device; the message names its pid and user when the
            kernel tells them (``SO_PEERCRED``).
        OSError: the socket could not be made at all (not a Linux host).
    """
    _install_fork_hook()
    address = lock_address(device)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)    # close-on-exec: Python's default
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        if err.errno != errno.EADDRINUSE:
            raise
        holder = describe_holder(address)
        raise DeviceBusy(f'device {device} is already running on this host ({holder}); stop it first, '
                         'or run this one with another device name') from None
    sock.listen(socket.SOMAXCONN)
    held = DeviceLock(device, sock)
    _held.add(held)
    return held


def describe_holder(address: bytes) -> str:
    """'pid 1234, user ioc' for the process that holds the lock at ``address``, as far as it is known."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        probe.connect(address)
        pid, uid, _ = struct.unpack('3i', probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                            struct.calcsize('3i')))
    except OSError:
        return 'held by a process whose pid is unknown; `ss -xlp` lists it'
    finally:
        probe.close()
    return f'pid {pid}, user {_user_name(uid)}'


def _user_name(uid: int) -> str:
    try:
        import pwd
        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f'uid {uid}'
