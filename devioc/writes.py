"""Write callbacks: ``write_<field>(pv, value, ioc)``, called for every client write to a field.

``do_<field>`` sees the values a record posts (its first value, every change, the app's own puts).
``write_<field>`` sees writes: every Channel Access client put that processes the record
(``caput``, ``caput -c``, pyepics), same value or not, and never the initial value nor the app's
own puts.

softIoc cannot tell a client's put from the app's (both are CA puts), so the database does. For a
field ``<pv>`` with a ``write_<field>`` callback devioc renders three hidden records beside it:

``<pv>:_app``
    the app's own door: a record of the same value type whose OUT is ``"<pv> PP"`` (a database link:
    one lock set). ``ioc.<field>.put(...)`` writes here, so the app's puts reach ``<pv>`` through a
    link, never as a client put.
``<pv>:_wc``
    a calc ``A&&!B`` of ``<pv>.PUTF`` (set by EPICS while a record processes because of a
    ``dbPutField``, the path of every client put, ``caput -c`` included, and cleared after its forward
    link) and ``<pv>:_app.PACT`` (1 while the app's twin is writing: EPICS 7 carries PUTF along
    links, so the app's put would otherwise look like a client's).
``<pv>:_w``
    the detector, processed by ``<pv>``'s FLNK (a FLNK the model gave ``<pv>`` is chained after it):
    an input record of the matching type reading ``"<pv> NPP"`` that posts on every processing
    (MDEL=-1 or MPST=Always), disabled (SDIS ``"<pv>:_wc PP"``, DISV=0) unless the calc says a
    client wrote. Processing that is no client write (PINI, a periodic SCAN, a Toggle's HIGH
    return to 0, another record's link) finds it disabled: the one DISABLE event this posts is
    dropped here.

The app monitors ``<pv>:_w`` and calls ``write_<field>(pv, value, ioc)`` on the reactor thread with
the value the record holds after the write (a write clamped by DRVH reports the clamped value).
Limits, from EPICS itself: a record that is not ``SCAN=Passive`` is not processed by a put, so its
writes are not reported (logged as a warning at start-up); a calc/calcout's VAL is not
process-passive, so ``write_`` on one is refused (devioc.E011); Channel Access keeps a bounded event queue per client and, under a flood
of writes faster than the app reads them, the server replaces the newest queued events: the
callback then sees fewer calls, always ending with the last value written (see the README).
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from epics import dbr

from .channels import PV, dispatcher

logger = logging.getLogger(__name__)

APP_SUFFIX = ':_app'
GATE_SUFFIX = ':_wc'
WATCH_SUFFIX = ':_w'
#: the longest suffix: the public name must leave room for it within EPICS' 60 bytes
LONGEST_SUFFIX = max(len(APP_SUFFIX), len(GATE_SUFFIX), len(WATCH_SUFFIX))
#: menuAlarmStat index of DISABLE: the status of the event a detector posts when it is disabled
UDF_STATUS = 17   # menuAlarmStat UDF: a record never processed
DISABLE_STATUS = 18

#: the twin (the app's door) by record type: an output record writing the same DBR type
_TWIN = {'ao': 'ao', 'ai': 'ao', 'longout': 'longout', 'longin': 'longout',
         'mbboDirect': 'longout', 'mbbiDirect': 'longout', 'mbbo': 'mbbo', 'mbbi': 'mbbo', 'bo': 'bo', 'bi': 'bo',
         'stringout': 'stringout', 'stringin': 'stringout', 'waveform': 'aao'}
#: the detector by record type: an input record that posts on every processing, and its DBR type
_WATCH = {'ao': ('ai', dbr.DOUBLE), 'ai': ('ai', dbr.DOUBLE), 'longout': ('longin', dbr.LONG), 'longin': ('longin', dbr.LONG),
          'mbboDirect': ('longin', dbr.LONG), 'mbbiDirect': ('longin', dbr.LONG), 'mbbo': ('longin', dbr.LONG),
          'mbbi': ('longin', dbr.LONG), 'bo': ('longin', dbr.LONG), 'bi': ('longin', dbr.LONG),
          'stringout': ('stringin', dbr.STRING), 'stringin': ('stringin', dbr.STRING)}


#: the state names a twin copies from its record (mbbo/mbbi ZRST..FFST, bo/bi ZNAM and ONAM)
_STATE_FIELDS = ('ZNAM', 'ONAM', 'ZRST', 'ONST', 'TWST', 'THST', 'FRST', 'FVST', 'SXST', 'SVST', 'EIST', 'NIST',
                 'TEST', 'ELST', 'TVST', 'TTST', 'FTST', 'FFST')


def write_callback_for(callbacks: Any, attname: str, attnames: Any = ()) -> Callable | None:
    """The ``write_<field>`` method of ``callbacks`` for the field ``attname``, or None.

    Looked up as ``do_<field>`` is (:func:`devioc.models.callback_for`): the exact attribute name,
    else its lower-case form unless another field is named exactly that.
    """
    method = getattr(callbacks, f'write_{attname}', None)
    if method is None and attname.lower() != attname and attname.lower() not in attnames:
        method = getattr(callbacks, f'write_{attname.lower()}', None)
    return method if callable(method) else None


class WritePlan:
    """The hidden records of one field with a ``write_<field>`` callback.

    Args:
        callback: the ``write_<field>`` method.
        pv_name: the field's PV name.
        ftype: the DBR type of the detector's value.
    """

    def __init__(self, callback: Callable, pv_name: str, ftype: int):
        self.callback = callback
        self.app_name = pv_name + APP_SUFFIX
        self.watch_name = pv_name + WATCH_SUFFIX
        self.ftype = ftype


def plan(model_class: type, callbacks: Any, records: dict[str, tuple[str, dict]],
         lookup: Callable[[str], Callable | None] | None = None) -> tuple[dict[str, WritePlan], list]:
    """Give every field with a ``write_<field>`` callback its hidden records.

    Args:
        model_class: the model class (its ``_fields``).
        callbacks: the object holding the ``write_<field>`` methods.
        records: ``{attname: (pv_name, fields)}`` as :func:`devioc.render.expand_model` gives it;
            the fields of those with a callback get their FLNK pointed at the detector (in place).
        lookup: ``lookup(attname)`` finds the callback (default: :func:`write_callback_for` on
            ``callbacks``), so groups can route a field to their own callbacks object.

    Returns:
        ``({attname: WritePlan}, [(record type, name, fields), ...])``: the plans, and the hidden
        records to append to the .db.

    Raises:
        devioc.checks.ModelError: a hidden record's name would pass EPICS' 60 bytes (devioc.E001).
    """
    from . import checks

    if lookup is None:
        def lookup(attname: str) -> Callable | None:
            return write_callback_for(callbacks, attname, model_class._fields)
    plans: dict[str, WritePlan] = {}
    extra: list[tuple[str, str, dict]] = []
    problems: list[checks.CheckMessage] = []
    for attname, (name, fields) in records.items():
        callback = lookup(attname)
        if callback is None:
            continue
        record = model_class._fields[attname]
        rtype = record.record
        where = f'{model_class.__name__}.{attname}'
        if rtype not in _TWIN:  # calc, calcout: VAL is not process-passive, a client put never processes them
            problems.append(checks.CheckMessage(
                'devioc.E011', f'write_{attname} can never be called: a client put to the VAL of a {rtype} record '
                'does not process it (VAL is not process-passive in EPICS)', 'use a Float or Integer field for '
                f'what clients write, and do_{attname} to follow the {rtype}\'s result', where))
            continue
        if str(fields.get('SCAN', 'Passive')) not in ('Passive', '0', ''):
            logger.warning('%s: write_%s is called only while SCAN is Passive: a client put does not process a '
                           'record scanned %r', where, attname, fields.get('SCAN'))
        size = len(name.encode('utf-8')) + LONGEST_SUFFIX
        if size > checks.MAX_NAME:
            problems.append(checks.CheckMessage(
                'devioc.E001', f'record name {name!r} leaves no room for the hidden records of its write_ '
                f'callback ({name}{APP_SUFFIX} is {size} bytes; EPICS allows {checks.MAX_NAME})',
                f'shorten the device or field name by {size - checks.MAX_NAME} bytes, or drop write_{attname}',
                where))
            continue
        plans[attname], hidden = _records(rtype, name, fields, callback)
        extra.extend(hidden)
    checks.raise_if(problems)
    return plans, extra


def _records(rtype: str, name: str, fields: dict, callback: Callable) -> tuple[WritePlan, list]:
    twin: dict[str, Any] = {'DESC': 'devioc: the app\'s puts', 'OUT': f'{name} PP'}
    # the twin writes the field through a link, unseen by the detector: no client's (a client writing
    # it changed the field with no write_<field> call, or wrote a restricted group's record); the app
    # writes it through softIoc's shell (attach). The gate and the detector: devioc.access.guard_hidden
    from .access import RO_GROUP
    twin['ASG'] = RO_GROUP
    gate = {'DESC': 'devioc: 1 on a client put', 'INPA': f'{name}.PUTF NPP', 'INPB': f'{name}{APP_SUFFIX}.PACT NPP',
            'CALC': 'A&&!B'}
    watch: dict[str, Any] = {'DESC': 'devioc: client writes', 'INP': f'{name} NPP', 'SDIS': f'{name}{GATE_SUFFIX} PP',
                             'DISV': 0}
    for key in _STATE_FIELDS:   # the app writes through the shell by state name (devioc.access): same states
        if key in fields:
            twin[key] = fields[key]
    if rtype == 'waveform':
        ftvl = str(fields.get('FTVL', 'DOUBLE')).upper()
        for part in (twin, watch):
            part.update(FTVL=ftvl, NELM=fields.get('NELM', 1))
        watch['MPST'] = 'Always'
        from .channels import dbr_type
        watch_type, ftype = 'waveform', dbr_type('waveform', ftvl)
    else:
        watch_type, ftype = _WATCH[rtype]
        if watch_type == 'stringin':
            watch['MPST'] = 'Always'
        else:
            watch['MDEL'] = -1
    if 'FLNK' in fields and fields['FLNK'] not in ('', None):
        watch['FLNK'] = fields['FLNK']   # the model's own FLNK still runs, after the detector
    fields['FLNK'] = name + WATCH_SUFFIX
    hidden = [(_TWIN[rtype], name + APP_SUFFIX, twin), ('calc', name + GATE_SUFFIX, gate),
              (watch_type, name + WATCH_SUFFIX, watch)]
    return WritePlan(callback, name, ftype), hidden


class WriteWatch(PV):
    """The monitored detector of one field: calls ``write_<field>(pv, value, ioc)`` per client write.

    Its first event (the value when the app subscribed) and DISABLE events (processing that was no
    client write) are dropped; the others are queued for the reactor thread as do_ callbacks are.
    """

    def __init__(self, public: PV, plan: WritePlan):
        super().__init__(plan.watch_name, public.record, public.model, plan.callback)
        self.public = public
        self.ftype = plan.ftype
        self._seen_first = False

    def connect(self, reactor: Any) -> None:
        self._seen_first = False   # a new channel (a restarted softIoc too): its first event is a state
        super().connect(reactor)

    def _on_monitor(self, value: Any, severity: int = 0, status: int = 0, timestamp: float = 0.0) -> None:
        if not self._seen_first:
            self._seen_first = True
            self._has_value.set()
            # a detector never processed is UDF; one last processed by no client write is DISABLE:
            # anything else is a client write made before the app subscribed (after iocInit)
            if status in (UDF_STATUS, DISABLE_STATUS) or self.callback is None:
                return
            logger.warning('%s: a client wrote %r before the app was ready; write_%s is called for it (with '
                           'the last value, if there were several)', self.public.name, value, self.record.attname)
            dispatcher.post(self._reactor, self, self._from_ca(value))
            return
        if status == DISABLE_STATUS:
            return
        if self.callback is not None:
            dispatcher.post(self._reactor, self, self._from_ca(value))

    def _dispatch(self, value: Any) -> None:
        callback = self.callback
        if callback is None:
            return
        try:
            callback(self.public, value, self.public.model)
        except Exception:
            logger.exception('write_%s(%r) raised; later writes are still delivered', self.record.attname, value)


class WriteLink:
    """The two extra channels of a field with ``write_<field>``: the app's twin and the detector."""

    def __init__(self, public: PV, plan: WritePlan):
        self.twin = PV(plan.app_name, public.record, public.model)
        self.watch = WriteWatch(public, plan)
        self.callback = plan.callback

    def connect(self, reactor: Any) -> None:
        """Create both channels and subscribe to the detector (libca queues it until connected).

        Also after :meth:`disconnect` (a restarted softIoc): the detector gets its write_<field> back.
        """
        self.watch.callback = self.callback   # PV.disconnect drops it
        self.twin.connect(reactor)
        self.watch.connect(reactor)
        self.watch.subscribe()

    @property
    def connected(self) -> bool:
        """True when both channels are connected and the detector's first value has arrived."""
        has_value = self.watch._has_value
        return self.twin.connected and self.watch.connected and has_value is not None and has_value.is_set()

    @property
    def chid(self) -> Any:
        """The channel the app's puts go to: the twin's."""
        return self.twin._chid

    def renew(self, retired: list) -> None:
        """Make both channels again on a restarted softIoc (:meth:`devioc.channels.PV.renew`)."""
        self.twin.renew(retired)
        self.watch._seen_first = False   # the new detector's first event is its value, not a client write
        self.watch.renew(retired)

    def disconnect(self) -> None:
        """Drop both channels."""
        self.watch.disconnect()
        self.twin.disconnect()


def attach(pv: PV, plan: WritePlan | None) -> None:
    """Route ``pv``'s puts through its twin and watch its detector, if it has a write callback."""
    if plan is not None:
        pv._writes = WriteLink(pv, plan)
        from .access import serves_acf
        if serves_acf(pv.model):   # its twin is in DEVIOC_RO (_records): the app writes it through the shell
            pv._shell = True
