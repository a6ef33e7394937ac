"""Groups: a model included in another, under a prefix, with its own macros and callbacks.

``ph = models.Group(Detector, prefix='ph:', max_value=5)`` on a model class serves
``<device>:ph:<name>`` for each of Detector's records. The group's records become ordinary fields of
the model, named ``ph_<field>`` (so every check applies to the expanded names, and ``ioc.ph_<field>``
works), and ``ioc.ph.<field>`` reaches the same PV through a :class:`GroupView`.

Callbacks of a group's field, first found wins: the model's callbacks object's ``do_ph_<field>``
(``write_ph_<field>``), then the group's own ``callbacks=`` object's ``do_<field>`` (``write_<field>``),
which gets the group's view as its ``ioc`` argument, so code written for ``Detector`` runs unchanged.
Groups nest: a model with groups can itself be a group (``ioc.a.b.<field>``, ``do_a_b_<field>``).
"""
from __future__ import annotations

import copy
import re
from typing import Any, Callable

from .macros import _MACRO
from .records import Record

__all__ = ['Group', 'GroupView']


def _substitute(value: Any, macros: dict[str, str]) -> Any:
    """``value`` with the group's macros replaced; other macros (``$(device)``...) are left for later."""
    if isinstance(value, str):
        def one(match: re.Match) -> str:
            name = (match.group(1) or match.group(3)).strip()
            return macros[name] if name in macros else match.group(0)
        return _MACRO.sub(one, value) if '$' in value else value
    if isinstance(value, dict):
        return {_substitute(k, macros): _substitute(v, macros) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_substitute(v, macros) for v in value)
    return value


class Group:
    """Include the records of another model class, served under ``prefix``.

    Args:
        model: the model class whose records the group serves (a :class:`devioc.models.Model`
            subclass; it may hold groups itself).
        prefix: put before each record name (``'ph:'`` serves ``<device>:ph:<name>``); may hold macros.
        callbacks: an object whose ``do_<field>``/``write_<field>`` methods handle this group's
            fields (with the group's view as ``ioc``); the model's ``do_<group>_<field>`` wins over it.
        **macros: macros for this group's records only (``$(max_value)`` in ``model``'s fields).

    Raises:
        TypeError: ``model`` is not a model class, ``prefix`` is not a string, or a macro is given that
            no record of ``model`` uses (a misspelt name).
        devioc.checks.ModelError: ``callbacks`` has a ``do_``/``write_`` method matching no field of
            ``model`` or with a wrong signature (devioc.E010/E011).
    """

    def __init__(self, model: type, prefix: str = '', callbacks: Any = None, **macros: Any):
        if not isinstance(model, type) or not isinstance(getattr(model, '_fields', None), dict):
            raise TypeError(f'Group({model!r}): the first argument must be a model class (a subclass of '
                            'devioc.models.Model), e.g. models.Group(Detector, prefix="ph:")')
        if not isinstance(prefix, str):
            raise TypeError(f'Group({model.__name__}, prefix={prefix!r}): prefix must be a string, e.g. "ph:"')
        self.model = model
        self.prefix = prefix
        self.callbacks = callbacks
        self.macros = {key: str(value) for key, value in macros.items()}
        if macros:   # a macro no record uses (a typo) would be dropped silently
            from .runner import used_macros
            used = used_macros([model])
            unused = sorted(set(macros) - set(used))
            if unused:
                raise TypeError(f'Group({model.__name__}, {", ".join(f"{k}=..." for k in unused)}): keyword arguments '
                                f'of Group are macros of its records, and no record of {model.__name__} uses '
                                f'{", ".join(f"$({k})" for k in unused)}; {model.__name__} uses: '
                                f'{", ".join(sorted(used)) or "no macros"}')
        self.attname = ''
        if callbacks is not None:
            from . import checks
            checks.raise_if(checks.check_callbacks(model, callbacks))

    def __set_name__(self, owner: type, name: str) -> None:
        self.attname = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        return GroupView(obj, self.attname + '_', self.model)

    def records(self) -> dict[str, Record]:
        """``{inner attname: record}``: copies of ``model``'s records, prefixed, the group's macros applied."""
        out = {}
        for inner, record in self.model._fields.items():
            new = copy.copy(record)
            new.name = self.prefix + _substitute(record.name, self.macros)
            new.fields = {key: _substitute(value, self.macros) for key, value in record.fields.items()}
            new.user_fields = set(record.user_fields)
            new.problems = list(record.problems)
            if isinstance(getattr(record, 'default', None), str):
                new.default = _substitute(record.default, self.macros)
            out[inner] = new
        return out

    def __repr__(self) -> str:
        return f'<Group {self.attname!r} of {self.model.__name__} prefix={self.prefix!r}>'


