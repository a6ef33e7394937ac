"""Autosave and restore: fields declared ``autosave=`` keep their values across restarts.

``models.Float('setpoint', autosave=True)`` saves VAL; ``autosave=('VAL', 'HIHI', 'EGU')`` saves
those fields of the record too, so limits and units operators change at run time survive.

Where: ``$DEVIOC_STATE_DIR/<device>/``, else ``$XDG_STATE_HOME/devioc/<device>/``, else
``~/.local/state/devioc/<device>/`` (:func:`state_directory`), in ``autosave.json``.

When: the values come from the model's own monitors (VAL) and from monitors on the extra fields
(``<pv>.HIHI``); a change is written within a second: the first at once, then at most one write
every ``PERIOD`` (0.9 s) per model however fast fields change (debounced: a field written at 1 kHz
costs ~1.1 writes a second), on a writer thread of its own so fsync never blocks the reactor, and
at clean shutdown (:meth:`Saver.flush`). After a kill -9 the file holds the values of at most
``PERIOD`` plus one write's duration before it: 0.9 s, not 1 s, so that the write fits in the second.

How: write a temporary file, fsync it, hard-link the current file to ``autosave.json.bak`` (the
previous good file), rename the new one over ``autosave.json``, fsync the directory: at every
moment ``autosave.json`` is a complete file (kill -9 anywhere). Once an hour the current file is
also kept as a dated copy (``autosave-YYYYmmdd-HHMMSS.json``, the newest 4), as synApps keeps its
dated ``.sav`` files.

Restore happens before iocInit: the saved values are written into the rendered .db, so the records
come up holding them (a PINI record processes once with them: valid timestamp, NO_ALARM, UDF 0) and
the app's initial ``do_<field>`` calls see them. A file that cannot be read (damaged, truncated,
wrong checksum) is renamed ``autosave.json.corrupt-<time>`` and the backup is used, else the
defaults; what each field got is logged. A saved field whose model field was removed, renamed, or
changed kind, record type or states since is skipped with a log line.

File format: JSON (typed numbers and strings, readable and editable by hand with the app stopped),
versioned (``format``, ``version``), with the model's description of each field (kind, record
type, record name, states) to detect changes, and a SHA-256 of the values to detect damage.
synApps' ``.sav`` is not used: it keys values by PV name only and stores them as untyped text, so
a changed kind or state list cannot be told, and its completeness rests on an ``<END>`` line.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Mapping

from . import dbd

logger = logging.getLogger(__name__)

FILE_FORMAT = 'devioc-autosave'
FILE_VERSION = 1
FILE_NAME = 'autosave.json'
BACKUP_NAME = FILE_NAME + '.bak'
#: seconds between two writes of one model's file (and the most a change waits to be written);
#: under a second by the time a write takes (fsync), so a kill -9 never loses more than a second
PERIOD = 0.9
#: seconds between two dated copies, and how many are kept
DATED_EVERY = 3600.0
DATED_KEEP = 4
_DATED_PREFIX = 'autosave-'
_NOT_SAVED = ('DBF_INLINK', 'DBF_OUTLINK', 'DBF_FWDLINK', 'DBF_DEVICE')


# -- declaration ------------------------------------------------------------------------------
def autosave_fields(record: Any, autosave: Any) -> tuple[tuple[str, ...], list[tuple[str, str]]]:
    """The fields a record's ``autosave=`` keyword names, and the problems found (devioc.E024).

    Args:
        record: the record kind being declared (its ``record`` type and ``user_fields`` are read).
        autosave: False/None (nothing), True (VAL), a field name, or a tuple/list of field names.

    Returns:
        (field names, [(message, hint), ...]); the names are those that can be saved.
    """
    if autosave is None or autosave is False:
        return (), []
    if autosave is True:
        names: list[Any] = ['VAL']
    elif isinstance(autosave, str):
        names = [autosave]
    elif isinstance(autosave, (tuple, list, set, frozenset)):
        names = list(autosave)
    else:
        return (), [(f'autosave={autosave!r}: give True (the value) or a tuple of field names',
                     "e.g. autosave=True, or autosave=('VAL', 'HIHI', 'EGU')")]
    rtype = record.record
    defs = dbd.fields(rtype) if rtype in dbd.record_types() else {}
    good: list[str] = []
    problems = []
    for name in names:
        if not isinstance(name, str):
            problems.append((f'autosave names {name!r}: field names are strings', "e.g. autosave=('VAL', 'HIHI')"))
            continue
        fdef = defs.get(name)
        if fdef is None:
            close = [key for key in defs if key == name.upper()]
            hint = (f'write it in upper case: {close[0]!r}' if close else
                    f'name fields of the {rtype} record, e.g. VAL, DESC, or one of its limits/units')
            problems.append((f'autosave names {name!r}: {rtype} records have no field {name!r}', hint))
        elif fdef.dbf in _NOT_SAVED:
            problems.append((f'autosave names {name} ({fdef.dbf}): links and device support are part of the '
                             'model, not a value to save', f'drop {name!r} from autosave'))
        elif fdef.special == 'SPC_NOMOD':
            problems.append((f'autosave names {name}: clients cannot change it ({fdef.special}), so there is '
                             'nothing to save', f'drop {name!r} from autosave'))
        elif not fdef.settable and not (name == 'VAL' and rtype == 'waveform'):
            problems.append((f'autosave names {name}: a database file cannot set it ({fdef.dbf}), so it cannot '
                             'be restored', f'drop {name!r} from autosave'))
        elif name == 'VAL' and rtype == 'waveform' and 'INP' in record.user_fields:
            problems.append(('autosave of a waveform VAL is restored through a constant input link (INP), '
                             'but this record has its own INP', 'drop INP=... or autosave'))
        elif name not in good:
            good.append(name)
    return tuple(good), problems


def autosaved(model_class: type) -> dict[str, tuple[str, ...]]:
    """``{attname: (field, ...)}`` of the model's fields that autosave (empty: none does)."""
    return {att: record.autosave for att, record in model_class._fields.items() if getattr(record, 'autosave', ())}


