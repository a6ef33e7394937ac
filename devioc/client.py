"""Call the ``@models.function`` methods of a running devioc app from Python, over Channel Access.

    from devioc.client import Client

    robot = Client('ROBOT-1')
    robot.mount(port='L3')          # -> the return value; RPCError('KeyError: ...') if it raised
    robot.functions['mount']        # its signature, as the app declared it

Each call writes one JSON request to ``<device>:<fn>:rpc.VAL$`` with a put with callback (the
record completes that put only once the app has written the reply), then reads
``<device>:<fn>:reply`` and picks its own reply by call id: two clients never see each other's
results, and no argument is shared between calls (see :mod:`devioc.rpc` for the PV layout).

:class:`DeferredClient` (Twisted) and :class:`AsyncClient` (asyncio) make the same calls in a
worker thread and return a Deferred or a coroutine.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any, Callable

import numpy as np

from .rpc import RPCError, decode_hook, dumps

#: seconds added to a call's own timeout for the client's wait (queueing, round trips)
SLACK = 10.0
#: name of the keyword that sets a call's timeout when the function has an argument named ``timeout``
TIMEOUT_KEYWORD = '_timeout'
#: one lock per reply channel of this process: pyepics joins a get to one already pending on the same
#: channel, which may have been sent before this thread's call ended (its reply not in it yet)
_read_locks: dict[str, threading.Lock] = {}
_read_locks_guard = threading.Lock()


class RPCConnectionError(ConnectionError):
    """The device's functions cannot be reached (no app serves them, or the network cannot see it)."""


