"""What an app's methods beyond ``do_<field>`` get: lifecycle hooks, periodic work, scan-driven values.

All of it is wired by the model itself when it starts (``Model(device, callbacks=app)``), so it
works with or without :func:`devioc.run`, as long as the Twisted reactor runs. Every method below
runs on the reactor thread and may return a Deferred or be an ``async def`` coroutine awaiting
Deferreds (run with :func:`twisted.internet.defer.ensureDeferred`; asyncio awaitables need the asyncio
reactor and an explicit ``Deferred.fromFuture``, see the README).

- ``on_start(self, ioc)``: once every record is connected and the initial ``do_<field>`` calls ran
  (``on_start(self)`` and ``on_stop(self)`` are called without the model).
- ``on_stop(self, ioc)``: once, before the IOC stops (SIGTERM/SIGINT, ``exit`` on the console, the
  reactor stopping, or ``shutdown()``). The runner waits for a Deferred it returns (at most
  :data:`STOP_TIMEOUT` s) before it stops the IOC; a direct ``shutdown()`` call cannot wait.
- ``@every(seconds)`` methods: called once at start (after ``on_start`` finished) and then every
  ``seconds``; the next call waits for a Deferred the last one returned; an exception is logged with
  the method's qualified name and the loop goes on; stopped before ``on_stop``.
- ``scan_<field>(pv, ioc)``: called each time the IOC scans that record (its SCAN field: a period,
  ``Event``, ``I/O Intr``...), and once at start; the value it returns (or its Deferred's result) is
  written to the record and the record processed, so clients see it at once. None publishes nothing.

How a scan reaches the app (EPICS base 7): the field's record gets ``FLNK=<pv>:_scan``, a hidden calc
record ``B?A:A+1`` with ``INPA=<pv>:_scan NPP`` (itself) and ``INPB=<pv>.PUTF NPP``: it counts the
record's processings and posts a monitor each time, which the app receives. A put to the VAL of a
scanned (non-passive) record does not process it, so the app writes VAL and then PROC=1; that
processing has PUTF set (dbPutField sets it until the forward link has run, recGblFwdLink), so the
counter does not count it and the app's own publication is no extra tick. A FLNK the field declares
is moved to the counter, which forwards to it. ``caput <pv>.SCAN '1 second'`` changes the rate.
"""
from __future__ import annotations

import difflib
import functools
import inspect
import logging
from typing import Any, Callable

logger = logging.getLogger(__name__)

#: seconds the runner waits for a Deferred returned by ``on_stop`` before it stops the IOC anyway
STOP_TIMEOUT = 10.0
#: the suffix of the hidden counter record of a field with a ``scan_<field>`` method
SCAN_SUFFIX = ':_scan'
#: record types whose processing computes or reads VAL itself: a published value would be replaced
_COMPUTED = ('calc', 'calcout')
MAX_NAME = 60


class HookError(TypeError):
    """An app method devioc calls (``scan_<field>``, ``on_start``, ``on_stop``, ``@every``) that it
    cannot call as documented; the message names the method, the expected signature and the fix."""