# -- where ------------------------------------------------------------------------------------
def state_root() -> tuple[Path, str]:
    """(root directory of the state files, where it came from): ``$DEVIOC_STATE_DIR``, else
    ``$XDG_STATE_HOME/devioc``, else ``~/.local/state/devioc``."""
    if os.environ.get('DEVIOC_STATE_DIR'):
        return Path(os.environ['DEVIOC_STATE_DIR']), '$DEVIOC_STATE_DIR'
    if os.environ.get('XDG_STATE_HOME'):
        return Path(os.environ['XDG_STATE_HOME']) / 'devioc', '$XDG_STATE_HOME'
    return Path.home() / '.local' / 'state' / 'devioc', 'the home directory ($HOME)'


def state_directory(device: str) -> Path:
    """The directory of ``device``'s state files, made (mode 0750) if it can be.

    A directory that cannot be made or written is logged (with the variable to set) and returned
    all the same: what it holds is still restored, and every save retries and logs. The IOC runs.
    """
    from .models import _safe

    root, source = state_root()
    path = root / _safe(device)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o750)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, 'not writable', str(path))
    except OSError as err:
        logger.error('%s: cannot make or write the autosave directory %s (from %s): %s; values are restored if '
                     'readable but not saved. Set DEVIOC_STATE_DIR to a directory this user can write (under '
                     'systemd: StateDirectory=NAME and Environment=DEVIOC_STATE_DIR=%%S/NAME, as the generated '
                     'unit does)', device, path, source, err.strerror or err)
    return path


# -- the file ---------------------------------------------------------------------------------
class SaveFileError(ValueError):
    """An autosave file that cannot be used; the message names the file and why."""


def _digest(fields: Any) -> str:
    text = json.dumps(fields, sort_keys=True, separators=(',', ':'), ensure_ascii=False)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def file_text(model: str, device: str, fields: Mapping[str, Any]) -> str:
    """The text of an autosave file: one field per line, readable and diffable."""
    head = {'format': FILE_FORMAT, 'version': FILE_VERSION, 'model': model, 'device': device,
            'saved': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='milliseconds'),
            'sha256': _digest(fields)}
    lines = [f'  {json.dumps(k)}: {json.dumps(fields[k], ensure_ascii=False, sort_keys=True)}' for k in sorted(fields)]
    body = ',\n'.join(lines)
    return json.dumps(head, indent=1)[:-2] + ',\n "fields": {\n' + body + '\n }\n}\n'


