"""Remote procedure calls over EPICS: methods of the app, called from any CA or PVA client.

Declare a method of the app (the model's ``callbacks`` object) with :func:`function`::

    class App:
        @models.function(timeout=120)
        async def mount(self, port: str, puck: int = 1, speed: float = 0.5) -> str:
            ...

and the model serves, for device ``DEV`` (names fixed and documented, for screens and other tools):

=========================  ===========================================================================
``DEV:mount:port`` ...     one record per argument (ao, longout, stringout or CHAR waveform, waveform)
``DEV:mount:call``         the trigger (longout): a put with callback (``caput -c``) calls ``mount``
                           with the arguments' current values and completes when the call has ended
``DEV:mount:status``       mbbo: idle, busy, done, error
``DEV:mount:message``      the error of the last call, ``TypeName: message`` (empty when it succeeded)
``DEV:mount:return``       the last return value (by the return hint; JSON text when none fits)
``DEV:mount:rpc``          the atomic request (lso, write ``DEV:mount:rpc.VAL$``): one JSON object
                           ``{"id": ..., "args": [...], "kwargs": {...}, "timeout": s}``; a put with
                           callback completes when the reply is in ``DEV:mount:reply``
``DEV:mount:reply``        JSON list of the latest replies, newest first (CHAR waveform):
                           ``{"id": ..., "ok": true, "result": ...}`` or ``{"id": ..., "ok": false,
                           "error": {"type": ..., "message": ...}}``
``DEV:mount:cancel``       write a call id (or ``*``) to cancel the running call (CancelledError)
``DEV:rpc:functions``      JSON of every function's signature (``devioc call DEV --list``)
=========================  ===========================================================================

How a call completes when the app is done: ``call`` and ``rpc`` are "Async Soft Channel" output
records whose OUT link points at a PV of the app's own CA server (:mod:`devioc.appserver`, as for
``blocking=True`` fields). EPICS base keeps such a record active (PACT) until that link's put
completes, and the app answers it only once the call has ended and its reply, status, message and
return value are written. Calls of one function are therefore serialized by the record: a put with
callback made while a call runs is queued by softIoc (dbNotify) and processed after it, each
completing in turn. A plain put (no callback) made meanwhile can be replaced by a later one (the
record's RPRO keeps only the latest value): clients must use a put with callback (``caput -c``).
A call arriving through ``call`` while one from ``rpc`` runs (or the reverse) gets a ``BusyError``.

Why JSON and not pyon (SiPyCo's Python-literal encoding): every client on every site can write and
parse it (the C tools, PVA clients, web screens, other languages), and parsing it runs no Python
code. numpy arrays travel as ``{"__ndarray__": [...], "dtype": "float64", "shape": [...]}``.

Long calls: a function may return a Deferred or be a coroutine (``async def``); a plain function
runs on the reactor thread, so a slow one should say ``threaded=True`` (it then runs in the
reactor's thread pool). A call is cancelled after its timeout (the request's ``timeout``, else the
declaration's) with ``TimeoutError`` (a ``threaded=True`` call's thread cannot be stopped: the function
answers ``BusyError`` until it has returned); an exception in it becomes the reply's error and never
wedges the function.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import itertools
import json
import logging
import os
import re
import typing
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

logger = logging.getLogger(__name__)

CHECK_ID = 'devioc.E028'
MARK = '_devioc_function'
#: record names a function's arguments cannot take (its own records)
OWN_NAMES = ('call', 'status', 'message', 'return', 'rpc', 'reply', 'cancel')
STATES = ('idle', 'busy', 'done', 'error')
DEFAULT_TIMEOUT = 60.0
#: ids of queued calls cancelled before they ran, remembered per function
CANCELLED_KEPT = 100
#: bytes of the request (lso SIZV) and of the reply history (CHAR waveform NELM)
DEFAULT_SIZE = 16384
MAX_SIZE = 65535
_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


class RPCError(Exception):
    """A call failed remotely: ``type_name`` and ``message`` are the remote exception's."""

    def __init__(self, type_name: str, message: str):
        super().__init__(f'{type_name}: {message}')
        self.type_name, self.message = type_name, message


class BusyError(RuntimeError):
    """The function is running a call from its other entry point (``call`` vs ``rpc``)."""


