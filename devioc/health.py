"""Health records of a running model, served under ``<device>:IOC:``, and callback error reports.

Every model serves these records unless it is made with ``health=False`` (or its ``class Meta``
says ``health = False``). Names follow EPICS devIocStats (``iocAdmin/Db/ioc.template``) where it
has a record for the same thing; the others are devioc's own:

=================  ========  =====================================================================
record             type      value
=================  ========  =====================================================================
HEARTBEAT          longin    +1 every second while the app's reactor runs (devIocStats name)
UPTIME             longin    seconds since the model started, restarts included (EGU s)
STARTTOD           stringin  local date and time the model started (devIocStats name)
VERSION            stringin  devioc's version
APP_VERSION        stringin  the app's ``__version__`` / ``version``, or its package's; '' if none
CA_CLNT_CNT        longin    CA client connections to the softIoc, the app's own included
                             (devIocStats name)
MEM_USED           ai        resident memory of app + softIoc, bytes (devIocStats name; RSS)
IOC_CPU_LOAD       ai        CPU of app + softIoc over the last second, % of all CPUs
                             (devIocStats name and scale)
CALLBACK_ERRORS    longin    exceptions raised by ``do_<field>`` callbacks since the start
LAST_ERROR         waveform  text of the last callback exception (a long string, ``caget -S``)
RESTARTS           longin    times devioc restarted a dead softIoc (``Model(..., restart=True)``)
CALLBACK_BACKLOG   longin    monitor events waiting for the reactor to run their callbacks
=================  ========  =====================================================================

They are input records (the app publishes them; clients read them). One 1 Hz ``LoopingCall`` on
the reactor updates them, writing only the values that changed (HEARTBEAT and UPTIME always
change): the publish path of the app's own fields gains no work at all.
"""
from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Mapping
from typing import Any, Callable

from . import records as kinds

logger = logging.getLogger(__name__)

PREFIX = 'IOC:'
#: seconds between two updates of the health records
PERIOD = 1.0


def _specs() -> dict[str, kinds.Record]:
    """The health record declarations, by suffix (made fresh: a Record is bound to one name)."""
    return {
        'HEARTBEAT': kinds.IntegerInput(PREFIX + 'HEARTBEAT', desc='+1 each second the app runs'),
        'UPTIME': kinds.IntegerInput(PREFIX + 'UPTIME', units='s', desc='seconds since the app started'),
        'STARTTOD': kinds.StringInput(PREFIX + 'STARTTOD', max_length=39, desc='time and date of start'),
        'VERSION': kinds.StringInput(PREFIX + 'VERSION', max_length=39, desc='devioc version'),
        'APP_VERSION': kinds.StringInput(PREFIX + 'APP_VERSION', max_length=39, desc='application version'),
        'CA_CLNT_CNT': kinds.IntegerInput(PREFIX + 'CA_CLNT_CNT', desc='CA clients, the app included'),
        'MEM_USED': kinds.FloatInput(PREFIX + 'MEM_USED', prec=0, units='byte', desc='RSS of app and softIoc'),
        'IOC_CPU_LOAD': kinds.FloatInput(PREFIX + 'IOC_CPU_LOAD', prec=1, units='%',
                                         desc='CPU of app and softIoc, % of all'),
        'CALLBACK_ERRORS': kinds.IntegerInput(PREFIX + 'CALLBACK_ERRORS', desc='exceptions in callbacks'),
        'LAST_ERROR': kinds.StringInput(PREFIX + 'LAST_ERROR', max_length=256, desc='last callback exception'),
        'RESTARTS': kinds.IntegerInput(PREFIX + 'RESTARTS', desc='softIoc restarts by devioc'),
        'CALLBACK_BACKLOG': kinds.IntegerInput(PREFIX + 'CALLBACK_BACKLOG', desc='events waiting for callbacks'),
    }


#: the suffixes of the health records, in the order they are served
NAMES = tuple(_specs())