def read_file(path: Path) -> dict:
    """The content of an autosave file; FileNotFoundError if there is none.

    Raises:
        SaveFileError: the file cannot be read, is not JSON, is not an autosave file of this
            version, or its values do not match its checksum (damaged or edited without updating it).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as err:
        raise SaveFileError(f'{path}: cannot read it: {err.strerror}') from None
    try:
        data = json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as err:
        raise SaveFileError(f'{path}: not a complete JSON file ({err}); damaged or cut short') from None
    if not isinstance(data, dict) or data.get('format') != FILE_FORMAT:
        raise SaveFileError(f'{path}: not a {FILE_FORMAT} file')
    if data.get('version') != FILE_VERSION:
        raise SaveFileError(f'{path}: version {data.get("version")!r}; this devioc reads version {FILE_VERSION}')
    fields = data.get('fields')
    if not isinstance(fields, dict) or not all(isinstance(v, dict) for v in fields.values()):
        raise SaveFileError(f'{path}: "fields" must map field names to their saved values')
    if 'sha256' not in data:
        logger.warning('%s has no sha256 line: read as a hand-edited file', path)
    elif data['sha256'] != _digest(fields):
        raise SaveFileError(f'{path}: its values do not match its sha256: damaged (to edit the file by hand, '
                            'stop the app and delete the "sha256" line)')
    return data


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(directory: Path, text: str, keep_dated: bool = False) -> None:
    """Write ``text`` as ``autosave.json`` atomically, the previous file kept as ``.bak``.

    Write a temporary file, fsync it, hard-link the old file to the backup (and a dated copy when
    ``keep_dated``), rename the new one over it, fsync the directory.

    Raises:
        OSError: the file could not be written (full disk, read-only directory ...); the previous
            file is then left as it was.
    """
    path = directory / FILE_NAME
    tmp = directory / f'.{FILE_NAME}.{os.getpid()}.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    try:
        try:
            data = text.encode('utf-8')
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        if path.exists():
            if keep_dated:
                _keep(path, directory / f'{_DATED_PREFIX}{time.strftime("%Y%m%d-%H%M%S")}.json')
                _prune_dated(directory)
            _keep(path, directory / BACKUP_NAME)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _remove_leftovers(directory: Path) -> None:
    """Remove the temporary files of writes that a kill -9 cut short (another process's: this one's
    may be being written; the device lock keeps other live processes out of the directory)."""
    mine = f'.{FILE_NAME}.{os.getpid()}.tmp'
    try:
        leftovers = [p for p in directory.glob(f'.{FILE_NAME}.*.tmp') if p.name != mine]
    except OSError:
        return
    for path in leftovers:
        try:
            path.unlink()
            logger.info('removed %s, left by a write that was cut short', path)
        except OSError:
            pass


def _keep(path: Path, copy: Path) -> None:
    """Make ``copy`` the same content as ``path``: a hard link renamed into place, else a copy."""
    tmp = copy.with_name(f'.{copy.name}.tmp')
    try:
        tmp.unlink(missing_ok=True)
        os.link(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
    os.replace(tmp, copy)


def dated_copies(directory: Path) -> list[Path]:
    """The dated copies in ``directory``, oldest first."""
    try:
        return sorted(p for p in directory.glob(f'{_DATED_PREFIX}*.json'))
    except OSError:
        return []


def _prune_dated(directory: Path) -> None:
    for old in dated_copies(directory)[:-DATED_KEEP]:
        try:
            old.unlink()
        except OSError:
            pass


def load(directory: Path, device: str) -> tuple[dict, Path | None]:
    """The saved fields of ``directory``: from ``autosave.json``, else its backup; ({}, None) if none.

    A file that cannot be used is logged, and renamed ``<name>.corrupt-<time>`` (kept for a human,
    and never rotated into the backup); the next one is tried.
    """
    for name in (FILE_NAME, BACKUP_NAME):
        path = directory / name
        try:
            return read_file(path)['fields'], path
        except FileNotFoundError:
            continue
        except SaveFileError as err:
            logger.error('%s: autosave file unusable: %s', device, err)
            target = path.with_name(f'{name}.corrupt-{time.strftime("%Y%m%dT%H%M%S")}')
            try:
                os.replace(path, target)
                logger.error('%s: kept it as %s', device, target)
            except OSError as move:
                logger.error('%s: could not move it aside (%s)', device, move.strerror)
    return {}, None


# -- values -----------------------------------------------------------------------------------
def _plain(value: Any, fdef: dbd.FieldDef | None) -> Any:
    """A value from CA as the file keeps it: int, float, str, or a list; menu fields by choice name."""
    if hasattr(value, 'tolist'):
        value = value.tolist()
    if isinstance(value, bytes):
        value = value.decode('utf-8', 'replace')
    if fdef is not None and fdef.menu and isinstance(value, int) and 0 <= value < len(fdef.menu):
        return fdef.menu[value]
    return value


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


class Saver:
    """The autosave of one running model: restores at render, saves while it runs.

    Args:
        model_class: the model class.
        device: the device name.
        macros: the model's macros (state names may use them).
        directory: where the files live (:func:`state_directory` by default).
        period: seconds between two writes.
    """

    def __init__(self, model_class: type, device: str, macros: Mapping[str, str] | None = None,
                 directory: Path | None = None, period: float = PERIOD):
        self.model_class = model_class
        self.device = device
        self.period = period
        self.fields = autosaved(model_class)
        self.directory = directory if directory is not None else state_directory(device)
        self.path = self.directory / FILE_NAME
        _remove_leftovers(self.directory)
        self._describe = {att: self._description(att, macros or {}) for att in self.fields}
        self._defs = {att: dbd.fields(model_class._fields[att].record) for att in self.fields}
        self._values: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._write_lock = threading.Lock()
        self._dirty = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._extra: list[Any] = []
        self._pvs: list[Any] = []
        self._last_write = 0.0
        self._last_error = ''
        self._next_dated = 0.0
        #: writes done, and failed (for tests and health)
        self.writes = 0
        self.failures = 0

    def _description(self, att: str, macros: Mapping[str, str]) -> dict[str, Any]:
        record = self.model_class._fields[att]
        out = {'kind': type(record).__name__, 'record': record.record, 'name': record.name}
        states = record.choices({**macros, 'device': self.device})
        if states:
            out['states'] = states
        return out

    # -- restore (before iocInit)
    def restore(self, records: dict[str, tuple[str, dict]]) -> dict[str, tuple[str, dict]]:
        """``records`` (as :func:`devioc.render.expand_model` gives them) with the saved values set.

        Reads ``autosave.json`` (else its backup); logs, per autosaved field, what it starts with.
        In a process that already ran this model (a restarted softIoc), values not yet written to
        the file (a failed save) are taken from memory.
        """
        saved, source = load(self.directory, self.device)
        with self._lock:
            if self._dirty:  # newer than any file: the last saves failed
                saved = {**saved, **{att: {**self._describe[att], 'values': dict(v)} for att, v in self._values.items()}}
                source = source or Path('(memory)')
        for att in sorted(set(saved) - set(self.fields)):
            why = 'no longer autosaved' if att in self.model_class._fields else 'no such field now (removed or renamed)'
            logger.warning('%s: saved field %s skipped: %s', self.device, att, why)
        out = dict(records)
        restored: dict[str, dict[str, Any]] = {}
        for att, names in self.fields.items():
            pv_name, fields = records[att]
            entry = saved.get(att)
            if entry is None:
                logger.info('%s: %s starts with its defaults (%s)', self.device, pv_name,
                            'no saved value' if source is None else f'not in {source}')
                continue
            mismatch = self._mismatch(att, entry)
            if mismatch:
                logger.warning('%s: %s starts with its defaults: the saved value is skipped, %s', self.device,
                               pv_name, mismatch)
                continue
            fields = dict(fields)
            used = {}
            values = entry.get('values') or {}
            if not isinstance(values, dict):   # a hand-edited file: never stop the start over it
                logger.warning('%s: %s starts with its defaults: the saved "values" is not a mapping of field '
                               'names to values (%r)', self.device, pv_name, values)
                continue
            for name, value in values.items():
                if name not in names:
                    logger.info('%s: %s.%s was saved but is no longer autosaved: skipped', self.device, pv_name, name)
                    continue
                problem = self._apply(att, fields, name, value)
                if problem:
                    logger.warning('%s: %s.%s keeps its default: saved value %r skipped (%s)', self.device,
                                   pv_name, name, value, problem)
                else:
                    used[name] = value
            if used:
                logger.info('%s: %s restored from %s: %s', self.device, pv_name, source,
                            ', '.join(f'{k}={v!r}' for k, v in used.items()))
                restored[att] = used
            out[att] = (pv_name, fields)
        with self._lock:
            for att, values in restored.items():
                self._values.setdefault(att, {}).update(values)
        return out

    def _mismatch(self, att: str, entry: Mapping[str, Any]) -> str:
        now = self._describe[att]
        for key, what in (('kind', 'its kind'), ('record', 'its record type'), ('name', 'its record name'),
                          ('states', 'its states')):
            if entry.get(key) != now.get(key):
                return f'{what} changed since it was saved ({entry.get(key)!r}, now {now.get(key)!r})'
        return ''

    def _apply(self, att: str, fields: dict, name: str, value: Any) -> str:
        """Set ``fields[name]`` to ``value`` if the record can take it; else say why not."""
        record = self.model_class._fields[att]
        fdef = self._defs[att].get(name)
        if fdef is None:
            return f'{record.record} records have no field {name}'
        if name == 'VAL' and record.record == 'waveform':  # a waveform's VAL loads from a constant link
            nelm = int(fields.get('NELM', 1))
            if getattr(record, 'value_kind', '') == 'string':   # a long String: text in a CHAR waveform
                if not isinstance(value, str):
                    return 'not a string'
                if len(value.encode('utf-8')) >= nelm:
                    return f'{len(value.encode("utf-8"))} bytes; the record holds {nelm - 1}'
                if value:
                    fields['INP'] = {'const': value}
                return ''
            if not isinstance(value, list) or not value:
                return 'not a non-empty list'
            # a hand-edited file may hold anything: the elements must be what the FTVL takes, or the
            # .db would not render (the model could not start) or softIoc would not load it
            text = str(fields.get('FTVL', 'DOUBLE')).upper() == 'STRING'
            if not all(isinstance(v, str) if text else isinstance(v, (int, float)) and not isinstance(v, bool)
                       for v in value):
                return f'its elements are not all {"strings" if text else "numbers"}'
            if any(isinstance(v, float) and not math.isfinite(v) for v in value):
                return 'it holds NaN or infinity, which the constant link that loads it cannot carry'
            if len(value) > nelm:
                return f'{len(value)} elements; the record holds {nelm}'
            fields['INP'] = {'const': value}
            return ''
        if name == 'VAL' and 'states' in self._describe[att] and not (
                isinstance(value, int) and 0 <= value < len(self._describe[att]['states'])):
            return 'not one of its state indexes'
        try:
            fdef.db_text(value)
        except dbd.FieldError as err:
            return err.msg
        if isinstance(value, str) and ('$(' in value or '${' in value):
            # dbLoadRecords refuses "$(" and "${" in a field's text ("Has unexpanded macro") and the
            # whole database with it: a string VAL loads through its constant link instead (stringout
            # DOL, stringin INP: read once at init), where the JSON text escapes the '$'
            link = {'stringout': 'DOL', 'stringin': 'INP'}.get(record.record) if name == 'VAL' else None
            if link is None or link in fields:
                return 'it holds "$(" or "${", which a database file cannot set this field to'
            fields[link] = {'const': value}
            return ''
        fields[name] = value
        return ''

    # -- saving (while the model runs)
    def start(self, pvs: Mapping[str, Any]) -> None:
        """Watch the autosaved fields of the running model and start the writer thread.

        Args:
            pvs: ``{attname: devioc.channels.PV}`` of the model. Their VAL monitors feed the saver;
                the other fields get monitors of their own (``<pv>.HIHI``). Callable again after a
                restarted softIoc with the new PVs.
        """
        import epics

        self._unwatch()
        for att, names in self.fields.items():
            pv = pvs.get(att)
            if pv is None:  # not connected (a unit test feeds update() itself)
                continue
            if 'VAL' in names:
                pv.value_hook = self._on_val
                pv.subscribe()
                self._pvs.append(pv)
            for name in names:
                if name != 'VAL':
                    def changed(value=None, _key=(att, name), **_: Any) -> None:
                        try:
                            self.update(_key[0], _key[1], value)
                        except Exception:  # on libca's thread: never let it through
                            logger.exception('%s.%s: autosave could not take the value %r', *_key, value)
                    self._extra.append(epics.PV(f'{pv.name}.{name}', form='native', auto_monitor=True,
                                                callback=changed))
        if self._pvs:
            from .channels import ca_flush

            ca_flush()
        deadline = time.monotonic() + 5.0   # one wait for all: an IOC that died sends none of them
        for pv in self._pvs:
            # the first value may have come before the hook (a field with a callback): the file
            # holds every field from its first write on, the defaults included
            if pv._has_value is not None and pv._has_value.wait(max(0.0, deadline - time.monotonic())):
                self.update(pv.record.attname, 'VAL', pv._value, only_if_new=True)
        with self._lock:
            self._stopping = False
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name=f'autosave {self.device}', daemon=True)
            self._thread.start()

    def _on_val(self, pv: Any, value: Any) -> None:
        try:
            self.update(pv.record.attname, 'VAL', value)
        except Exception:  # on libca's thread: never let it through
            logger.exception('%s: autosave could not take the value %r', pv.name, value)

    def update(self, att: str, name: str, value: Any, only_if_new: bool = False) -> None:
        """A new value of field ``name`` of ``att`` (any thread); written within ``period`` seconds.

        ``only_if_new``: keep the value held already, if any (a first value read after the monitor
        may have delivered a newer one).
        """
        value = _plain(value, self._defs[att].get(name))
        with self._lock:
            values = self._values.setdefault(att, {})
            if name in values and (only_if_new or _same(values[name], value)):
                return
            values[name] = value
            if not self._dirty:
                self._dirty = True
                self._changed.notify()

    def _run(self) -> None:
        """The writer thread: waits for a change, then writes, at most once per ``period``."""
        while True:
            with self._lock:
                while not self._dirty and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
                due = self._last_write + self.period
                while not self._stopping and time.monotonic() < due:
                    self._changed.wait(due - time.monotonic())
                if self._stopping:
                    return
            self._save()

    def flush(self) -> bool:
        """Write the latest values now, synchronously, if any changed since the last write.

        Returns:
            True when the file holds the latest values, False when writing failed (logged).
        """
        return self._save()

    def _save(self) -> bool:
        with self._write_lock:
            with self._lock:
                if not self._dirty:
                    return True
                self._dirty = False
                self._last_write = time.monotonic()
                fields = {att: {**self._describe[att], 'values': dict(values)}
                          for att, values in self._values.items() if att in self._describe}
            now = time.time()
            dated = now >= self._next_dated
            try:
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)  # made later than at start-up
                write_file(self.directory, file_text(self.model_class.__name__, self.device, fields), dated)
            except OSError as err:
                with self._lock:
                    self._dirty = True  # retried after the next period
                self.failures += 1
                text = f'{err.strerror or err}'
                if text != self._last_error:
                    logger.error('%s: cannot write %s: %s; the IOC runs on, the previous file is kept, and '
                                 'the save is retried every %.0f s', self.device, self.path, text, self.period)
                    self._last_error = text
                return False
            if dated:
                self._next_dated = now + DATED_EVERY
            if self._last_error:
                logger.warning('%s: %s written again', self.device, self.path)
                self._last_error = ''
            self.writes += 1
            return True

    def stop(self) -> None:
        """Stop watching, write the latest values (a clean shutdown), stop the writer thread."""
        with self._lock:
            self._stopping = True
            self._changed.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10.0)
        self._thread = None
        self._unwatch()
        self.flush()

    def _unwatch(self) -> None:
        for pv in self._pvs:
            pv.value_hook = None
        self._pvs = []
        for extra in self._extra:
            try:
                extra.clear_callbacks()
                extra.disconnect()
            except Exception:  # libca may be gone at interpreter exit
                pass
        self._extra = []


def for_model(model_class: type, device: str, macros: Mapping[str, str] | None = None) -> Saver | None:
    """The saver of a model instance, or None when none of its fields autosaves."""
    return Saver(model_class, device, macros) if autosaved(model_class) else None
