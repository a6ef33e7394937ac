"""``validate_<field>(self, pv, value, ioc)``: accept, refuse or correct the values a record posts.

A record in softIoc holds a client's value before Python sees it, so a refused value is visible
until the write-back lands: the hook runs on the reactor thread as soon as the monitor event
arrives, before ``do_<field>``, and the write-back is sent at the end of that reactor turn. Fields
that must never show a refused value want DRVH/DRVL (``max_val``/``min_val``), an ``Enum`` or
``read_only=True`` instead: softIoc enforces those before the value lands.

The hook returns True (accept: ``do_<field>`` is called with the value), False (refuse: the record
is put back to the last accepted value, ``do_<field>`` is not called, a warning names the refused
value), or another value (correct: the record is put to it, and ``do_<field>`` is called with it).
It sees every value the record posts but its first (the IOC's initial value) and devioc's own
write-backs, the app's own puts included.

A validated field gets the hidden alarm record of an ``alarm=True`` field
(:func:`devioc.alarms.alarmed_fields`), so a refused value also raises a MINOR alarm with status WRITE (EPICS's status of a refused write; MINOR: the value shown, the previous
one put back, is valid), set in the same
processing as the put-back, with the message ``refused <value>`` in ``pv.alarm_message``; the next
accepted value clears it (one more processing of the record).
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

logger = logging.getLogger(__name__)


def validator_for(callbacks: Any, attname: str) -> Callable | None:
    """The ``validate_<attname>`` method of ``callbacks``, or None."""
    method = getattr(callbacks, f'validate_{attname}', None)
    return method if callable(method) else None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a == b


class Validation:
    """The validation state of one field: its last accepted value and the write-backs in flight.

    Args:
        validator: the bound ``validate_<field>`` method.
    """

    def __init__(self, validator: Callable):
        self.validator = validator
        self.accepted: Any = None
        self.started = False
        #: counts the values accepted: a write-back made before the latest is stale when it lands
        self._generation = 0
        #: (value written back, deliver it to do_<field>, the generation it was made in)
        self._echoes: list[tuple[Any, bool, int]] = []

    def check(self, pv: Any, value: Any) -> bool:
        """Run on the reactor thread for each posted value; True when ``do_<field>`` gets ``value``."""
        if not self.started:   # the IOC's initial value
            self.started, self.accepted = True, value
            self._generation += 1
            return True
        for index, (echo, deliver, generation) in enumerate(self._echoes):
            if _same(echo, value):   # our own write-back coming back: not validated again
                del self._echoes[index]
                if generation != self._generation:
                    # a value was accepted after this write-back was sent (a client's valid write
                    # landed between its refused one and the put-back): the record must hold that
                    # one, not the older value the put-back carried
                    if not _same(value, self.accepted):
                        self._write_back(pv, self.accepted, deliver=False)
                    return False
                if deliver:
                    self.accepted = value
                    self._generation += 1
                return deliver
        try:
            verdict = self.validator(pv, value, pv.model)
        except Exception:
            logger.exception('validate_%s(%r) raised: the value is refused', pv.record.attname, value)
            verdict = False
        if verdict is True:
            self.accepted = value
            self._clear_alarm(pv)
            self._generation += 1
            return True
        if verdict is False or verdict is None:
            logger.warning('%s: refused %r (validate_%s returned %r); put back %r', pv.name, value,
                           pv.record.attname, verdict, self.accepted)
            self._write_back(pv, self.accepted, deliver=False, refused=value)
            return False
        self._clear_alarm(pv)
        self._write_back(pv, verdict, deliver=True)
        return False

    @staticmethod
    def _clear_alarm(pv: Any) -> None:
        """Clear the alarm a refusal raised (an alarm=True field), not one the app set itself."""
        state = getattr(pv, '_alarm', None)
        if state is not None and state.from_validation:
            from .alarms import set_alarm
            try:   # looked at again under the alarm's lock: an alarm the app set meanwhile stays
                set_alarm(pv, 'NO_ALARM', only_refusal=True)
            except RuntimeError as err:
                logger.error('%s: cannot clear the refusal alarm: %s', pv.name, err)

    def _write_back(self, pv: Any, value: Any, deliver: bool, refused: Any = None) -> None:
        if value is None:
            return
        echo = value
        if pv.record.value_kind == 'enum' and not isinstance(value, (int, np.integer)):
            try:   # a state name comes back as its index
                echo = pv.record.to_ca(value, pv.name, pv.enum_strs)
            except ValueError:
                pass
        del self._echoes[:-7]   # a write-back the record did not post (same value) is forgotten in time
        self._echoes.append((echo, deliver, self._generation))
        try:
            state = getattr(pv, '_alarm', None)
            if not deliver and state is not None:   # alarm=True: a MINOR alarm with the put-back (devioc.alarms)
                from .alarms import put_back
                put_back(pv, value, f'refused {refused!r}')
            else:
                pv.put(value)
        except (ValueError, RuntimeError) as err:
            self._echoes.pop()
            logger.error('%s: cannot write back %r: %s', pv.name, value, err)


def check_validators(model_class: type, callbacks: Any) -> list:
    """``validate_<name>`` methods that match no field (devioc.E011) or cannot take (pv, value, ioc) (E010)."""
    import difflib
    import inspect

    from .checks import CheckMessage

    messages = []
    owner = type(callbacks).__name__
    for attr in dir(type(callbacks)):
        if not attr.startswith('validate_') or not callable(getattr(callbacks, attr, None)):
            continue
        where = f'{owner}.{attr}'
        if attr[9:] not in model_class._fields:
            close = difflib.get_close_matches(attr[9:], sorted(model_class._fields), n=1)
            messages.append(CheckMessage('devioc.E011', f'validation hook {attr} matches no field of '
                                         f'{model_class.__name__}', f'did you mean validate_{close[0]}?' if close
                                         else 'name it validate_<field>', where))
            continue
        try:
            inspect.signature(getattr(callbacks, attr)).bind(None, None, None)
        except TypeError:
            messages.append(CheckMessage('devioc.E010', f'validation hook {attr} cannot be called with (pv, value, '
                                         'ioc)', f'define it as def {attr}(self, pv, value, ioc):', where))
        except ValueError:
            pass
    return messages
