"""Alarms set from Python (issue 14 §3): ``alarm=True`` fields, ``set_alarm``, ``put(..., severity=, status=)``.

A record's STAT, SEVR and AMSG cannot be written, not even by ``dbpf`` (SPC_NOMOD): a record
computes its alarm itself each time it is processed. So each field declared ``alarm=True`` gets a
hidden ``longin`` record ``<pv>:alarm`` with ``INP "<pv>:alarm:app CP MSS"``: ``<pv>:alarm:app`` is
served by the app's own caproto CA server (:class:`devioc.appserver.AppServer`, in softIoc's
EPICS_CA_ADDR_LIST), whose STAT and SEVR the app sets; each change processes the hidden record (CP)
and dbCa copies them in (MSS). The public record reads the hidden one through
``SDIS "<pv>:alarm.DISA NPP MSS"``: at every processing, EPICS base's dbDbLink
(``recGblInheritSevrMsg``, MSS mode) copies the hidden record's status and severity into the public
one; DISA read that way is always 0, so the record is never disabled. The public record keeps its
name, record type and fields. The hidden record starts in NO_ALARM (UDF 0, STAT and SEVR set in the
.db, no PINI), so neither it nor the field starts in UDF or in LINK while the link connects.

What base 7.0.8.1 gives this way, checked live:

- severity: any of NO_ALARM, MINOR, MAJOR, INVALID; status: any of menuAlarmStat (STATE when not
  given, as before this route existed);
- message: none. CA carries no message and no record of base lets one write an AMSG. The message is
  kept on the PV (``pv.alarm_message``) and logged, nowhere else.

Order. The source's alarm reaches softIoc on another circuit than the field's values: without care
(``SDIS "<app pv> CA MSS"``, CP changes nothing) 201 of 300 puts sent right after an alarm change were
processed with the previous alarm. So an alarm change is a handshake (:func:`_show`): a read on the
field's own ordered stream (its CA circuit, or softIoc's shell for a read-only or restricted field,
:mod:`devioc.access`) returns once the field's earlier writes are processed; then the source's new
alarm; then a wait until the hidden record's monitor shows it; then the public record's value
(``put(value, severity=...)``: one processing, one monitor event with both) or ``PROC``
(``set_alarm``: one processing, in which an output record writes its OUT link again and fires its
FLNK, as any processing does). Measured on loopback: 1.3 ms per isolated alarm change (median),
about 11 ms when changes follow each other (caproto batches events that come within 10 ms). A ``put`` whose severity and status do not change takes the ordinary path,
with no extra write. Clients cannot change the alarm: the source refuses puts, and the hidden record
is in the read-only group (``DEVIOC_RO``; :func:`devioc.access.uses_access` loads the .acf for it).
SDIS is a configuration field (ASL1): no client may write it unless the model gives clients level 1
(``Meta.access_level = 1`` or a group's ``'level': 1``), and such a client may cut the field off from
the app's alarm.

Threads. Any thread may change a field's alarm or put with ``severity=``: each field's alarm changes,
and the puts that carry its last severity, go one at a time under the field's lock, so each value is
processed with the alarm it was put with. Restart (:mod:`devioc.restart`): the app's CA server and
the alarms it holds live on; :func:`restore` shows them again on the new softIoc.
"""
from __future__ import annotations

import logging
import numbers
import threading
import time
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: the hidden record's name: ``<pv>`` + this
SUFFIX = ':alarm'
#: severities by name, in EPICS's order (menuAlarmSevr)
SEVERITIES = ('NO_ALARM', 'MINOR', 'MAJOR', 'INVALID')
#: statuses by name, in EPICS's order (menuAlarmStat of base 7)
STATUSES = ('NO_ALARM', 'READ', 'WRITE', 'HIHI', 'HIGH', 'LOLO', 'LOW', 'STATE', 'COS', 'COMM', 'TIMEOUT',
            'HWLIMIT', 'CALC', 'SCAN', 'LINK', 'SOFT', 'BAD_SUB', 'UDF', 'DISABLE', 'SIMM', 'READ_ACCESS',
            'WRITE_ACCESS')
#: the alarm source's name, served by the app's CA server: ``<pv>`` + SUFFIX + this
SOURCE = ':app'