def enabled(model_class: type, health: bool | None) -> bool:
    """Whether a model serves health records: the ``health=`` keyword, else ``Meta.health``, else True.

    Raises:
        TypeError: ``health`` (or ``Meta.health``) is not True, False or None.
    """
    where = 'health='
    if health is None:
        health = getattr(getattr(model_class, 'Meta', None), 'health', True)
        where = f'{model_class.__name__}.Meta.health = '
    if not isinstance(health, bool):
        raise TypeError(f'{where}{health!r}: give True or False (the health records under <device>:{PREFIX})')
    return health


def setup(model: Any, model_records: Mapping[str, tuple[str, dict]], health: bool | None) -> tuple:
    """The callback error counter and the :class:`Health` (None when off) of a model being made.

    Args:
        model: the model (its ``_device_name`` and ``_callbacks`` are set).
        model_records: its expanded records, ``{attname: (pv_name, fields)}``.
        health: its ``health=`` keyword.

    Raises:
        devioc.checks.ModelError: a field's PV is a health PV (devioc.E025).
        TypeError: ``health`` is not a bool or None.
    """
    from .checks import MAX_NAME, raise_if

    device = model._device_name
    errors = CallbackErrors(device)
    if not enabled(type(model), health):
        return errors, None
    raise_if(check_clashes(type(model), model_records, device))
    records = Health(model, device)
    too_long = records.too_long()
    if too_long is not None:
        room = MAX_NAME - (len(too_long.encode('utf-8')) - len(device.encode('utf-8')))
        logger.warning('%s: no health records: %r would be longer than the %d bytes EPICS allows; use a device '
                       'name of at most %d bytes, or health=False to say so', device, too_long, MAX_NAME, room)
        return errors, None
    return errors, records


def pv_names(device: str) -> list[str]:
    """The health PV names of ``device`` (``<device>:IOC:HEARTBEAT`` ...)."""
    return [f'{device}:{PREFIX}{name}' for name in NAMES]


def check_clashes(model_class: type, model_records: Mapping[str, tuple[str, dict]], device: str) -> list:
    """devioc.E025 for each field whose PV is also a health PV (the model serves both otherwise).

    Args:
        model_class: the model class (for the message).
        model_records: the model's expanded records, ``{attname: (pv_name, fields)}``.
        device: the device name.
    """
    from .checks import CheckMessage

    taken = set(pv_names(device))
    return [CheckMessage('devioc.E025', f'record name {pv!r} is also a health record of the model',
                         f'rename the field (records under {device}:{PREFIX} are devioc\'s health records), '
                         'or turn them off: Model(..., health=False)', f'{model_class.__name__}.{attname}')
            for attname, (pv, _) in model_records.items() if pv in taken]


def app_version(app: Any) -> str:
    """The app's version: its ``__version__`` or ``version`` attribute, else its package's ``__version__``."""
    import sys

    for source in (app, sys.modules.get(type(app).__module__.partition('.')[0])):
        for attr in ('__version__', 'version'):
            value = getattr(source, attr, None)
            if isinstance(value, tuple):
                value = '.'.join(str(part) for part in value)
            if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != '':
                return str(value)
    return ''


def _fit(text: str, size: int) -> str:
    """``text`` cut to ``size`` bytes of UTF-8 (at a character boundary)."""
    raw = text.encode('utf-8')
    if len(raw) <= size:
        return text
    return raw[:size].decode('utf-8', 'ignore')