class Client:
    """The functions of device ``device`` as methods: ``Client('ROBOT-1').mount(port='L3')``.

    Args:
        device: the device name the app serves (its model's ``device_name``).
        timeout: seconds to wait for the device's channels to connect.

    Raises:
        RPCConnectionError: ``<device>:rpc:functions`` did not connect within ``timeout``.

    A call's keyword ``timeout`` (or ``_timeout`` when the function has an argument of that name)
    sets the call's timeout in seconds: the app cancels the call then, with TimeoutError.
    """

    def __init__(self, device: str, timeout: float = 5.0):
        from . import ca as context

        self.device = device
        self._connect_timeout = timeout
        self._channels: dict[str, Any] = {}
        self._lock = threading.Lock()
        context.attach()   # thread-safe, unlike pyepics' use_initial_context on a fresh libca
        text = self._read(f'{device}:rpc:functions')
        try:
            self.functions: dict[str, dict] = json.loads(text)
        except ValueError:
            raise RPCConnectionError(f'{device}:rpc:functions holds no list of functions ({text[:60]!r}): is a devioc '
                                     'app with @models.function methods serving this device?') from None

    # -- channels
    def _channel(self, name: str) -> Any:
        from epics import ca

        with self._lock:
            chid = self._channels.get(name)
            if chid is None:
                chid = ca.create_channel(name, connect=False, auto_cb=False)
                self._channels[name] = chid
        if not ca.isConnected(chid) and not ca.connect_channel(chid, timeout=self._connect_timeout):
            raise RPCConnectionError(f'{name} did not connect within {self._connect_timeout} s: is the app serving '
                                     f'{self.device} running, and does EPICS_CA_ADDR_LIST reach its host?')
        return chid

    def _read(self, name: str) -> str:
        from epics import ca

        with _read_locks_guard:
            lock = _read_locks.setdefault(name, threading.Lock())
        with lock:
            value = ca.get(self._channel(name), as_numpy=True, timeout=self._connect_timeout)
        if value is None:
            raise RPCConnectionError(f'{name} sent no value within {self._connect_timeout} s')
        return bytes(np.asarray(value, dtype=np.uint8)).split(b'\0', 1)[0].decode('utf-8', 'replace')

    # -- calls
    def __getattr__(self, name: str) -> Callable[..., Any]:
        functions = self.__dict__.get('functions', {})
        if name in functions:
            def method(*args: Any, **kwargs: Any) -> Any:
                return self.call(name, *args, **kwargs)

            method.__name__ = name
            method.__doc__ = f'{functions[name]["signature"]}\n\n{functions[name].get("doc", "")}'
            return method
        raise AttributeError(f'{self.device} serves no function {name!r} (it serves: '
                             f'{", ".join(sorted(functions)) or "none"})')

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.__dict__.get('functions', {})))

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call function ``name`` with ``args`` and ``kwargs``; returns its result.

        Raises:
            AttributeError: the device serves no such function.
            RPCError: the call failed in the app; ``type_name`` and ``message`` are its exception's
                (TimeoutError when it ran over its timeout, CancelledError when cancelled, BusyError
                when the function was busy with a call from its ``:call`` trigger).
            TimeoutError: no reply came within the call's timeout plus SLACK seconds.
            RPCConnectionError: the function's channels cannot be reached.
        """
        from epics import ca

        from . import ca as context

        if name not in self.functions:
            getattr(self, name)  # the AttributeError listing what is served
        spec = self.functions[name]
        names = {argument['name'] for argument in spec['arguments']}
        timeout = kwargs.pop(TIMEOUT_KEYWORD, None)
        if timeout is None and 'timeout' not in names and 'timeout' in kwargs:
            timeout = kwargs.pop('timeout')
        call_id = uuid.uuid4().hex[:16]
        request = dumps({'id': call_id, 'args': list(args), 'kwargs': kwargs, 'timeout': timeout})
        data = np.frombuffer(request.encode('utf-8') + b'\0', dtype=np.uint8)
        if data.size > spec.get('size', 16384):
            raise ValueError(f'the request to {name} takes {data.size} bytes, over its {spec.get("size")}: send '
                             'smaller arguments, or declare @function(size=...) larger in the app')
        context.attach()
        request_channel = self._channel(f'{self.device}:{name}:rpc.VAL$')
        reply_name = f'{self.device}:{name}:reply'
        self._channel(reply_name)
        wait = (timeout or spec.get('timeout', 60.0)) + SLACK
        started = time.monotonic()
        status = ca.put(request_channel, data, wait=True, timeout=wait)
        if status is None or status < 0 or time.monotonic() - started > wait:
            self._cancel(name, call_id)
            raise TimeoutError(f'{self.device}:{name}: no reply within {wait:g} s (call {call_id} may still be '
                               'queued or running; it was asked to cancel)')
        text = self._read(reply_name)
        try:   # empty when softIoc was restarted or stopped during the call
            replies = json.loads(text, object_hook=decode_hook) if text.strip() else []
        except ValueError:
            raise RPCError('BadReply', f'{reply_name} holds no JSON list of replies ({text[:60]!r}): is a devioc app '
                           f'serving {self.device}?') from None
        for reply in replies if isinstance(replies, list) else []:
            if isinstance(reply, dict) and reply.get('id') == call_id:
                if reply.get('ok'):
                    return reply.get('result')
                error = reply.get('error') or {}
                raise RPCError(str(error.get('type', 'Error')), str(error.get('message', '')))
        raise RPCError('ReplyLost', f'no reply to call {call_id} of {name} in {reply_name} once its put completed: '
                       'the app stopped (or softIoc lost its link to the app) during the call, or so many calls '
                       'ended meanwhile that the reply left the history (then declare @function(size=...) larger)')

    def _cancel(self, name: str, call_id: str) -> None:
        from epics import ca

        try:
            ca.put(self._channel(f'{self.device}:{name}:cancel'), call_id, wait=True, timeout=self._connect_timeout)
        except Exception:  # the call's own TimeoutError says what matters
            pass

    def cancel(self, name: str, call_id: str = '*') -> None:
        """Cancel function ``name``'s running call (any call by default; else the one with ``call_id``)."""
        from epics import ca

        from . import ca as context

        context.attach()
        ca.put(self._channel(f'{self.device}:{name}:cancel'), call_id, wait=True, timeout=self._connect_timeout)


class DeferredClient:
    """:class:`Client` for Twisted apps: each method returns a Deferred (the call runs in the reactor's
    thread pool, so the reactor never waits on the network)."""

    def __init__(self, device: str, timeout: float = 5.0):
        self.client = Client(device, timeout)
        self.functions = self.client.functions

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """A Deferred firing with ``Client.call(name, *args, **kwargs)``'s result (or its error)."""
        from twisted.internet import threads

        return threads.deferToThread(self.client.call, name, *args, **kwargs)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name in self.__dict__.get('functions', {}):
            return lambda *args, **kwargs: self.call(name, *args, **kwargs)
        raise AttributeError(f'{self.client.device} serves no function {name!r}')


class AsyncClient:
    """:class:`Client` for asyncio: ``await AsyncClient('ROBOT-1').mount(port='L3')`` (the call runs in
    a worker thread)."""

    def __init__(self, device: str, timeout: float = 5.0):
        self.client = Client(device, timeout)
        self.functions = self.client.functions

    async def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """``Client.call(name, *args, **kwargs)``, awaited."""
        import asyncio

        return await asyncio.to_thread(self.client.call, name, *args, **kwargs)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name in self.__dict__.get('functions', {}):
            return lambda *args, **kwargs: self.call(name, *args, **kwargs)
        raise AttributeError(f'{self.client.device} serves no function {name!r}')