# -- declaration ---------------------------------------------------------------------------------
@dataclass
class Argument:
    """One argument of a function: its name, kind ('float', 'int', 'bool', 'str', 'array', 'json')
    and default (``inspect.Parameter.empty`` when required)."""

    name: str
    kind: str
    default: Any = inspect.Parameter.empty
    dtype: str = 'float64'

    def describe(self) -> dict:
        entry = {'name': self.name, 'kind': self.kind}
        if self.default is not inspect.Parameter.empty:
            entry['default'] = encode_value(self.default)
        return entry


@dataclass
class Spec:
    """What ``@function`` declared: the function's served name, arguments, return kind and limits."""

    name: str
    method: str
    arguments: list[Argument]
    returns: str
    timeout: float
    length: int
    size: int
    threaded: bool
    doc: str
    problems: list[tuple[str, str]] = field(default_factory=list)

    def signature(self) -> str:
        """``mount(port: str, puck: int = 1) -> str``."""
        parts = [f'{a.name}: {a.kind}' + ('' if a.default is inspect.Parameter.empty else f' = {a.default!r}')
                 for a in self.arguments]
        return f'{self.name}({", ".join(parts)}) -> {self.returns}'

    def describe(self) -> dict:
        return {'name': self.name, 'arguments': [a.describe() for a in self.arguments], 'returns': self.returns,
                'timeout': self.timeout, 'size': self.size, 'signature': self.signature(), 'doc': self.doc}


def _kind(hint: Any) -> tuple[str, str]:
    """``(kind, dtype)`` of a type hint."""
    origin = typing.get_origin(hint)
    if hint is bool:
        return 'bool', ''
    if hint is int:
        return 'int', ''
    if hint is float:
        return 'float', ''
    if hint is str:
        return 'str', ''
    if hint is np.ndarray or origin is np.ndarray:
        return 'array', 'float64'
    if hint in (list, tuple) or origin in (list, tuple):
        items = typing.get_args(hint)
        if items and all(item in (int, float) for item in items if item is not Ellipsis):
            return 'array', 'int64' if items[0] is int else 'float64'
    return 'json', ''


def function(method: Callable | None = None, *, name: str | None = None, timeout: float = DEFAULT_TIMEOUT,
             length: int = 256, size: int = DEFAULT_SIZE, threaded: bool = False) -> Any:
    """Serve an app method as a remote procedure (``@models.function`` or ``@models.function(...)``).

    Args:
        method: the method (when used without parentheses).
        name: the served name (default: the method's), part of every PV name: ``<device>:<name>:...``.
        timeout: seconds a call may take before it is cancelled with TimeoutError (a request may give
            its own).
        length: bytes of a ``str`` argument's record and of JSON-valued ones; elements of an array's.
        size: bytes of the JSON request and of the reply history (at most 65535, the lso's SIZV limit).
        threaded: run a plain (blocking) method in the reactor's thread pool, not on the reactor.

    Problems (a ``*args`` parameter, a bad name, a bad timeout) are reported as devioc.E028 when the
    model starts with this app.
    """
    def declare(fn: Callable) -> Callable:
        setattr(fn, MARK, _spec(fn, name, timeout, length, size, threaded))
        return fn

    return declare(method) if method is not None else declare