def every(seconds: float) -> Callable[[Callable], Callable]:
    """Mark an app method to be called every ``seconds`` while the IOC runs.

    Args:
        seconds: the period in seconds (> 0). The first call is at start, after ``on_start``.

    The method is called as ``method(ioc)`` if it takes an argument, else ``method()``; it may return
    a Deferred or be a coroutine (the next call waits for it: calls never overlap, missed periods
    are skipped). It stays an ordinary method: calling it yourself is not affected.

    Raises:
        ValueError: ``seconds`` is not a positive number.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValueError(f'@devioc.every({seconds!r}): give the period as a positive number of seconds, '
                         'e.g. @devioc.every(1.0)')

    def mark(func: Callable) -> Callable:
        if not callable(func):
            raise TypeError(f'@devioc.every({seconds!r}) decorates a method, not {func!r}')
        func._devioc_every = float(seconds)
        return func

    return mark


def as_deferred(func: Callable, *args: Any) -> Any:
    """Call ``func(*args)``; its result (a value, a Deferred, a coroutine or an exception) as a Deferred."""
    from twisted.internet import defer

    try:
        result = func(*args)
    except Exception:
        return defer.fail()
    if inspect.iscoroutine(result):
        return defer.ensureDeferred(result)
    if isinstance(result, defer.Deferred):
        return result
    return defer.succeed(result)


def _name(method: Any) -> str:
    func = getattr(method, '__func__', method)
    return getattr(func, '__qualname__', repr(method))


def _takes(method: Callable, *args: Any) -> bool:
    try:
        inspect.signature(method).bind(*args)
    except TypeError:
        return False
    except ValueError:   # no signature (a builtin): trust it
        return True
    return True


def _where(method: Any) -> str:
    try:
        func = getattr(method, '__func__', method)
        return f' (defined at {inspect.getsourcefile(func)}:{inspect.getsourcelines(func)[1]})'
    except (TypeError, OSError):
        return ''


def scan_methods(model_class: type, callbacks: Any) -> dict[str, Callable]:
    """``{attname: bound scan_<field> method}`` of ``callbacks`` for ``model_class``'s fields.

    ``scan_<attname>``, or its lower-case form for a field with capitals (as ``do_<field>``).

    A ``scan_`` method that matches no field is logged as a warning and not called.

    Raises:
        HookError: a ``scan_`` method that cannot take ``(pv, ioc)``, or is for a calc/calcout field or
            a field with an INP link (their processing sets the value).
    """
    fields = model_class._fields
    lower = {name.lower(): name for name in fields}
    found: dict[str, Callable] = {}
    owner = type(callbacks).__name__
    for attr in dir(type(callbacks)):
        if not attr.startswith('scan_'):
            continue
        method = getattr(callbacks, attr, None)
        if not callable(method):
            continue
        field = attr[5:]
        attname = field if field in fields else lower.get(field)
        if attname is None:   # a warning, not an error: an app written before scan_ existed may have one
            close = difflib.get_close_matches(field, list(fields), n=1)
            logger.warning('%s.%s%s matches no field of %s, so devioc does not call it: %s', owner, attr, _where(method),
                           model_class.__name__, f'did you mean scan_{close[0]}?' if close else
                           'rename it to scan_<field> for a field of the model, or drop the scan_ prefix')
            continue
        if not _takes(method, None, None):
            raise HookError(f'{owner}.{attr}{inspect.signature(method)}{_where(method)} cannot be called with '
                            f'(pv, ioc): define it as def {attr}(self, pv, ioc): and return the value to publish')
        record = fields[attname]
        if record.record in _COMPUTED:
            raise HookError(f'{owner}.{attr}: {model_class.__name__}.{attname} is a {record.record} record, whose '
                            'processing computes its value: use a Float (or another output kind) with SCAN for '
                            'a value scan_ publishes')
        if record.fields.get('INP') not in (None, ''):
            raise HookError(f'{owner}.{attr}: {model_class.__name__}.{attname} reads its INP link when scanned, '
                            'which would replace the value scan_ publishes: drop INP, or drop the scan_ method')
        found[attname] = method
    return found


def scan_records(records: dict, scanned: dict[str, Callable]) -> tuple[dict, list[tuple[str, str, dict]]]:
    """The expanded records with each scanned field's FLNK pointing at its hidden counter, and the counters.

    Args:
        records: ``{attname: (pv_name, fields)}`` as :func:`devioc.render.expand_model` gives them.
        scanned: the fields with a ``scan_`` method (:func:`scan_methods`).

    Returns:
        ``(records, [(record type, name, fields), ...])``: the counters to add to the database.

    Raises:
        HookError: a counter's name would be longer than EPICS allows (60 bytes).
    """
    records = dict(records)
    counters = []
    for attname in scanned:
        pv_name, fields = records[attname]
        counter = pv_name + SCAN_SUFFIX
        if len(counter.encode('utf-8')) > MAX_NAME:
            raise HookError(f'{pv_name}: scan_{attname} needs a hidden record {counter!r}, {len(counter.encode())} '
                            f'bytes long; EPICS allows {MAX_NAME}: use a shorter device or field name')
        if not fields.get('SCAN') or fields.get('SCAN') == 'Passive':
            logger.warning('%s has no SCAN: scan_%s runs only once %s.SCAN is set (by the app: '
                           "ioc.%s.field('SCAN').put('1 second'); by clients only with Meta.access_level = 1)",
                           pv_name, attname, pv_name, attname)
        mine = {'INPA': f'{counter} NPP', 'INPB': f'{pv_name}.PUTF NPP', 'CALC': 'B?A:A+1'}
        if fields.get('FLNK'):
            mine['FLNK'] = fields['FLNK']
        records[attname] = (pv_name, {**fields, 'FLNK': counter})
        counters.append(('calc', counter, mine))
    return records, counters


class Hooks:
    """The hooks of one running model (its ``_hooks``): made by the model, started once it is up,
    stopped before it stops."""

    def __init__(self, model: Any, callbacks: Any, scanned: dict[str, Callable], reactor: Any = None):
        self.model = model
        self.callbacks = callbacks
        self.scanned = scanned
        self.loops: list[Any] = []
        self.state = 'new'            # 'new' -> 'starting' -> 'running' -> 'stopped'
        self.busy: set[str] = set()
        self.first: set[str] = set(scanned)
        self.proc: dict[str, Any] = {}
        self._stopped: Any = None
        self.started = False          # the model came up: on_stop is due when it stops
        self._trigger: Any = None
        self._reactor: Any = reactor   # the global reactor when None, taken at start()
        self.on_start = self._hook('on_start')
        self.on_stop = self._hook('on_stop')
        self.periodic = self._periodic()

    def _hook(self, name: str) -> Callable | None:
        """The ``on_start``/``on_stop`` method, called with ``ioc`` when it takes it, else with nothing."""
        method = getattr(self.callbacks, name, None)
        if method is None or not callable(method):
            return None
        if _takes(method, None):
            return method
        if _takes(method):
            return functools.wraps(method)(lambda ioc: method())
        raise HookError(f'{type(self.callbacks).__name__}.{name}{inspect.signature(method)}{_where(method)} '
                        f'cannot be called with (ioc): define it as def {name}(self, ioc):')

    def _periodic(self) -> list[tuple[float, Callable, bool]]:
        out = []
        for attr in dir(type(self.callbacks)):
            period = getattr(getattr(type(self.callbacks), attr, None), '_devioc_every', None)
            if period is None:
                continue
            method = getattr(self.callbacks, attr)
            with_ioc = _takes(method, None)
            if not with_ioc and not _takes(method):
                raise HookError(f'{_name(method)}{inspect.signature(method)}{_where(method)}: an @every method is '
                                f'called as {attr}(ioc) or {attr}(): define it as def {attr}(self, ioc):')
            out.append((period, method, with_ioc))
        return out

    # -- the channels of the hidden records
    def channels(self) -> dict[str, Any]:
        """The PVs of the hidden scan counters (with their callback) and of each scanned record's PROC."""
        from .channels import PV
        from .records import Calc, Integer

        pvs = {}
        for attname in self.scanned:
            pv_name = self.model._pvs[attname].name
            counter = Calc('x', calc='A')
            counter.attname = f'{attname}{SCAN_SUFFIX}'
            pvs[counter.attname] = PV(pv_name + SCAN_SUFFIX, counter, self.model,
                                      lambda pv, value, ioc, attname=attname: self._scanned(attname))
            proc = Integer('x')
            proc.attname = f'{attname}.PROC'
            self.proc[attname] = pvs[proc.attname] = PV(pv_name + '.PROC', proc, self.model)
            # PROC is a configuration field (ASL1): the shell when clients may not write it, and
            # whenever the record itself is written that way (read-only, a restricted group)
            pvs[proc.attname]._shell |= self.model._pvs[attname]._shell
        return pvs

    # -- start
    def start(self) -> None:
        """Run ``on_start``, then the periodic calls and the first scan calls, on the reactor (once it runs)."""
        if self._reactor is None:
            from twisted.internet import reactor
            self._reactor = reactor
        self.started = True
        if self.on_stop is not None or self.periodic or self.scanned:
            from twisted.python import threadable

            # now, when it is safe (the reactor's thread, or not running yet): before the app's own
            # shutdown trigger, which an app adds once its model is made, so on_stop runs first
            if not getattr(self._reactor, 'running', False) or threadable.isInIOThread():
                self._watch_shutdown()
            else:
                self._reactor.callFromThread(self._watch_shutdown)
        if self.on_start is not None or self.periodic or self.scanned:
            self._reactor.callFromThread(self._begin)

    def _watch_shutdown(self) -> None:
        if self.state != 'stopped':
            self._trigger = self._reactor.addSystemEventTrigger('before', 'shutdown', self.stop)

    def _begin(self) -> None:
        if self.state != 'new':
            return
        self.state = 'starting'
        if self.on_start is None:
            self._run()
            return
        d = as_deferred(self.on_start, self.model)
        d.addErrback(self._failed, f'{_name(self.on_start)}', 'the periodic and scan calls start anyway')
        d.addCallback(lambda _: self._run())

    def _run(self) -> None:
        from twisted.internet import task

        if self.state != 'starting':
            return
        self.state = 'running'
        for period, method, with_ioc in self.periodic:
            loop = task.LoopingCall(self._tick, method, with_ioc, period)
            loop.clock = self._reactor
            self.loops.append(loop)
            loop.start(period, now=True)
        for attname in self.scanned:
            self._scan(attname)

    def _tick(self, method: Callable, with_ioc: bool, period: float) -> Any:
        d = as_deferred(method, *((self.model,) if with_ioc else ()))
        d.addErrback(self._failed, _name(method), f'it runs again in {period:g} s')
        return d

    def _failed(self, failure: Any, name: str, then: str) -> None:
        logger.error('%s raised %s: %s; %s', name, failure.type.__name__, failure.value, then,
                     exc_info=(failure.type, failure.value, failure.getTracebackObject()))

    # -- scans
    def _scanned(self, attname: str) -> None:
        """A monitor of the counter (reactor thread): the IOC scanned the record."""
        if attname in self.first:   # the counter's value at connection: no scan
            self.first.discard(attname)
            return
        if self.state == 'running':
            self._scan(attname)

    def _scan(self, attname: str) -> None:
        if attname in self.busy:   # the last call is still running: this scan is skipped
            logger.debug('scan of %s skipped: scan_%s is still running', attname, attname)
            return
        self.busy.add(attname)
        method = self.scanned[attname]
        pv = self.model._pvs[attname]
        d = as_deferred(method, pv, self.model)
        d.addCallback(self._publish, attname)
        d.addErrback(self._failed, _name(method), 'the next scan calls it again')
        d.addBoth(lambda _: self.busy.discard(attname))

    def _publish(self, value: Any, attname: str) -> None:
        if value is None or self.state != 'running':
            return
        pv = self.model._pvs[attname]
        proc = self.proc[attname]
        if proc._shell and not pv._shell:   # PROC goes through softIoc's shell (devioc.access): VAL on the
            from .access import shell_put   # same ordered stream, so that PROC cannot overtake it
            shell_put(pv, value, False, 0.0)
        else:
            pv.put(value)           # the VAL of a scanned record: set, but not processed ...
        proc.put(1)                 # ... until PROC: clients see the value now (PUTF: no extra tick)

    # -- stop
    def stop(self) -> Any:
        """Stop the periodic calls and call ``on_stop`` (once); a Deferred that fires when it is done.

        The Deferred fires at most :data:`STOP_TIMEOUT` s later, whatever ``on_stop`` does.
        """
        from twisted.internet import defer

        if self._stopped is not None:
            return self._stopped
        self.state = 'stopped'
        for loop in self.loops:
            if loop.running:
                loop.stop()
        self.loops.clear()
        if self._trigger is not None and self._reactor is not None:
            trigger, self._trigger = self._trigger, None
            try:
                self._reactor.removeSystemEventTrigger(trigger)
            except (ValueError, KeyError):   # firing now, or gone
                pass
        if self.on_stop is None or not self.started:   # a model that never came up has nothing to stop
            self._stopped = defer.succeed(None)
            return self._stopped
        d = as_deferred(self.on_stop, self.model)
        if not d.called and getattr(self._reactor, 'running', False):
            d.addTimeout(STOP_TIMEOUT, self._reactor)
        d.addErrback(self._failed, _name(self.on_stop), 'the IOC stops anyway')
        self._stopped = d
        return d

    @property
    def stopping(self) -> bool:
        """True while a Deferred ``on_stop`` returned has not fired yet."""
        return self._stopped is not None and not self._stopped.called


def hooks_of(model: Any) -> Hooks | None:
    """The :class:`Hooks` of a running model (None for a model made before they existed)."""
    hooks = getattr(model, '_hooks', None)
    return hooks if isinstance(hooks, Hooks) else None


def stopped(model: Any) -> Any:
    """Stop ``model``'s hooks (``on_stop`` once); a Deferred that fires when ``on_stop`` is done."""
    from twisted.internet import defer

    hooks = hooks_of(model)
    return hooks.stop() if hooks is not None else defer.succeed(None)