class ProcStats:
    """Memory, CPU and CA client counts of the app and its softIoc, read from Linux's /proc.

    Args:
        root: the /proc directory (a test may point it elsewhere).
        clock: wall-clock seconds, for the CPU rate.
    """

    def __init__(self, root: str = '/proc', clock: Callable[[], float] = time.monotonic):
        self.root, self.clock = root, clock
        self.page = os.sysconf('SC_PAGESIZE')
        self.tick = os.sysconf('SC_CLK_TCK')
        self.cpus = os.cpu_count() or 1
        self._last: dict[int, float] = {}
        self._last_time: float | None = None

    def _read(self, pid: int | str, name: str) -> str:
        with open(f'{self.root}/{pid}/{name}') as handle:
            return handle.read()

    def memory(self, pids: list[int]) -> float:
        """Resident bytes of ``pids`` together (statm, as devIocStats' MEM_USED); gone ones count 0."""
        total = 0
        for pid in pids:
            try:
                total += int(self._read(pid, 'statm').split()[1])
            except (OSError, IndexError, ValueError):
                pass
        return float(total * self.page)

    def cpu(self, pids: list[int]) -> float:
        """CPU used by ``pids`` since the previous call, % of all CPUs (0.0 on the first call)."""
        now, used = self.clock(), {}
        for pid in pids:
            try:
                fields = self._read(pid, 'stat').rsplit(')', 1)[1].split()
                used[pid] = (int(fields[11]) + int(fields[12])) / self.tick   # utime, stime
            except (OSError, IndexError, ValueError):
                pass
        spent = sum(seconds - self._last.get(pid, seconds) for pid, seconds in used.items())
        elapsed = now - self._last_time if self._last_time is not None else 0.0
        self._last, self._last_time = used, now
        return max(0.0, 100.0 * spent / (elapsed * self.cpus)) if elapsed > 0 else 0.0

    def socket_inodes(self, pid: int | None) -> frozenset:
        """The inodes of the sockets process ``pid`` holds (a cheap read: its fd directory)."""
        inodes = set()
        if pid is None:
            return frozenset()
        try:
            fds = os.listdir(f'{self.root}/{pid}/fd')
        except OSError:
            return frozenset()
        for fd in fds:
            try:
                target = os.readlink(f'{self.root}/{pid}/fd/{fd}')
            except OSError:
                continue
            if target.startswith('socket:['):
                inodes.add(target[8:-1])
        return frozenset(inodes)

    def count_clients(self, pid: int, inodes: frozenset) -> int:
        """Established TCP connections among ``inodes`` to a port that ``pid`` listens on.

        Reads the TCP tables of ``pid``'s network namespace: milliseconds on a host with a large
        connection hash table, so :class:`Health` calls it off the reactor, and only when the
        process's sockets changed.
        """
        sockets = []
        for table in ('tcp', 'tcp6'):
            try:
                lines = self._read(pid, f'net/{table}').splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                parts = line.split()
                if len(parts) > 9 and parts[9] in inodes:
                    sockets.append((int(parts[1].rsplit(':', 1)[1], 16), parts[3]))
        listening = {port for port, state in sockets if state == '0A'}
        return sum(1 for port, state in sockets if state == '01' and port in listening)

    def ca_clients(self, pid: int | None) -> int:
        """Established TCP connections to the ports that process ``pid`` listens on (its CA clients)."""
        if pid is None:
            return 0
        return self.count_clients(pid, self.socket_inodes(pid))


def _text(error: BaseException) -> str:
    """``str(error)``, or a placeholder when the exception cannot say it (its ``__str__`` raises)."""
    try:
        return str(error)
    except Exception:
        return '<its str() failed>'