def _spec(fn: Callable, name: str | None, timeout: Any, length: Any, size: Any, threaded: bool) -> Spec:
    problems: list[tuple[str, str]] = []
    served = name if name is not None else getattr(fn, '__name__', '?')
    if not isinstance(served, str) or not _NAME.match(served):
        problems.append((f'function name {served!r} is not a plain name (letters, digits, _)', 'pass name="..."'))
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float('inf'):
        problems.append((f'timeout must be a positive number of seconds, not {timeout!r}', 'e.g. timeout=120'))
        timeout = DEFAULT_TIMEOUT
    for label, value, low in (('length', length, 1), ('size', size, 256)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_SIZE:
            problems.append((f'{label} must be an int from {low} to {MAX_SIZE}, not {value!r}',
                             f'e.g. {label}={DEFAULT_SIZE if label == "size" else 256}'))
    length = length if isinstance(length, int) and 1 <= length <= MAX_SIZE else 256
    size = size if isinstance(size, int) and 256 <= size <= MAX_SIZE else DEFAULT_SIZE
    try:
        signature = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
    except (TypeError, ValueError, NameError) as err:
        problems.append((f'cannot read the signature or type hints: {err}', 'use plain parameters and '
                         'importable type hints'))
        signature, hints = inspect.Signature(), {}
    arguments = []
    for index, param in enumerate(signature.parameters.values()):
        if index == 0 and param.name == 'self':
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            star = '*' if param.kind == param.VAR_POSITIONAL else '**'
            problems.append((f'{star}{param.name} cannot be served: each argument is a PV of its own',
                             'name every argument'))
            continue
        if param.name in OWN_NAMES:
            problems.append((f'argument {param.name!r} has the name of one of the function\'s own PVs '
                             f'({", ".join(OWN_NAMES)})', 'rename the argument'))
        kind, dtype = _kind(hints.get(param.name, Any))
        arguments.append(Argument(param.name, kind, param.default, dtype or 'float64'))
    if 'return' not in hints:
        returns = 'json'
    else:
        returns = 'none' if hints['return'] is type(None) else _kind(hints['return'])[0]
    doc = inspect.getdoc(fn) or ''
    return Spec(served, getattr(fn, '__name__', served), arguments, returns, float(timeout), length, size,
                bool(threaded), doc.split('\n\n')[0][:200], problems)


def functions_of(callbacks: Any) -> dict[str, tuple[Spec, Callable]]:
    """``{served name: (spec, bound method)}`` of the ``@function`` methods of ``callbacks``."""
    found = {}
    owner = callbacks if isinstance(callbacks, type) else type(callbacks)
    for attr in dir(owner):
        spec = getattr(getattr(owner, attr, None), MARK, None)
        if isinstance(spec, Spec):
            found[spec.name] = (spec, getattr(callbacks, attr))
    return found


def problems(model_class: type, callbacks: Any, device: str) -> list[Any]:
    """devioc.E028 messages for the functions of ``callbacks`` served by ``model_class`` on ``device``."""
    from .checks import CheckMessage

    messages = []
    owner = type(callbacks).__name__
    names = {record.name for record in model_class._fields.values()}
    seen: dict[str, str] = {}
    for served, (spec, _) in functions_of(callbacks).items():
        where = f'{owner}.{spec.method}'
        messages.extend(CheckMessage(CHECK_ID, msg, hint, where) for msg, hint in spec.problems)
        if served in seen:
            messages.append(CheckMessage(CHECK_ID, f'two methods are served as {served!r} ({seen[served]})',
                                         'give one of them name="..."', where))
        seen[served] = spec.method
        pvs = [f'{served}:{a.name}' for a in spec.arguments] + [f'{served}:{own}' for own in OWN_NAMES]
        for pv in pvs:
            if len(f'{device}:{pv}'.encode()) > 60:
                messages.append(CheckMessage(CHECK_ID, f'PV name {device}:{pv} is over 60 bytes (EPICS record '
                                             'name limit)', 'shorten the function, argument or device name', where))
            if pv in names:
                messages.append(CheckMessage(CHECK_ID, f'the model has a field named {pv!r}, a PV of function '
                                             f'{served}', 'rename the field or the function', where))
            if pv == 'rpc:functions':
                messages.append(CheckMessage(CHECK_ID, f'{device}:rpc:functions, a PV of function {served}, is '
                                             'devioc\'s list of functions', 'rename the function or the argument',
                                             where))
    if seen and 'rpc:functions' in names:
        messages.append(CheckMessage(CHECK_ID, 'the model has a field named \'rpc:functions\', devioc\'s list of '
                                     'functions', 'rename the field', owner))
    return messages


# -- values ----------------------------------------------------------------------------------------
def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {'__ndarray__': value.tolist(), 'dtype': str(value.dtype), 'shape': list(value.shape)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f'a {type(value).__name__} cannot be sent as JSON (send numbers, strings, lists, dicts, '
                    'numpy arrays)')


def encode_value(value: Any) -> Any:
    """``value`` as plain JSON data (numpy arrays as ``{"__ndarray__": ...}``)."""
    return json.loads(json.dumps(value, default=_default))


def decode_hook(obj: dict) -> Any:
    """``json.loads(..., object_hook=decode_hook)``: ``{"__ndarray__": ...}`` back to a numpy array."""
    if '__ndarray__' in obj:
        return np.array(obj['__ndarray__'], dtype=obj.get('dtype')).reshape(obj.get('shape', [-1]))
    return obj


def dumps(value: Any) -> str:
    """Compact JSON with numpy arrays tagged (see :func:`decode_hook`)."""
    return json.dumps(value, default=_default, separators=(',', ':'))


def coerce(argument: Argument, value: Any) -> Any:
    """``value`` as ``argument``'s kind; TypeError naming the argument when it cannot be."""
    kind = argument.kind
    try:
        if kind == 'float' and isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            return float(value)
        if kind == 'int' and isinstance(value, (int, np.integer, float, np.floating)) and not isinstance(value, bool) \
                and float(value).is_integer():
            return int(value)
        if kind == 'bool' and (isinstance(value, (bool, np.bool_)) or value in (0, 1)):
            return bool(value)
        if kind == 'str' and isinstance(value, str):
            return value
        if kind == 'array' and not isinstance(value, (str, bytes, dict)):
            array = np.asarray(value, dtype=argument.dtype)   # its shape kept: a 2-D request stays 2-D
            return array if array.ndim else array.ravel()
        if kind == 'json':
            return value
    except (TypeError, ValueError):
        pass
    raise TypeError(f'argument {argument.name!r} must be {kind}, not {type(value).__name__} {value!r:.60}')


# -- serving ---------------------------------------------------------------------------------------
class _Function:
    """One served function of a running model: its records' channels and its running call."""

    def __init__(self, spec: Spec, method: Callable, hidden: str):
        self.spec, self.method, self.hidden = spec, method, hidden
        self.pvs: dict[str, Any] = {}      # args by name, and 'status', 'message', 'return', 'reply'
        self.running: tuple[str, Any] | None = None   # (call id, Deferred)
        self.cancelled: list[str] = []   # ids cancelled before their request came out of softIoc's queue
        self.thread: str | None = None   # id of the threaded call whose thread still runs (it cannot be stopped)
        self.replies: list[dict] = []
        self.calls = itertools.count(1)


class Server:
    """The functions of one running model: their records, the app server that holds their calls."""

    def __init__(self, model: Any, functions: dict[str, tuple[Spec, Callable]]):
        from .appserver import AppServer, softioc_pid

        self.model = model
        self.server = AppServer(peer_pid=softioc_pid(model))
        self.token = f'{os.getpid()}{uuid.uuid4().hex[:8]}'
        self.functions: dict[str, _Function] = {}
        for served, (spec, method) in functions.items():
            fn = _Function(spec, method, f'{model._device_name}:{served}:_rpc{self.token}')
            self.functions[served] = fn
            self.server.add(fn.hidden + 'r', 'chars', self._putter(self._request, fn))
            self.server.add(fn.hidden + 't', 'int', self._putter(self._trigger, fn))
            self.server.add(fn.hidden + 'c', 'string', self._putter(self._cancel, fn))
        self.record_class = self._record_class()
        self.listing: Any = None
        self.stopped = False

    # -- records
    def _record_class(self) -> type:
        """A model class (never started) holding the functions' records, rendered with devioc's rules."""
        from . import models

        attrs: dict[str, Any] = {}
        #: attribute -> (served name, part): attributes by index, as served names may hold '__' themselves
        self.parts: dict[str, tuple[str, str]] = {}
        for index, (served, fn) in enumerate(self.functions.items()):
            spec = fn.spec
            records = {arg.name: _record(f'{served}:{arg.name}', arg.kind, spec.length, arg.default)
                       for arg in spec.arguments}
            records['call'] = models.Integer(f'{served}:call', desc=f'call {served}'[:40],
                                             DTYP='Async Soft Channel', OUT=f'{fn.hidden}t CA')
            records['cancel'] = models.String(f'{served}:cancel', max_length=39, desc='call id to cancel',
                                              DTYP='Async Soft Channel', OUT=f'{fn.hidden}c CA')
            # the app's answers: no client writes them (a forged reply or status would reach other clients);
            # the app writes them through softIoc's shell (devioc.access). :return stays writable: a str
            # result may hold line breaks, which a shell line cannot carry
            records['status'] = models.Enum(f'{served}:status', choices=list(STATES), default=0, read_only=True)
            records['message'] = models.String(f'{served}:message', max_length=256, read_only=True)
            records['return'] = _record(f'{served}:return', spec.returns, spec.length)
            records['reply'] = models.String(f'{served}:reply', max_length=spec.size, read_only=True)
            for part, record in records.items():
                attrs[f'f{index}__{part}'] = record
                self.parts[f'f{index}__{part}'] = (served, part)
        attrs['rpc__functions'] = models.String('rpc:functions', max_length=MAX_SIZE, read_only=True)
        return models.ModelType(f'{type(self.model).__name__}Functions', (models.Model,), attrs)

    def extra_db(self) -> str:
        """The .db text of the functions' records (appended to the model's)."""
        from . import dbd, render

        text = render.render_db(self.record_class, self.model._device_name, self.model._macros)
        for served, fn in self.functions.items():  # the request: an lso, whose kind devioc has no class for
            name = dbd.dbstring(f'{self.model._device_name}:{served}:rpc')
            text += (f'\nrecord(lso, "{name}") {{\n    field(DTYP, "Async Soft Channel")\n'
                     f'    field(SIZV, "{fn.spec.size}")\n    field(OUT, "{dbd.dbstring(fn.hidden)}r CA")\n}}\n')
        return text

    def start(self) -> None:
        """Start the app's CA server for the links (before softIoc starts)."""
        self.server.start()

    def environ(self, env: dict[str, str]) -> None:
        """Add the app server to softIoc's EPICS_CA_ADDR_LIST (the user's list is kept)."""
        env['EPICS_CA_ADDR_LIST'] = ' '.join(env.get('EPICS_CA_ADDR_LIST', '').split() + [self.server.address])

    def connect(self, reactor: Any) -> None:
        """Make the channels of the functions' records (they connect while the model's others do)."""
        from . import render
        from .channels import PV

        self.reactor = reactor
        records = render.expand_model(self.record_class, self.model._device_name, self.model._macros)
        fields = self.record_class._fields
        for attname, (pv_name, _) in records.items():
            served, part = self.parts.get(attname, ('', ''))
            pv = PV(pv_name, fields[attname], self.model)
            pv.connect(reactor)
            if attname == 'rpc__functions':
                self.listing = pv
            elif part not in ('call', 'cancel'):
                self.functions[served].pvs[part] = pv

    def ready(self, timeout: float = 10.0) -> None:
        """Wait for the channels, monitor the arguments and publish the list of functions.

        Raises:
            RuntimeError: a record did not connect within ``timeout`` seconds.
        """
        import time

        deadline = time.monotonic() + timeout
        pvs = [self.listing] + [pv for fn in self.functions.values() for pv in fn.pvs.values()]
        while not all(pv.connected for pv in pvs):
            if time.monotonic() > deadline:
                missing = [pv.name for pv in pvs if not pv.connected]
                raise RuntimeError(f'{len(missing)} function records did not connect within {timeout} s: {missing}')
            time.sleep(0.005)
        for fn in self.functions.values():
            for arg in fn.spec.arguments:
                fn.pvs[arg.name].subscribe()
        self.publish(timeout)

    def publish(self, timeout: float = 10.0) -> None:
        """Write the list of functions to ``<device>:rpc:functions`` (at start, and after each restart of
        softIoc, whose new record starts empty).

        Raises:
            RuntimeError: the list is over 65535 bytes.
        """
        listing = json.dumps({served: fn.spec.describe() for served, fn in self.functions.items()})
        if len(listing.encode()) >= MAX_SIZE:
            raise RuntimeError(f'the list of functions takes {len(listing.encode())} bytes, over {MAX_SIZE}: '
                               'shorten their docstrings or serve fewer functions')
        self.listing.put(listing, wait=True, timeout=timeout)

    def channels(self) -> list:
        """The channels of the functions' records (:mod:`devioc.restart` makes them again after a restart)."""
        return [self.listing] + [pv for fn in self.functions.values() for pv in fn.pvs.values()]

    def stop(self) -> None:
        """Stop the app server and drop the channels; calls still running end unreported."""
        self.stopped = True
        self.server.stop()
        for pv in [self.listing] + [pv for fn in self.functions.values() for pv in fn.pvs.values()]:
            if pv is not None:
                pv.disconnect()

    # -- calls (the putters run on the app server's asyncio thread; the work on the reactor)
    def _putter(self, handler: Callable, fn: _Function) -> Callable:
        async def put(value: Any) -> None:
            done: concurrent.futures.Future = concurrent.futures.Future()
            self.reactor.callFromThread(handler, fn, value, done)
            await asyncio.wrap_future(done)
        return put

    def _request(self, fn: _Function, text: Any, done: concurrent.futures.Future) -> None:
        """A JSON request written to ``<fn>:rpc`` (reactor thread)."""
        from twisted.internet import defer

        call_id = None
        try:
            if isinstance(text, (bytes, bytearray)):
                text = bytes(text).split(b'\0', 1)[0].decode('utf-8')
            request = json.loads(str(text), object_hook=decode_hook)
            if not isinstance(request, dict):
                raise ValueError('the request must be a JSON object {"id": ..., "args": [...], "kwargs": {...}}')
            call_id = request.get('id')
            args, kwargs = request.get('args', []), request.get('kwargs', {})
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise TypeError('"args" must be a JSON list and "kwargs" a JSON object')
            timeout = request.get('timeout')
            if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                        or not timeout > 0):
                raise TypeError(f'"timeout" must be a positive number of seconds, not {timeout!r}')
            bound = self._bind(fn, args, kwargs)
        except Exception as err:  # a bad request: the reply says why
            self._finish(fn, str(call_id) if call_id is not None else None, None, err, done)
            return
        if call_id is not None and str(call_id) in fn.cancelled:
            fn.cancelled.remove(str(call_id))
            self._finish(fn, str(call_id), None, defer.CancelledError(
                'the call was cancelled by a client before it ran (it was queued behind another call)'), done)
            return
        self._run(fn, str(call_id) if call_id is not None else f'rpc-{next(fn.calls)}', bound, timeout, done)

    def _trigger(self, fn: _Function, value: Any, done: concurrent.futures.Future) -> None:
        """A write to ``<fn>:call``: read every argument afresh, then call (reactor thread)."""
        from twisted.internet import defer

        done.all_records = True  # the put completes once status, message and return are written too
        reads = []
        for arg in fn.spec.arguments:
            d = defer.Deferred()
            fn.pvs[arg.name]._read_back(lambda d=d: self.reactor.callFromThread(d.callback, None))
            reads.append(d)

        def call(_: Any) -> None:
            try:
                kwargs = {a.name: _from_record(a, fn.pvs[a.name].get()) for a in fn.spec.arguments}
                bound = self._bind(fn, [], kwargs)
            except Exception as err:
                self._finish(fn, f'call-{next(fn.calls)}', None, err, done)
                return
            self._run(fn, f'call-{next(fn.calls)}', bound, None, done)

        defer.gatherResults(reads).addCallback(call)

    def _cancel(self, fn: _Function, value: Any, done: concurrent.futures.Future) -> None:
        """A write to ``<fn>:cancel``: cancel the running call if its id matches (or the value is ``*``)."""
        value = str(value).strip()
        if fn.running is not None and value in ('*', fn.running[0]):
            logger.info('%s: call %s cancelled by a client', fn.spec.name, fn.running[0])
            fn.running[1].cancel()
        elif value and value != '*':   # a call still queued in softIoc (its client gave up): never run it
            fn.cancelled.append(value)
            del fn.cancelled[:-CANCELLED_KEPT]
        done.set_result(None)

    def _bind(self, fn: _Function, args: list, kwargs: dict) -> inspect.BoundArguments:
        """The call's arguments bound to the signature and coerced to their kinds (TypeError otherwise)."""
        try:
            bound = inspect.signature(fn.method).bind(*args, **kwargs)
        except TypeError as err:
            raise TypeError(f'{fn.spec.signature()}: {err}') from None
        by_name = {a.name: a for a in fn.spec.arguments}
        for key, value in bound.arguments.items():
            if key in by_name:
                bound.arguments[key] = coerce(by_name[key], value)
        return bound

    def _run(self, fn: _Function, call_id: str, bound: inspect.BoundArguments, timeout: float | None,
             done: concurrent.futures.Future) -> None:
        from twisted.internet import defer, threads

        if fn.running is not None:
            self._finish(fn, call_id, None, BusyError(f'{fn.spec.name} is running call {fn.running[0]}; try again '
                                                      'when its status is not busy'), done)
            return
        if fn.thread is not None:
            self._finish(fn, call_id, None, BusyError(
                f'{fn.spec.name}: the thread of call {fn.thread}, which timed out or was cancelled, still runs (a '
                'thread cannot be stopped); try again when it has returned'), done)
            return
        try:
            if fn.spec.threaded:
                fn.thread = call_id   # until the method has returned in its thread
                result = threads.deferToThread(self._in_thread, fn, call_id, bound)
            else:
                result = fn.method(*bound.args, **bound.kwargs)
        except Exception as err:
            self._finish(fn, call_id, None, err, done)
            return
        if inspect.iscoroutine(result):
            result = defer.ensureDeferred(result)
        elif isinstance(result, asyncio.Future) or (inspect.isawaitable(result)
                                                    and not isinstance(result, defer.Deferred)):
            result = defer.Deferred.fromFuture(asyncio.ensure_future(result))
        if not isinstance(result, defer.Deferred):
            self._finish(fn, call_id, result, None, done)
            return
        fn.running = (call_id, result)
        self._publish(fn, {'status': 1, 'message': ''})
        limit = timeout or fn.spec.timeout
        result.addTimeout(limit, self.reactor)
        result.addCallbacks(lambda value: self._finish(fn, call_id, value, None, done),
                            lambda failure: self._finish(fn, call_id, None,
                                                         _error_of(failure, limit, fn.spec.threaded), done))

    def _in_thread(self, fn: _Function, call_id: str, bound: inspect.BoundArguments) -> Any:
        """A ``threaded=True`` call (in the thread pool): the function takes no other call until it returns,
        even once its caller was answered with TimeoutError or CancelledError."""
        def ended() -> None:
            if fn.thread == call_id:
                fn.thread = None

        try:
            return fn.method(*bound.args, **bound.kwargs)
        finally:
            self.reactor.callFromThread(ended)

    def _finish(self, fn: _Function, call_id: str | None, value: Any, error: BaseException | None,
                done: concurrent.futures.Future) -> None:
        """Write the reply, status, message and return value; then complete the client's put."""
        from twisted.internet import defer

        if fn.running is not None and fn.running[0] == call_id and not isinstance(error, BusyError):
            fn.running = None   # (a busy answer to a request reusing the running call's id leaves it running)
        if self.stopped:  # the model was shut down during the call: its records and their clients are gone
            logger.info('%s(%s) ended after the model was shut down; not reported', fn.spec.name, call_id)
            return
        reply: dict[str, Any] = {'id': call_id}
        if error is None:
            try:
                reply.update(ok=True, result=encode_value(value))
            except (TypeError, ValueError) as err:
                error = TypeError(f'the result of {fn.spec.name} cannot be sent: {err}')
        if error is not None:
            if not isinstance(error, (TypeError, BusyError, defer.CancelledError, TimeoutError, ValueError)):
                logger.error('%s(%s) raised %s: %s', fn.spec.name, call_id, type(error).__name__, error)
            reply = {'id': call_id, 'ok': False, 'error': {'type': type(error).__name__, 'message': str(error)}}
        text = _history(fn, reply)
        updates = {'status': 3 if error is not None else 2,
                   'message': '' if error is None else ' '.join(f'{type(error).__name__}: {error}'.splitlines())[:255]}
        if error is None:
            updates['return'] = value
        # a JSON call's client reads the reply once its put completes: that put waits for the reply only;
        # a trigger's client reads status, message and return: its put waits for them all
        published = self._publish(fn, updates)
        waits = [_put(fn.pvs['reply'], text)] + (published if getattr(done, 'all_records', False) else [])

        def complete(_: Any) -> None:
            if not done.done():
                done.set_result(None)

        defer.DeferredList(waits, consumeErrors=True).addBoth(complete)

    def _publish(self, fn: _Function, updates: dict[str, Any]) -> list:
        """Put status/message/return values; Deferreds of their completion (failures logged)."""
        waits = []
        if self.stopped:
            return waits
        for key, value in updates.items():
            try:
                value = _to_record(fn.spec.returns if key == 'return' else 'str', value) if key != 'status' else value
                waits.append(_put(fn.pvs[key], value).addErrback(
                    lambda failure, key=key: logger.warning('%s:%s not updated: %s', fn.spec.name, key,
                                                            failure.getErrorMessage())))
            except (TypeError, ValueError) as err:
                logger.warning('%s:%s not updated: %s', fn.spec.name, key, err)
        return waits