def severity_name(severity: Any, pv_name: str) -> str:
    """``severity`` (0-3, or a name such as 'MAJOR') as its menuAlarmSevr name.

    Raises:
        ValueError: not a severity.
    """
    if isinstance(severity, str) and severity.strip().upper() in SEVERITIES:
        return severity.strip().upper()
    if isinstance(severity, numbers.Integral) and not isinstance(severity, (bool, np.bool_)) \
            and 0 <= severity < len(SEVERITIES):   # numpy's integers too (a severity computed by numpy)
        return SEVERITIES[int(severity)]
    raise ValueError(f'cannot set the alarm of {pv_name} to severity {severity!r}: give 0-3 or one of '
                     f'{", ".join(SEVERITIES)}')


def status_name(status: Any, severity: str, pv_name: str) -> str:
    """The status the record will show: ``status`` (a menuAlarmStat name; STATE when None) for an
    alarm, NO_ALARM without.

    Raises:
        ValueError: not a menuAlarmStat name, or NO_ALARM with a severity.
    """
    if severity == 'NO_ALARM':
        if status not in (None, 'NO_ALARM'):
            raise ValueError(f'cannot clear the alarm of {pv_name} with status {status!r}: with no severity the '
                             'status is NO_ALARM')
        return 'NO_ALARM'
    if status is None:
        return 'STATE'
    if isinstance(status, str) and status.strip().upper() in STATUSES[1:]:
        return status.strip().upper()
    raise ValueError(f'cannot set the alarm of {pv_name} with status {status!r}: give one of '
                     f'{", ".join(STATUSES[1:])} (EPICS menuAlarmStat; NO_ALARM goes with severity NO_ALARM)')


def sdis_link(pv_name: str) -> str:
    """The SDIS link of an alarmed record named ``pv_name`` (expanded, or ``$(device):<name>`` as declared):
    DISA of its hidden record, read with its alarm (MSS)."""
    return f'{pv_name}{SUFFIX}.DISA NPP MSS'


def alarmed_fields(model_class: type, callbacks: Any = None) -> set[str]:
    """The fields of ``model_class`` that get a hidden alarm record: ``alarm=True``, and every field
    the app validates (``validate_<field>`` on ``callbacks``: a refused value shows MINOR/WRITE,
    issue 14 §4) unless it is read-only (no client write to refuse) or takes SDIS itself (logged).
    """
    from .validation import validator_for

    out = set()
    for att, record in model_class._fields.items():
        if getattr(record, 'alarm', False):
            out.add(att)
        elif callbacks is not None and validator_for(callbacks, att) is not None \
                and not getattr(record, 'read_only', False):
            if 'SDIS' in getattr(record, 'user_fields', ()):
                logger.warning('%s.%s: validate_%s refuses values without a WRITE alarm: the field sets SDIS, the '
                               'link the alarm would come in by', model_class.__name__, att, att)
                continue
            out.add(att)
    return out


def add_sdis(records: dict[str, tuple[str, dict]], model_class: type, alarmed: set[str]) -> None:
    """Give the fields in ``alarmed`` that are not declared ``alarm=True`` (validated fields) the
    SDIS link their hidden record's alarm comes in by (declared ones have it from their record)."""
    for att in alarmed:
        if not getattr(model_class._fields[att], 'alarm', False):
            name, fields = records[att]
            fields['SDIS'] = sdis_link(name)


def hidden_records(model_class: type, records: dict[str, tuple[str, dict]],
                   alarmed: set[str] | None = None) -> list[tuple[str, str, dict]]:
    """``(record type, name, fields)`` of the hidden longin of every field in ``alarmed`` (None: every
    ``alarm=True`` field), in the read-only group, ``DEVIOC_RO``.

    Raises:
        ValueError: a hidden name is taken by a field, or longer than EPICS allows.
    """
    from .access import RO_GROUP
    from .checks import MAX_NAME

    names = {name for name, _ in records.values()}
    out = []
    for att, (name, _) in records.items():
        if not (att in alarmed if alarmed is not None else getattr(model_class._fields[att], 'alarm', False)):
            continue
        hidden = f'{name}{SUFFIX}'
        if hidden in names:
            raise ValueError(f'{model_class.__name__}.{att} has alarm=True, whose record {hidden!r} is also a field '
                             f'name: rename that field')
        if len(hidden.encode()) > MAX_NAME:
            raise ValueError(f'{model_class.__name__}.{att} has alarm=True, whose record {hidden!r} is longer than '
                             f'{MAX_NAME} bytes: shorten the field name by {len(hidden.encode()) - MAX_NAME}')
        # CP: processed, and its STAT/SEVR copied from the app's source, at each change the app makes;
        # no PINI: it starts in no alarm (not UDF, not LINK while its link connects), which the public
        # record's PINI reads
        fields: dict[str, Any] = {'DESC': f'alarm of {name}'[:40], 'INP': f'{hidden}{SOURCE} CP MSS',
                                  'UDF': 0, 'STAT': 'NO_ALARM', 'SEVR': 'NO_ALARM', 'PHAS': -1}
        # nobody writes it, the app included (it only reads it): without a group any client could set
        # its alarm limits (HIHI, HHSV), simulation (SIMM, SIMS) or INP and so change or clear the alarm
        fields['ASG'] = RO_GROUP
        out.append(('longin', hidden, fields))
    return out


