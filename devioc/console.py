"""``devioc console``: attach the terminal to a deployed instance's procServ console socket.

The generated systemd unit and SysV script run procServ with ``--port=unix:::0660:<run dir>/console``:
a UNIX socket owned by the service user and its group, mode 0660, so only that user, root and members
of the group can open the IOC shell. This module finds the socket of an instance and relays bytes
between it and the terminal (raw mode, so procServ's own keys reach it: Ctrl-X restarts the app,
Ctrl-T toggles auto-restart). Ctrl-] leaves, as in telnet. procServ speaks telnet: its option
negotiation (IAC ...) is dropped from what is shown.
"""
from __future__ import annotations

import glob
import os
import select
import socket
import sys
import time
from pathlib import Path

QUIT_KEY = b'\x1d'           # Ctrl-]
RUN_ROOTS = ('/run', '/var/run')
IAC, SB, SE = 0xff, 0xfa, 0xf0


class ConsoleError(RuntimeError):
    """The console socket cannot be found or opened; the message says what to do."""


def find_socket(instance: str, run_roots: tuple[str, ...] = RUN_ROOTS) -> Path:
    """The console socket of ``instance`` (``MYIOC-001`` or ``project@MYIOC-001``).

    Args:
        instance: the instance name, optionally prefixed with the project (the unit's name).
        run_roots: where the run directories are (``/run/<project>/<instance>/console``).

    Raises:
        ConsoleError: no such socket, or several projects have that instance.
    """
    project, _, name = instance.rpartition('@')
    pattern = f'{project or "*"}/{name}/console'
    found: dict[str, Path] = {}
    for root in run_roots:
        for path in glob.glob(os.path.join(root, pattern)):
            found.setdefault(os.path.realpath(path), Path(path))
    if not found:
        where = ' or '.join(os.path.join(root, pattern) for root in run_roots)
        raise ConsoleError(f'no console socket for instance {instance!r} ({where}): is the instance running '
                           f'(systemctl status {project or "<project>"}@{name})? Or give the path with --socket')
    if len(found) > 1:
        names = ', '.join(sorted(str(p) for p in found.values()))
        raise ConsoleError(f'several instances are named {name!r} ({names}): say which, e.g. '
                           f'devioc console <project>@{name}')
    return next(iter(found.values()))


def connect(path: str | os.PathLike) -> socket.socket:
    """Connect to the console socket at ``path``.

    Raises:
        ConsoleError: the socket is missing, refuses, or this user may not open it (the message names
            the socket's owner and group, and the ways in).
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(path))
    except PermissionError:
        sock.close()
        owner, group = _owner(path)
        if owner is None:
            raise ConsoleError(f'permission denied on {path}: this user cannot reach the socket\'s directory. '
                               'Run it as the service user (sudo -u USER devioc console ...) or as root') from None
        raise ConsoleError(f'permission denied on {path}: the console is for user {owner} and group {group} '
                           f'(mode 0660). Run it as that user (sudo -u {owner} devioc console ...), as root, or '
                           f'ask for membership of group {group}') from None
    except OSError as err:
        sock.close()
        raise ConsoleError(f'cannot connect to {path}: {err.strerror}; is the instance running?') from None
    return sock


def _owner(path: str | os.PathLike) -> tuple[str | None, str | None]:
    import grp
    import pwd
    try:
        st = os.stat(path)
    except OSError:
        return None, None
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return owner, group


class TelnetFilter:
    """Removes telnet commands (IAC sequences) from a byte stream, across chunk boundaries."""

    def __init__(self) -> None:
        self._pending = b''
        self._in_sb = False

    def feed(self, data: bytes) -> bytes:
        """The text in ``data`` (plus anything held back from the previous chunk)."""
        data, self._pending = self._pending + data, b''
        out = bytearray()
        i = 0
        while i < len(data):
            byte = data[i]
            if byte != IAC:
                if not self._in_sb:
                    out.append(byte)
                i += 1
                continue
            if i + 1 >= len(data):
                self._pending = data[i:]
                break
            command = data[i + 1]
            if command == IAC:
                if not self._in_sb:
                    out.append(IAC)
                i += 2
            elif command == SB:
                self._in_sb = True
                i += 2
            elif command == SE:
                self._in_sb = False
                i += 2
            elif 0xfb <= command <= 0xfe:        # WILL, WONT, DO, DONT + option
                if i + 2 >= len(data):
                    self._pending = data[i:]
                    break
                i += 3
            else:
                i += 2
        return bytes(out)


def attach(sock: socket.socket, stdin=None, stdout=None, quiet_after_eof: float = 1.0) -> None:
    """Relay between the terminal and the console until Ctrl-], the end of input, or procServ closing.

    On a terminal, stdin is put in raw mode (restored on return). When stdin is not a terminal (a
    pipe, a script), its lines are sent and output is shown until it has been quiet for
    ``quiet_after_eof`` seconds after the end of input.
    """
    stdin = stdin if stdin is not None else sys.stdin
    stdout = stdout if stdout is not None else sys.stdout
    in_fd, out_fd = stdin.fileno(), stdout.fileno()
    filt = TelnetFilter()
    saved = None
    if os.isatty(in_fd):
        import termios
        import tty
        saved = termios.tcgetattr(in_fd)
        tty.setraw(in_fd)
        os.write(out_fd, b'[devioc console: Ctrl-] leaves; Ctrl-X restarts the app; Ctrl-T toggles auto-restart]\r\n')
    eof_at = None
    try:
        while True:
            watched = [sock] if eof_at is not None else [sock, in_fd]
            wait = None if eof_at is None else max(0.0, eof_at + quiet_after_eof - time.monotonic())
            ready, _, _ = select.select(watched, [], [], wait)
            if not ready:
                return
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    os.write(out_fd, b'\r\n[devioc console: procServ closed the connection]\r\n')
                    return
                text = filt.feed(data)
                if text:
                    os.write(out_fd, text)
                if eof_at is not None:
                    eof_at = time.monotonic()
            if in_fd in ready:
                data = os.read(in_fd, 4096)
                if not data:
                    eof_at = time.monotonic()
                    continue
                if saved is not None and QUIT_KEY in data:
                    data = data[:data.index(QUIT_KEY)]
                    if data:
                        sock.sendall(data)
                    return
                sock.sendall(data)
    finally:
        if saved is not None:
            import termios
            termios.tcsetattr(in_fd, termios.TCSADRAIN, saved)
            os.write(out_fd, b'\r\n')