def _put(pv: Any, value: Any) -> Any:
    """Put ``value`` with callback; a Deferred firing on the reactor when softIoc has processed it.

    (``PV.put_deferred`` also reads the value back for ``get()``: a round trip these puts do not need.)
    """
    from twisted.internet import defer
    from epics import dbr

    from .channels import PutFailed, flusher

    d = defer.Deferred()
    reactor = pv._reactor
    if pv._shell:   # a record no client writes (devioc.access): through softIoc's shell
        from .access import shell_put

        def processed(ok: bool) -> None:
            if ok:
                reactor.callFromThread(d.callback, pv)
            else:
                reactor.callFromThread(d.errback, PutFailed(f'put of {value!r} to {pv.name} failed: the IOC exited'))

        shell_put(pv, value, False, 0.0, on_done=processed)
        return d

    def completed(status: int) -> None:
        if status == dbr.ECA_NORMAL:
            reactor.callFromThread(d.callback, pv)
        else:
            reactor.callFromThread(d.errback, PutFailed(pv._refused(value, status)))

    pv._put_callback(value, completed)
    flusher.request()
    return d


def _record(name: str, kind: str, length: int, default: Any = inspect.Parameter.empty) -> Any:
    """The record kind serving a value of ``kind``."""
    from . import models

    given = {} if default is inspect.Parameter.empty or default is None else {'default': default}
    if kind == 'float':
        return models.Float(name, prec=6, **given)
    if kind in ('int', 'bool'):
        return models.Integer(name, **({'default': int(default)} if given else {}))
    if kind == 'array':
        return models.Array(name, type=float, length=length)
    if kind == 'str':
        return models.String(name, max_length=length, **given)
    return models.String(name, max_length=length, **({'default': json.dumps(encode_value(default))} if given else {}))