class AlarmState:
    """The alarm the app last set on one ``alarm=True`` field (kept on its PV), and the channels
    that write it when the field is written over Channel Access.

    Args:
        pv_name: the public PV name.
    """

    def __init__(self, pv_name: str):
        self.hidden = f'{pv_name}{SUFFIX}'
        self.source = f'{self.hidden}{SOURCE}'
        self.severity = 'NO_ALARM'
        self.status = 'NO_ALARM'
        self.message = ''
        self.from_validation = False
        #: the severity argument of the app's last call, as given: put() compares it first (the fast path)
        self.given: Any = 'NO_ALARM'
        self.lock = threading.Lock()   # the alarm's write and the value's that follows go out together
        #: True after a restart until the field has been processed with the alarm (:func:`restore`):
        #: the next set_alarm/put(severity=) goes through the handshake even when unchanged
        self.stale = False
        self.channels: tuple[Any, Any] | None = None   # (hidden record, <pv>.PROC or None: shell route)

    def connect(self, pv: Any, reactor: Any) -> None:
        """Open the channels to the hidden record (monitored: the app waits to see each alarm there
        before it sends the value) and to ``<pv>.PROC`` (a field the app writes over CA).
        """
        from .channels import PV
        from .records import Integer

        asg = {'ASG': pv.record.fields['ASG']} if pv.record.fields.get('ASG') else {}
        hidden = PV(self.hidden, Integer(self.hidden, **asg), pv.model)
        hidden.connect(reactor)
        hidden.subscribe()
        proc = None
        if not pv._shell:
            proc = PV(f'{pv.name}.PROC', Integer(f'{pv.name}.PROC', **asg), pv.model)
            proc.connect(reactor)
        self.channels = (hidden, proc)

    def disconnect(self) -> None:
        """Close the channels (the model's shutdown)."""
        for channel in self.channels or ():
            if channel is not None:
                channel.disconnect()
        self.channels = None


def _quote(text: str) -> str:
    from .access import _quote as quote
    return quote(text)


def _state_of(pv: Any) -> AlarmState:
    state = getattr(pv, '_alarm', None)
    if state is None:
        raise RuntimeError(f'{pv.name} has no alarm record: declare the field with alarm=True to set its alarm '
                           'from Python')
    return state


def _process_of(pv: Any) -> Any:
    process = getattr(pv.model, '_process', None)
    if process is None or pv._chid is None:
        raise RuntimeError(f'{pv.name} is closed: the model has been shut down')
    return process


def _channels(pv: Any, state: AlarmState) -> tuple[Any, Any]:
    """The CA channels of ``state``, once connected (they connect with the model: this rarely waits)."""
    if state.channels is None:
        raise RuntimeError(f'{pv.name} is closed: the model has been shut down')
    if not pv.connected:   # softIoc is down (dead, restarting): at once, as a put says it, not after 5 s
        raise RuntimeError(f'cannot set the alarm of {pv.name}: {pv.name} is not connected: is the IOC running?')
    deadline = time.monotonic() + 5.0
    while not all(channel.connected for channel in state.channels if channel is not None):
        if time.monotonic() > deadline:
            raise RuntimeError(f'cannot set the alarm of {pv.name}: {state.hidden} did not connect in 5 s; '
                               'is the IOC running?')
        time.sleep(0.001)
    return state.channels


def _new(pv: Any, state: AlarmState, severity: Any, status: Any, message: Any) -> tuple[str, str, str] | None:
    """The new (severity, status, message), or None when severity and status are unchanged (the
    message is then replaced when one is given)."""
    sevr = severity_name(severity, pv.name)
    stat = status_name(status, sevr, pv.name)
    if (sevr, stat) == (state.severity, state.status) and not state.stale:
        if message is not None:
            state.message = str(message)
        state.given = severity
        return None
    text = '' if message is None else str(message)
    return sevr, stat, text