class CallbackErrors:
    """Counts the exceptions of ``do_<field>`` callbacks and logs identical tracebacks once.

    The first exception of a kind (the same exception type raised from the same lines) is logged
    with its traceback; the same again within ``window`` seconds is only counted, and one line
    "... repeated N times in the last M s" follows at the end of the window. A kind not seen for a
    whole window is logged in full again. Every exception counts in :attr:`count` and sets
    :attr:`last` (the health records CALLBACK_ERRORS and LAST_ERROR).

    Args:
        device: the device name, for log lines.
        window: seconds during which a repeated traceback is counted, not logged.
        reactor: what schedules the summary line (``callLater``); the global reactor by default.
        clock: monotonic seconds.
    """

    def __init__(self, device: str, window: float = 60.0, reactor: Any = None,
                 clock: Callable[[], float] = time.monotonic):
        self.device, self.window, self.reactor, self.clock = device, window, reactor, clock
        self.count = 0
        self.last = ''
        self._kinds: dict[tuple, dict[str, Any]] = {}

    def report(self, attname: str, value: Any, error: BaseException) -> None:
        """Count and (unless a repeat) log ``error``, raised by ``do_<attname>(pv, value, ioc)``."""
        self.count += 1
        self.last = f'do_{attname}: {type(error).__name__}: {_text(error)}'
        frames = tuple((f.filename, f.lineno) for f in traceback.extract_tb(error.__traceback__))
        key = (attname, type(error), frames)
        now = self.clock()
        kind = self._kinds.get(key)
        if kind is None or (kind['repeats'] == 0 and now - kind['since'] >= self.window):
            self._kinds[key] = {'since': now, 'repeats': 0, 'last': '', 'call': None}
            logger.error('%s: do_%s(%r) raised; later updates are still delivered (repeats of this error '
                         'are counted and summed up every %g s)', self.device, attname, value, self.window,
                         exc_info=(type(error), error, error.__traceback__))
            return
        kind['repeats'] += 1
        kind['last'] = f'{type(error).__name__}: {_text(error)}'
        if kind['call'] is None:
            reactor = self.reactor
            if reactor is None:
                from twisted.internet import reactor
            delay = max(0.0, kind['since'] + self.window - now)
            kind['call'] = reactor.callLater(delay, self._summary, key)

    def _summary(self, key: tuple) -> None:
        kind = self._kinds.get(key)
        if kind is None:
            return
        kind['call'] = None
        now = self.clock()
        if kind['repeats']:
            logger.error('%s: do_%s raised the same %s again: repeated %d times in the last %.0f s (last: %s)',
                         self.device, key[0], key[1].__name__, kind['repeats'], now - kind['since'], kind['last'])
        kind['since'], kind['repeats'] = now, 0

    def flush(self) -> None:
        """Log the pending repeat counts now (at shutdown) and cancel their timers."""
        for key, kind in list(self._kinds.items()):
            call = kind['call']
            if call is not None and call.active():
                call.cancel()
            self._summary(key)