def _from_record(argument: Argument, value: Any) -> Any:
    """An argument record's value as the function's argument."""
    if argument.kind == 'json':
        text = str(value).strip()
        try:
            return json.loads(text, object_hook=decode_hook) if text else None
        except ValueError:
            return text
    return value


def _to_record(kind: str, value: Any) -> Any:
    if kind == 'json':
        return dumps(value)
    if kind == 'str':
        return str(value)
    if kind == 'array':
        return np.asarray(value, dtype=float).ravel()
    if kind in ('int', 'bool'):
        return int(value)
    return float(value)


def _history(fn: _Function, reply: dict) -> str:
    """The reply PV's text: the newest replies first, as many as fit."""
    limit = fn.spec.size - 1
    if len(dumps(reply).encode()) > limit:
        reply = {'id': reply['id'], 'ok': False, 'error': {
            'type': 'ValueError', 'message': f'the reply of {fn.spec.name} takes over {limit} bytes; declare '
            f'@function(size=...) larger (up to {MAX_SIZE})'}}
    fn.replies.insert(0, reply)
    while True:
        text = dumps(fn.replies)
        if len(text.encode()) <= limit or len(fn.replies) == 1:
            return text
        fn.replies.pop()


def _error_of(failure: Any, timeout: float, threaded: bool = False) -> BaseException:
    from twisted.internet import defer

    error = failure.value
    running = ('; its thread runs on until the method returns (a thread cannot be stopped): until then the '
               'function answers BusyError') if threaded else ''
    if isinstance(error, defer.TimeoutError):
        return TimeoutError(f'the call did not finish within {timeout:g} s and was cancelled{running}')
    if isinstance(error, defer.CancelledError):
        return defer.CancelledError(f'the call was cancelled by a client{running}')
    return error


def attach(model: Any) -> Server | None:
    """Start serving the ``@function`` methods of a model's callbacks (None when there are none).

    Raises:
        devioc.checks.ModelError: devioc.E028 problems of the declarations.
        devioc.appserver.AppServerError: the app's CA server could not start.
    """
    from . import checks

    functions = functions_of(model._callbacks)
    if not functions:
        return None
    checks.raise_if(problems(type(model), model._callbacks, model._device_name))
    server = Server(model, functions)
    server.start()
    return server