def _commit(pv: Any, state: AlarmState, new: tuple[str, str, str], given: Any) -> None:
    state.severity, state.status, state.message = new
    state.stale = False
    state.given = given
    if new[0] == 'NO_ALARM':
        logger.info('%s: alarm cleared', pv.name)
    else:
        logger.warning('%s: %s %s alarm%s', pv.name, new[0], new[1], f': {new[2]}' if new[2] else '')


def _show(pv: Any, state: AlarmState, new: tuple[str, str, str], timeout: float = 5.0) -> None:
    """Set the source's alarm in the app's CA server, and return once the hidden record has it: the
    field's next processing (the value or PROC the caller sends next) then reads it (ordering)."""
    server = getattr(pv.model, '_alarm_server', None)
    hidden = _channels(pv, state)[0]
    if server is None:
        raise RuntimeError(f'{pv.name} is closed: the model has been shut down')
    # first the field's earlier writes, still in libca's buffer or softIoc's stdin, are processed:
    # a read on the same ordered stream (CA circuit or shell) returns after them
    if pv._shell:
        done = _send(pv, _process_of(pv), f'dbgf {_quote(state.hidden)} >/dev/null\n'.encode(), True, timeout)
    else:
        event = threading.Event()
        hidden._read_back(event.set)
        done = event.wait(timeout)
    if not done:
        raise RuntimeError(f'cannot set the alarm of {pv.name}: softIoc did not answer within {timeout:.0f} s')
    server.set_alarm(state.source, new[1], new[0], timeout)
    wanted = (SEVERITIES.index(new[0]), STATUSES.index(new[1]))
    deadline = time.monotonic() + timeout
    while (hidden.severity, hidden.status) != wanted:
        if time.monotonic() > deadline:
            raise RuntimeError(f'cannot set the alarm of {pv.name}: {state.hidden} did not show it within '
                               f'{timeout:.0f} s; is the IOC running?')
        time.sleep(0.0002)


def set_alarm(pv: Any, severity: Any, status: Any = None, message: Any = None, wait: bool = False,
              timeout: float = 30.0, only_refusal: bool = False) -> bool:
    """Show ``severity`` on the record of ``pv`` now (:meth:`devioc.channels.PV.set_alarm`).

    ``only_refusal``: only if the alarm shown is the refusal alarm of :mod:`devioc.validation` (looked
    at under the alarm's lock: an alarm the app sets meanwhile from another thread is kept).
    """
    process = _process_of(pv)
    state = _state_of(pv)
    with state.lock:
        if only_refusal and not state.from_validation:
            return True
        new = _new(pv, state, severity, status, message)
        state.from_validation = False
        if new is None:
            return True
        _show(pv, state, new)
        if pv._shell:   # the field is written through the shell: PROC too
            _commit(pv, state, new, severity)
            return _send(pv, process, f'dbpf {_quote(pv.name + ".PROC")} 1 >/dev/null\n'.encode(), wait, timeout)
        proc = _channels(pv, state)[1]
        _commit(pv, state, new, severity)
        return proc.put(1, wait=wait, timeout=timeout)


def put(pv: Any, value: Any, wait: bool, timeout: float, severity: Any, status: Any = None,
        message: Any = None) -> bool:
    """``pv.put(value, severity=...)``: the value, and the alarm when it changes, in one processing."""
    state = _state_of(pv)
    with state.lock:
        return _put(pv, state, value, wait, timeout, severity, status, message, refusal=False)


def put_back(pv: Any, value: Any, message: str) -> bool:
    """The put-back of a value ``validate_<field>`` refused (:mod:`devioc.validation`): with a MINOR
    WRITE alarm when the field shows none or an earlier refusal's (the next accepted value clears it),
    plain when it shows an alarm the app set (that one stays). Decided under the alarm's lock, so an
    alarm the app sets meanwhile from another thread is neither overwritten nor later cleared."""
    state = _state_of(pv)
    with state.lock:
        if state.severity == 'NO_ALARM' or state.from_validation:
            return _put(pv, state, value, False, 30.0, 'MINOR', 'WRITE', message, refusal=True)
        return pv.put(value)