class GroupView:
    """``ioc.<group>``: the group's fields (``.<field>``, the PVs) and nested groups of a running model."""

    def __init__(self, model: Any, prefix: str, group_model: type):
        self._model, self._prefix, self._group_model = model, prefix, group_model

    def __getattr__(self, name: str) -> Any:
        if name.startswith('__'):
            raise AttributeError(name)
        groups = getattr(self._group_model, '_groups', {})
        if name in groups:
            return GroupView(self._model, f'{self._prefix}{name}_', groups[name].model)
        if name in self._group_model._fields:
            return getattr(self._model, self._prefix + name)
        raise AttributeError(f'{self._group_model.__name__} (group {self._prefix[:-1]!r} of '
                             f'{type(self._model).__name__}) has no field or group {name!r}; it has '
                             f'{", ".join(sorted([*self._group_model._fields, *groups]))}')

    @property
    def device_name(self) -> str:
        """The device of the model that holds the group."""
        return self._model._device_name

    def __dir__(self) -> list[str]:
        return sorted([*self._group_model._fields, *getattr(self._group_model, '_groups', {})])

    def __repr__(self) -> str:
        return f'<GroupView {self._prefix[:-1]} of {self._model!r}>'


def expand(name: str, attrs: dict, reserved: Any) -> tuple[dict[str, Record], dict[str, Group], list]:
    """The fields a class body declares, its own and through groups (for :class:`devioc.models.ModelType`).

    Returns:
        ``({attname: record}, {group name: Group}, [CheckMessage])``: the fields in declaration
        order (a group's records, as fields ``<group>_<field>``, in the group's place), the groups, and problems (a group name the Model uses, or a field name
        a group's fields would take: devioc.E020 / devioc.E009).
    """
    from .checks import CheckMessage

    fields: dict[str, Record] = {}
    groups: dict[str, Group] = {}
    problems = []
    for key, group in list(attrs.items()):
        if isinstance(group, Record):
            group.attname = key
            fields[key] = group
            continue
        if not isinstance(group, Group):
            continue
        group.attname = key
        groups[key] = group
        where = f'{name}.{key}'
        if key in reserved or key.startswith('_'):
            problems.append(CheckMessage('devioc.E020', f'group name {key!r} is used by the Model itself',
                                         'give the group another attribute name', where))
        for inner, record in group.records().items():
            attname = f'{key}_{inner}'
            if attname in attrs or attname in fields:
                problems.append(CheckMessage('devioc.E009', f'group {key!r} gives a field {attname!r} (from '
                                             f'{group.model.__name__}.{inner}), which is also declared here',
                                             'rename the field or the group', where))
                continue
            record.attname = attname
            fields[attname] = record
    return fields, groups, problems


def callback_for(model_class: type, attname: str, prefix: str = 'do_') -> Callable | None:
    """The callback of a group's field from its group's ``callbacks=`` object (None if none has one).

    Looks through nested groups; the method found gets the innermost group's view as its ``ioc``.
    """
    for key, group in getattr(model_class, '_groups', {}).items():
        head = key + '_'
        inner = attname[len(head):]
        if not attname.startswith(head) or inner not in group.model._fields:
            continue
        method = None
        if group.callbacks is not None:
            method = getattr(group.callbacks, prefix + inner, None)
            if method is None and inner.lower() != inner and inner.lower() not in group.model._fields:
                method = getattr(group.callbacks, prefix + inner.lower(), None)
        if callable(method):
            return _with_view(method, head, group.model)
        nested = callback_for(group.model, inner, prefix)
        if nested is not None:
            return _with_view(nested, head, group.model, nested=True)
    return None


def _with_view(method: Callable, prefix: str, group_model: type, nested: bool = False) -> Callable:
    """``method`` called with the group's view (a view of a view for nested groups) as ``ioc``."""

    def callback(pv: Any, value: Any, ioc: Any) -> Any:
        return method(pv, value, GroupView(ioc, prefix, group_model) if not nested else _Scoped(ioc, prefix))

    callback.__name__ = getattr(method, '__name__', 'callback')
    callback.__wrapped__ = method  # type: ignore[attr-defined]
    return callback


class _Scoped:
    """A model seen through a group prefix, for a nested group's callback (its view is built on it)."""

    def __init__(self, model: Any, prefix: str):
        self._model, self._prefix = model, prefix

    def __getattr__(self, name: str) -> Any:
        if name.startswith('__'):
            raise AttributeError(name)
        if name.startswith('_'):  # the model's own state (_device_name ...)
            return getattr(self._model, name)
        return getattr(self._model, self._prefix + name)