class Health:
    """The health records of one running model, and their 1 Hz update on the reactor.

    Args:
        model: the running model (its ``_process``, ``_callbacks``, ``_errors``).
        device: the device name.
        stats: where memory, CPU and clients are read (a :class:`ProcStats` by default).
    """

    def __init__(self, model: Any, device: str, stats: ProcStats | None = None):
        from . import __version__

        self.model, self.device = model, device
        self.stats = stats or ProcStats()
        self.started = time.monotonic()
        self.kinds = _specs()
        self.names = {suffix: f'{device}:{record.name}' for suffix, record in self.kinds.items()}
        self.values: dict[str, Any] = {
            'HEARTBEAT': 0, 'UPTIME': 0, 'STARTTOD': time.strftime('%Y-%m-%d %H:%M:%S'),
            'VERSION': __version__, 'APP_VERSION': _fit(app_version(model._callbacks), 39),
            'CA_CLNT_CNT': 0, 'MEM_USED': 0.0, 'IOC_CPU_LOAD': 0.0, 'CALLBACK_ERRORS': 0, 'LAST_ERROR': '',
            'RESTARTS': 0, 'CALLBACK_BACKLOG': 0,
        }
        self.pvs: dict[str, Any] = {}
        self._sent: dict[str, Any] = {}
        self._loop = None
        self._counting = False
        self._counted_for: tuple = (None, frozenset())
        self._rendered: dict[str, Any] = {}
        for suffix, record in self.kinds.items():
            record.attname = suffix

    def too_long(self) -> str | None:
        """The longest health PV name if it is longer than EPICS allows (60 bytes), else None."""
        from .checks import MAX_NAME

        longest = max(self.names.values(), key=lambda name: len(name.encode('utf-8')))
        return longest if len(longest.encode('utf-8')) > MAX_NAME else None

    def render_db(self) -> str:
        """The .db text of the health records, holding their current values (so a restart keeps them)."""
        from . import render

        holder = type('Health', (), {'_fields': self.kinds})
        records = {}
        self._rendered = {}
        for suffix, record in self.kinds.items():
            fields = record.db_fields()
            value = self.values[suffix]
            if isinstance(value, str) and '$' in value:
                value = ''   # dbLoadRecords would expand "$(...)" as a macro (and fail): the first update puts it
            self._rendered[suffix] = value
            if record.value_kind == 'string' and getattr(record, 'long', False):
                if value:
                    fields['INP'] = {'const': value}
            else:
                fields['VAL'] = value
            records[suffix] = (self.names[suffix], fields)
        return render.render_db(holder, self.device, records=records)

    def connect(self, reactor: Any, deadline: float) -> None:
        """Make the channels of the health records and wait (until ``deadline``) for them to connect."""
        from .channels import PV, ca_flush
        from .softioc import IOCStartError

        for suffix, record in self.kinds.items():
            pv = self.pvs[suffix] = PV(self.names[suffix], record, self.model)
            pv.connect(reactor)
        ca_flush()

        def connected() -> bool:
            if all(pv.connected for pv in self.pvs.values()):
                return True
            time.sleep(0.005)
            return False

        def missing() -> str:
            return f'the health records did not connect: {", ".join(pv.name for pv in self.pvs.values() if not pv.connected)}'

        wait = getattr(self.model, '_wait', None)
        if wait is not None:   # as the model's own records: a softIoc that dies meanwhile, or a stop signal, ends it now
            wait(connected, deadline, missing)
        else:
            while not connected():
                if time.monotonic() > deadline:
                    raise IOCStartError(f'{self.device}: {missing()}')
        self._sent = dict(self._rendered)

    def start(self, reactor: Any = None) -> None:
        """Update the records every :data:`PERIOD` seconds on the reactor (call on the reactor thread)."""
        from twisted.internet import task

        if reactor is None:
            from twisted.internet import reactor
        if self._loop is not None or not self.pvs:
            return
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = reactor
        self._loop.start(PERIOD, now=False).addErrback(
            lambda failure: logger.error('%s: health updates stopped: %s', self.device, failure.getTraceback()))

    def stop(self) -> None:
        """Stop the updates and drop the channels."""
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()
        for pv in self.pvs.values():
            pv.disconnect()
        self.pvs = {}

    def sample(self) -> dict[str, Any]:
        """Take the current values (heartbeat + 1); returns them."""
        from .channels import dispatcher

        process = getattr(self.model, '_process', None)
        ioc_pid = process.pid if process is not None and not process.exited.is_set() else None
        pids = [os.getpid()] + ([ioc_pid] if ioc_pid else [])
        errors = getattr(self.model, '_errors', None)
        values = self.values
        values['HEARTBEAT'] += 1
        values['UPTIME'] = int(time.monotonic() - self.started)
        self._count_clients(ioc_pid)
        values['MEM_USED'] = self.stats.memory(pids)
        values['IOC_CPU_LOAD'] = round(self.stats.cpu(pids), 1)
        if errors is not None:
            values['CALLBACK_ERRORS'] = errors.count
            values['LAST_ERROR'] = _fit(errors.last, 255)
        values['CALLBACK_BACKLOG'] = len(dispatcher.events)
        return values

    def _count_clients(self, pid: int | None) -> None:
        """Count softIoc's CA clients again, in a worker thread, when its sockets changed since the last count."""
        inodes = self.stats.socket_inodes(pid)
        if self._counting or (pid, inodes) == self._counted_for:
            return
        if pid is None:
            self.values['CA_CLNT_CNT'], self._counted_for = 0, (pid, inodes)
            return
        from twisted.internet import threads

        self._counting = True

        def done(result: Any) -> None:
            self._counting = False
            if isinstance(result, int):
                self.values['CA_CLNT_CNT'], self._counted_for = result, (pid, inodes)

        threads.deferToThread(self.stats.count_clients, pid, inodes).addBoth(done)

    def tick(self) -> None:
        """One update: sample, then put the values that changed (skipped while the IOC is down)."""
        values = self.sample()
        if not getattr(self.model, '_ready', False):
            return
        for suffix, value in values.items():
            if self._sent.get(suffix) == value and suffix != 'HEARTBEAT':
                continue
            pv = self.pvs.get(suffix)
            if pv is None:
                continue
            try:
                pv.put(value)
            except RuntimeError:   # the IOC went away since: the next tick after its restart sends it
                return
            self._sent[suffix] = value

    def restarted(self) -> None:
        """Count a restart of the softIoc; the next update puts every value to the new IOC once."""
        self.values['RESTARTS'] += 1
        self._sent = {}