def _put(pv: Any, state: AlarmState, value: Any, wait: bool, timeout: float, severity: Any, status: Any,
         message: Any, refusal: bool) -> bool:
    """:func:`put`, the alarm's lock held."""
    from .access import shell_line, shell_put

    _process_of(pv)
    new = _new(pv, state, severity, status, message)
    if new is None:
        state.from_validation = refusal
        return pv.put(value, wait=wait, timeout=timeout)
    if pv._shell:
        shell_line(pv, value)   # a value the record cannot hold raises ValueError before the alarm is sent
        _show(pv, state, new)
        _commit(pv, state, new, severity)
        state.from_validation = refusal
        return shell_put(pv, value, wait, timeout)
    pv._data(value)   # a value the record cannot hold raises ValueError before the alarm is sent
    _show(pv, state, new)
    state.from_validation = refusal
    _commit(pv, state, new, severity)
    return pv.put(value, wait=wait, timeout=timeout)


def _send(pv: Any, process: Any, line: bytes, wait: bool, timeout: float) -> bool:
    if not wait:
        process.command(line)
        return True
    done = threading.Event()
    process.command(line, lambda ok: done.set())
    if not done.wait(timeout):
        logger.error('%s: the alarm was not set within %.1f s', pv.name, timeout)
        return False
    return not process.exited.is_set()


def restore(model: Any, timeout: float = 5.0) -> None:
    """After a restart (:func:`devioc.restart.start_again`, channels connected): show again the alarm
    each ``alarm=True`` field had.

    The new softIoc's records start in no alarm, and its hidden records take the sources' alarms
    (kept by the app's CA server) only when their links connect, after the fields' PINI. A field that
    processes at start (PINI: no output link) is processed once more, as ``set_alarm`` would, once
    its hidden record holds the alarm. A field with an output link is not (that would write through
    the link at every restart): it shows the alarm at its next processing, and the app's next
    ``set_alarm``/``put(severity=)``, even of the same alarm, processes it.
    """
    for pv in list(getattr(model, '_pvs', {}).values()):
        state = getattr(pv, '_alarm', None)
        if state is None:
            continue
        with state.lock:
            if state.severity == 'NO_ALARM':
                continue
            state.stale = True
            try:
                hidden = _channels(pv, state)[0]
                wanted = (SEVERITIES.index(state.severity), STATUSES.index(state.status))
                deadline = time.monotonic() + timeout
                while (hidden.severity, hidden.status) != wanted and time.monotonic() < deadline:
                    time.sleep(0.001)
                if (hidden.severity, hidden.status) != wanted:
                    logger.error('%s: after the restart %s did not take the alarm %s %s within %.0f s',
                                 pv.name, state.hidden, state.severity, state.status, timeout)
                    continue
                if str(pv.record.db_fields().get('PINI', '')).upper() not in ('YES', '1'):
                    continue
                if pv._shell:
                    _send(pv, _process_of(pv), f'dbpf {_quote(pv.name + ".PROC")} 1 >/dev/null\n'.encode(), True,
                          timeout)
                else:
                    _channels(pv, state)[1].put(1, wait=True, timeout=timeout)
                state.stale = False
            except RuntimeError as err:
                logger.error('%s: the alarm %s %s was not shown again after the restart: %s', pv.name,
                             state.severity, state.status, err)


def attach(model: Any, records: dict[str, tuple[str, dict]]) -> Any:
    """Start the app's CA server that serves the alarm sources of ``model``'s ``alarm=True`` fields
    (None when it has none).

    Raises:
        devioc.appserver.AppServerError: the server could not start.
    """
    from .appserver import AppServer, softioc_pid

    alarmed = getattr(model, '_alarmed', None)
    names = [f'{name}{SUFFIX}{SOURCE}' for att, (name, _) in records.items()
             if (att in alarmed if alarmed is not None else getattr(model._fields[att], 'alarm', False))]
    if not names:
        return None
    server = AppServer(peer_pid=softioc_pid(model))
    for name in names:
        server.add(name, 'alarm', _no_putter)
    server.start()
    return server


async def _no_putter(value: Any) -> None:   # an alarm source refuses writes before a putter is called
    return None


def environ(server: Any, env: dict[str, str]) -> None:
    """Add the alarm server to softIoc's EPICS_CA_ADDR_LIST (the user's list is kept)."""
    env['EPICS_CA_ADDR_LIST'] = ' '.join(env.get('EPICS_CA_ADDR_LIST', '').split() + [server.address])
