"""The process's one Channel Access client context, and attaching it to whatever thread uses it.

libca keeps its context per thread: a thread that never attached the context our channels live in
gets a new, empty one on its first CA call, and its puts then sit in that context's queue for ever.
Every entry point of :class:`devioc.channels.PV` therefore checks a thread-local flag first (one
attribute read on the fast path) and attaches the context once per thread (``ca_attach_context``,
what pyepics' ``use_initial_context`` does). The context is pyepics' own initial context, so the
app's pyepics PVs and devioc's channels share one context and never fight over a thread.

libca reads its environment (address lists) once, when the context is made. The first model makes
it after its softIoc serves, with ``127.0.0.1:<its port>`` added to ``EPICS_CA_ADDR_LIST`` for the
context only (the process environment, seen by child processes, is left as it was): a model with
its own ``ca_port`` reaches its IOC whatever the site's address list. (``EPICS_CA_NAME_SERVERS``
would reach it too, but libca 7.0's TCP name-server circuit breaks, "Ignored conn resp with bad
native data type", when a later model's softIoc comes up on the same port in the same process.)
"""
from __future__ import annotations

import ctypes
import os
import threading

from epics import ca, dbr

DEFAULT_SERVER_PORT = 5064


class _Attached(threading.local):
    attached = False


_tls = _Attached()
_lock = threading.Lock()
#: the environment the context was made with (None until made; {} when pyepics made it before us)
_made_with: dict[str, str] | None = None
#: True once the context is complete: pyepics sets ``ca.libca`` before it has set up the library's
#: argument types and the initial context, so another thread must not take ``libca`` as the sign
_complete = False


def attach() -> None:
    """Attach the process's CA context to the calling thread (once per thread; cheap after)."""
    if _tls.attached:
        return
    if not _complete:
        make_context()  # under the lock: a thread making the context meanwhile is waited for
    context = ca.initial_context
    current = ca.libca.ca_current_context()
    if current and current != context:
        ca.libca.ca_detach_context()  # a context this thread made on its own: it holds none of our channels
        current = None
    if not current:
        status = ca.libca.ca_attach_context(context)
        if status not in (dbr.ECA_NORMAL, dbr.ECA_ISATTACHED):
            raise RuntimeError(f'cannot attach the CA context to thread {threading.current_thread().name}: '
                               f'{ca.message(status)}')
    _tls.attached = True


def make_context(servers: list[str] | tuple[str, ...] = ()) -> bool:
    """Make the process's CA context (pyepics' initial context) if not made yet; True if made now.

    Args:
        servers: ``host:port`` entries added to EPICS_CA_ADDR_LIST for this context only.
    """
    global _made_with, _complete
    with _lock:
        if ca.libca is not None:
            if _made_with is None:
                _made_with = {}  # made by pyepics before any model: its environment is unknown
            _complete = True
            return False
        saved = {key: os.environ.get(key) for key in ('EPICS_CA_ADDR_LIST',)}
        listed = (saved['EPICS_CA_ADDR_LIST'] or '').split()
        extra = ' '.join(server for server in servers if server not in listed)
        try:
            if extra:
                os.environ['EPICS_CA_ADDR_LIST'] = ' '.join(filter(None, (saved['EPICS_CA_ADDR_LIST'], extra)))
            _made_with = {key: value for key, value in os.environ.items() if key.startswith('EPICS_CA')}
            from .softioc import add_ca_repeater_to_path
            add_ca_repeater_to_path()  # libca starts caRepeater from PATH with its first context
            ca.initialize_libca()
            # libca reads the address list when it makes its UDP search client, on the first channel:
            # make one now, while the environment above is in place
            probe = dbr.chid_t()
            if ca.libca.ca_create_channel(b'devioc:context-probe', None, None, 0, ctypes.byref(probe)) \
                    == dbr.ECA_NORMAL:
                ca.libca.ca_clear_channel(probe)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        _tls.attached = True
        _complete = True
        return True


def made() -> bool:
    """True once the CA context exists."""
    return ca.libca is not None


def reaches(port: int, host_port: int | None = None) -> bool | None:
    """Whether the existing context searches CA server ``port``: True, False, or None (not known).

    A libca context searches the ports in EPICS_CA_ADDR_LIST / EPICS_CA_NAME_SERVERS entries, and its
    own EPICS_CA_SERVER_PORT (5064 by default) on entries without a port and on the automatic list.
    """
    if _made_with is None or not _made_with:
        return None
    env = _made_with
    default = int(env.get('EPICS_CA_SERVER_PORT') or DEFAULT_SERVER_PORT)
    entries = (env.get('EPICS_CA_ADDR_LIST', '') + ' ' + env.get('EPICS_CA_NAME_SERVERS', '')).split()
    ports = set()
    for entry in entries:
        _, _, tail = entry.partition(':')
        ports.add(int(tail) if tail.isdigit() else default)
    if env.get('EPICS_CA_AUTO_ADDR_LIST', 'YES').upper() != 'NO':
        ports.add(default)
    return port in ports


def flush() -> None:
    """Send everything libca has queued in the calling thread's context now."""
    if not _tls.attached:
        attach()
    ca.libca.ca_flush_io()


def forget_thread_state_after_fork() -> None:
    """In a forked child: the parent's context is not usable there; nothing is attached."""
    _tls.attached = False
