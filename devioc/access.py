"""Access security declared in the model: read-only fields, ``class Meta: access``, a site's .acf.

EPICS Channel Access and PV Access (QSRV in softIocPVA) apply one access security file (.acf),
loaded by ``asSetFilename`` before ``iocInit`` (EPICS Application Developer's Guide, "Access
Security"). A record's ASG field names its group; each group's RULEs say who may READ or WRITE,
by user (UAG) and host (HAG) as the client reports them, and up to which access security level:
each field of a record type has one, ASL0 or ASL1, in the .dbd (``asl()``; :attr:`devioc.dbd.FieldDef.asl`).
ASL0 holds the values (VAL, and a few others such as calcout's OVAL); ASL1 everything else, the
configuration: SCAN, PROC, alarm limits, EGU, DESC, and the link fields (INP, OUT, DOL, FLNK).
devioc renders that file from the model:

- ``ASG(DEFAULT)``: everyone reads and writes the fields with no ASG, up to ``Meta.access_level``
  (0 unless the class says: values only), unless ``Meta.access`` gives ``'DEFAULT'`` its own writers;
- ``ASG(DEVIOC_RO)``: everyone reads, nobody writes: the fields declared ``read_only=True`` (the
  ``*Input`` kinds by default);
- one ``ASG`` per group of ``class Meta: access = {'OPS': {'users': [...], 'hosts': [...]}}``:
  everyone reads; a client writes when its user is listed (if ``users`` is given) and its host is
  listed (if ``hosts`` is given), up to the group's ``'level'`` (``Meta.access_level`` when it does
  not say). A group with neither list is written by nobody.

Why level 0 by default: access security guards Channel Access and PV Access puts, not the
database's own links. A client that may write a writable record's link field could point it at a
read-only record (``caput DEV:w.OUT 'DEV:ro PP'``, then ``caput DEV:w 666``) and write it through
the database. Keeping the link fields (ASL1) out of clients' reach makes ``read_only`` hold.
``Meta.access_level = 1`` (or a group's ``'level': 1``) gives its writers the configuration fields
back, as the original devioc, which loaded no .acf, did for everyone.

A rule cannot tell the app's own CA client from ``caput`` run by the same user on the same host,
so the app does not write through CA what clients may not: it writes read-only records, restricted
groups and the configuration fields beyond the clients' level through softIoc's shell on its
stdin (``dbpf``), which no access rule applies to (:func:`shell_line`, and
:meth:`devioc.softioc.IOCProcess.command`).
"""
from __future__ import annotations

import json
import math
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from . import dbd

if TYPE_CHECKING:  # pragma: no cover
    from .checks import CheckMessage

#: the access security group of read-only fields: everyone reads, nobody writes through CA or PVA
RO_GROUP = 'DEVIOC_RO'
DEFAULT_GROUP = 'DEFAULT'
#: group names an .acf takes unquoted (asLib's lexer: letters, digits and _-+:.[]<>;)
_GROUP_NAME = re.compile(r'^[A-Za-z0-9_\-+:.\[\]<>;]+$')
#: what a user or host name may hold: a quoted .acf string ends at a quote, no escapes
_BAD_NAME = re.compile(r'["\\\n\r\x00]')
#: an .acf's comments and quoted strings; the head of a group's block; a RULE that lets everyone write
_ACF_NOISE = re.compile(r'"[^"\n]*"|#[^\n]*')
_ACF_BLOCK = re.compile(r'\bASG\s*\(\s*([^\s")]+)\s*\)\s*\{')
_LEVEL1_WRITE = re.compile(r'\bRULE\s*\(\s*1\s*,\s*WRITE\b')
_OPEN_WRITE = re.compile(r'\bRULE\s*\(\s*([01])\s*,\s*WRITE\s*(?:,\s*\w+\s*)?\)(?!\s*\{)')
#: an .acf's comments, quoted strings and ASG(name) heads, in the order the file has them
_ACF_TOKENS = re.compile(r'"[^"\n]*"|#[^\n]*|\bASG\s*\(\s*("?)([^\s")]+)\1\s*\)')
_SMALLEST_NORMAL = dbd.FLOAT_MIN['DBF_DOUBLE']   # iocsh cannot parse a subnormal double
_DOUBLE = 6  # DBR_DOUBLE: the CA type of an ao/ai/calc VAL
#: the access security levels a RULE takes (asLib: 0 and 1)
LEVELS = (0, 1)


def meta_access(model_class: type) -> dict | None:
    """The ``Meta.access`` declaration of a model class (or of its bases), None when there is none."""
    meta = getattr(model_class, 'Meta', None)
    return getattr(meta, 'access', None) if meta is not None else None


def access_level(model_class: type) -> int:
    """``Meta.access_level``: the access security level up to which clients write the fields of
    DEFAULT and of the ``Meta.access`` groups that give no ``'level'`` (0 when the class does not
    say, or says something :func:`check_access` refuses).
    """
    meta = getattr(model_class, 'Meta', None)
    level = getattr(meta, 'access_level', 0) if meta is not None else 0
    return level if _is_level(level) else 0


def _is_level(level: Any) -> bool:
    return isinstance(level, int) and not isinstance(level, bool) and level in LEVELS


def groups(access: Any, default_level: int = 0) -> dict[str, dict[str, Any]]:
    """``Meta.access`` as ``{group: {'users': [...], 'hosts': [...], 'level': 0|1}}`` (only the
    lists given; ``level`` always, ``default_level`` when the group does not say).

    Call :func:`check_access` first: malformed entries are skipped here.
    """
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(access, dict):
        return out
    for name, rule in access.items():
        if not isinstance(rule, dict):
            continue
        out[str(name)] = {key: [str(v) for v in rule[key]] for key in ('users', 'hosts')
                          if isinstance(rule.get(key), (list, tuple))}
        out[str(name)]['level'] = rule['level'] if _is_level(rule.get('level')) else default_level
    return out


def uses_access(model_class: type) -> bool:
    """True when the model needs an access security file: a read-only field, an ``alarm=True`` field
    (its hidden record is read-only: :mod:`devioc.alarms`), ``Meta.access`` or ``Meta.access_level``."""
    meta = getattr(model_class, 'Meta', None)
    return meta_access(model_class) is not None or hasattr(meta, 'access_level') or any(
        getattr(record, 'read_only', False) or getattr(record, 'alarm', False)
        for record in model_class._fields.values())


def check_client_hooks(model_class: type, callbacks: Any) -> list:
    """Client-write features on fields no client can write: refused rather than never called.

    ``write_<field>`` and ``validate_<field>`` of a read-only field (devioc.E011), and
    ``blocking=True`` with ``read_only=True`` (devioc.E026): a read-only record takes no client
    put, so these would never run.
    """
    from .checks import CheckMessage

    messages = []
    for attname, record in model_class._fields.items():
        if not getattr(record, 'read_only', False):
            continue
        where = f'{model_class.__name__}.{attname}'
        if getattr(record, 'blocking', False):
            messages.append(CheckMessage('devioc.E026', f'{attname} is read_only and blocking: no client can '
                                         'write it, so no write is ever held', 'drop blocking=True or read_only',
                                         where))
        for prefix in ('write_', 'validate_'):
            if callable(getattr(callbacks, f'{prefix}{attname}', None)):
                messages.append(CheckMessage(
                    'devioc.E011', f'{prefix}{attname} would never be called: {attname} is read-only to clients',
                    f'give the field read_only=False (the *Input kinds are read-only by default), or drop '
                    f'{prefix}{attname}', where))
    return messages


def serves_acf(model: Any) -> bool:
    """True when the model's softIoc loads an access security file: a site's (``acf=``), or the one
    devioc renders (:func:`uses_access`; health records are read-only too, so they need it)."""
    return getattr(model, '_acf', None) is not None or uses_access(type(model)) or \
        getattr(model, '_health', None) is not None or bool(getattr(model, '_alarmed', None))


def guard_hidden(records: list[tuple[str, str, dict]]) -> list[tuple[str, str, dict]]:
    """The hidden records devioc adds beside fields, each in an access security group.

    A hidden record that says no group of its own goes to ``DEVIOC_RO``: the database and the app
    (through softIoc's shell) write it, no client. Left in ``DEFAULT`` it let any client reach what
    its field's rules keep from them: ``<pv>:_app`` (OUT ``"<pv> PP"``) wrote a restricted record,
    ``<pv>:_w`` and ``<pv>:_scan`` posted values the app takes for a client write or a scan. (A
    record whose ASG the loaded file does not define is in ``DEFAULT``, as before: softIoc's asLib.)

    Args:
        records: ``(record type, name, fields)`` of the hidden records.

    Returns:
        The same records, ``ASG`` set where they gave none.
    """
    return [(rtype, name, fields if fields.get('ASG') else {**fields, 'ASG': RO_GROUP})
            for rtype, name, fields in records]


def through_shell(model: Any, record: Any, field: str = 'VAL') -> bool:
    """True when the app writes this field through softIoc's shell rather than Channel Access.

    The app owns its records: its own puts must not depend on the rules it gives clients (the app's
    user is rarely among a group's writers, and a read-only field has none). So the app writes
    through the shell every read-only field, every field of a group ``Meta.access`` restricts
    (``DEFAULT`` included when it names it), every field beyond the level DEFAULT opens to everyone
    (``Meta.access_level``: the configuration fields, ASL1, unless it is 1), and with a site's file
    (``acf=``) every field beyond what that file opens to every writer (:func:`open_groups`: a
    site's DEFAULT is often written by its operators only). Other fields keep the CA put (its
    put-callback waits for asynchronous processing, which the shell's ``dbpf`` does not).

    Args:
        model: the :class:`devioc.models.Model`.
        record: the field's record kind (:class:`devioc.records.Record`).
        field: the record field written (``'PROC'`` for ``<pv>.PROC``), whose access security level
            (:attr:`devioc.dbd.FieldDef.asl`) the group's rule must reach.
    """
    if getattr(record, 'read_only', False):
        return True
    if model is None or not serves_acf(model):   # no .acf: clients write every field (the original devioc)
        return False
    fdef = dbd.fields(getattr(record, 'record', '') or '').get(field.upper())
    needed = fdef.asl if fdef is not None else 1
    asg = _expanded_asg(record.fields.get('ASG'), getattr(model, '_macros', None)) or DEFAULT_GROUP
    site = getattr(model, '_acf', None)
    if site is not None:   # what the site opens to every client is CA; the rest the shell
        opened = getattr(model, '_acf_open', None)
        if opened is None:
            try:
                opened = open_groups(site)
            except OSError:
                opened = {}
            model._acf_open = opened
        return opened.get(asg, -1) < needed
    rules = meta_access(type(model))
    if rules is not None and asg in groups(rules):
        return True
    return needed > access_level(type(model))


def _expanded_asg(asg: Any, macros: Any) -> Any:
    """An ASG with its macros expanded (``ASG='$(group)'``); as given when it has none or cannot be."""
    if not isinstance(asg, str) or '$' not in asg or not macros:
        return asg
    from .macros import UndefinedMacro, expand

    try:
        return expand(asg, macros)
    except UndefinedMacro:
        return asg   # devioc.E016 names it


def check_access(model_class: type, acf_groups: set[str] | None = None, macros: dict[str, str] | None = None,
                 macro_asgs_only: bool = False, alarmed: set[str] = frozenset()) -> list['CheckMessage']:
    """Check ``Meta.access`` and every field's ASG against the groups some rule defines.

    Args:
        model_class: the model class.
        acf_groups: the groups a site's .acf defines (``Model(acf=...)``); None when devioc renders
            the file from ``Meta.access``.
        macros: the macros of a device (``device`` included): an ASG that holds a macro is checked as
            it expands; without them such an ASG is not checked (the class alone cannot say).
        macro_asgs_only: check only the ASGs that hold a macro (the rest were checked with the class).
        alarmed: fields with a hidden alarm record besides the ``alarm=True`` ones (a running
            model's validated fields: :func:`devioc.alarms.alarmed_fields`).

    Returns:
        devioc.E027 errors: a malformed ``Meta.access``, an ASG that no rule defines (when
        ``Meta.access`` or a site file is given), a read-only field the site file cannot protect;
        devioc.W004 warnings: an ASG with neither (softIoc puts such a record in DEFAULT: everyone
        writes; a warning, not an error, so the original devioc's models keep running).
    """
    from .checks import CheckMessage

    messages: list[CheckMessage] = []
    name = model_class.__name__
    access = meta_access(model_class)
    if acf_groups is None and not macro_asgs_only:
        messages.extend(_check_level(model_class))
        messages.extend(_check_open_links(model_class, access))
    if access is not None and acf_groups is None and not macro_asgs_only:
        messages.extend(_check_meta(access, f'{name}.Meta.access'))
    if acf_groups is not None:
        defined, where_defined = set(acf_groups), 'the access security file given as acf='
    elif access is not None:
        defined, where_defined = set(groups(access)) | {DEFAULT_GROUP, RO_GROUP}, f'{name}.Meta.access'
    else:
        defined, where_defined = None, ''
    if acf_groups is not None and DEFAULT_GROUP not in acf_groups and not macro_asgs_only:
        messages.append(CheckMessage(
            'devioc.E027', 'the access security file given as acf= defines no ASG(DEFAULT): softIoc then gives '
            'every record without an ASG no access at all, not even reading (the app\'s own monitors get no value)',
            'add "ASG(DEFAULT) { RULE(1, READ) }" (and a RULE(1, WRITE) for whoever may write) to that file', name))
    for attname, record in model_class._fields.items():
        where = f'{name}.{attname}'
        asg = record.fields.get('ASG')
        holds_macro = isinstance(asg, str) and '$' in asg
        if macro_asgs_only and (not holds_macro or getattr(record, 'read_only', False)):
            continue
        label = repr(asg)
        if holds_macro:
            asg = _expanded_asg(asg, macros)
            label = f'{label} (that is {asg!r})'
        if (getattr(record, 'alarm', False) or attname in alarmed) and not getattr(record, 'read_only', False) \
                and acf_groups is not None and RO_GROUP not in acf_groups and not macro_asgs_only:
            messages.append(CheckMessage(
                'devioc.E027', f'the field has a hidden alarm record <pv>:alarm (alarm=True, or validate_{attname}), '
                f'which is read-only, but the access security file given as acf= defines no ASG({RO_GROUP}): softIoc '
                'would put that record in DEFAULT, and a client could set its alarm limits or INP',
                f'add the line "ASG({RO_GROUP}) {{ RULE(1, READ) }}" to that file', where))
        if getattr(record, 'read_only', False):
            if acf_groups is not None and RO_GROUP not in acf_groups:
                messages.append(CheckMessage(
                    'devioc.E027', f'the field is read-only but the access security file given as acf= defines no '
                    f'ASG({RO_GROUP}): softIoc would put the record in DEFAULT', f'add the line '
                    f'"ASG({RO_GROUP}) {{ RULE(1, READ) }}" to that file, or give the field read_only=False', where))
            continue
        if asg in (None, '', DEFAULT_GROUP) or (isinstance(asg, str) and '$' in asg):
            continue
        if defined is None:
            messages.append(CheckMessage(
                'devioc.W004', f'ASG={label} is defined by no access rule: softIoc puts the record in DEFAULT, where '
                'every Channel Access client may write it', f"declare it: class Meta: access = {{{asg!r}: {{'users': "
                f"[...], 'hosts': [...]}}}} ({{}}: nobody writes), give acf='site.acf', or use read_only=True", where))
        elif asg not in defined:
            messages.append(CheckMessage(
                'devioc.E027', f'ASG={label} is defined by no rule of {where_defined}: softIoc would put the record '
                'in DEFAULT, where every client may write it',
                f'define ASG({asg}) there, or use one of {sorted(defined - {RO_GROUP})}', where))
    return messages


_LEVEL_HINT = ('give 0 (clients write values: VAL and the other ASL0 fields) or 1 (also the configuration: SCAN, '
               'PROC, alarm limits, links and the other ASL1 fields)')


def _check_level(model_class: type) -> list['CheckMessage']:
    from .checks import CheckMessage

    meta = getattr(model_class, 'Meta', None)
    if meta is None or not hasattr(meta, 'access_level') or _is_level(meta.access_level):
        return []
    return [CheckMessage('devioc.E027', f'Meta.access_level = {meta.access_level!r} is no access security level',
                         _LEVEL_HINT, f'{model_class.__name__}.Meta.access_level')]


def _check_open_links(model_class: type, access: Any) -> list['CheckMessage']:
    """devioc.W005 for the file devioc renders: ``Meta.access_level = 1`` lets every client write the
    links of DEFAULT's records while the model has read-only records (the health records count
    unless ``Meta.health`` is False), so a rewired OUT writes them (:func:`check_site_level` for a
    site's file)."""
    from .checks import CheckMessage
    from .health import enabled

    if access_level(model_class) != 1 or (isinstance(access, dict) and DEFAULT_GROUP in access):
        return []
    read_only = [att for att, record in model_class._fields.items() if getattr(record, 'read_only', False)]
    try:
        health = enabled(model_class, None)
    except TypeError:   # a bad Meta.health: its own error says so when the model starts
        health = True
    if not read_only and not health:
        return []
    what = ', '.join(read_only[:3]) + (', ...' if len(read_only) > 3 else '') if read_only else 'the health records'
    return [CheckMessage(
        'devioc.W005', f'Meta.access_level = 1 lets every client write level-1 fields (links: OUT, FLNK, ...) of the '
        f'fields without ASG: such a client can point a link at a read-only record ({what}) and write it through '
        'the database', "keep access_level 0 and give a trusted group 'level': 1 in Meta.access, or accept it",
        f'{model_class.__name__}.Meta.access_level')]


def _check_meta(access: Any, where: str) -> list['CheckMessage']:
    from .checks import CheckMessage

    example = "access = {'OPS': {'users': ['ops'], 'hosts': ['console1']}}"
    if not isinstance(access, dict):
        return [CheckMessage('devioc.E027', f'Meta.access must be a dict of groups, not {type(access).__name__}',
                             example, where)]
    messages = []
    for group, rule in access.items():
        if not isinstance(group, str) or not _GROUP_NAME.match(group) or group == RO_GROUP:
            messages.append(CheckMessage('devioc.E027', f'group name {group!r} cannot be used', 'use letters, digits '
                                         f'and _ (not {RO_GROUP}, which devioc keeps for read-only fields)', where))
            continue
        if not isinstance(rule, dict):
            messages.append(CheckMessage('devioc.E027', f'group {group!r}: {rule!r} is not a dict', example, where))
            continue
        unknown = sorted(set(rule) - {'users', 'hosts', 'level'})
        if unknown:
            messages.append(CheckMessage('devioc.E027', f'group {group!r}: unknown key(s) {unknown}',
                                         "give 'users' and/or 'hosts', and 'level' if needed", where))
        if 'level' in rule and not _is_level(rule['level']):
            messages.append(CheckMessage('devioc.E027', f"group {group!r}: 'level' {rule['level']!r} is no access "
                                         'security level', _LEVEL_HINT, where))
        for key in ('users', 'hosts'):
            names = rule.get(key)
            if names is None:
                continue
            if isinstance(names, (str, bytes)) or not isinstance(names, (list, tuple)):
                messages.append(CheckMessage('devioc.E027', f'group {group!r}: {key} must be a list of names, not '
                                             f'{names!r}', f"e.g. '{key}': [{names!r}]", where))
                continue
            for item in names:
                if not isinstance(item, str) or not item or _BAD_NAME.search(item):
                    messages.append(CheckMessage('devioc.E027', f'group {group!r}: {key} entry {item!r} cannot be '
                                                 'written in an access security file', 'a non-empty name without '
                                                 'quotes, backslashes or line breaks', where))
    return messages


def site_groups(path: str | os.PathLike) -> set[str]:
    """The ASG names a site's access security file defines.

    Raises:
        OSError: the file cannot be read (the caller says which model needed it).
    """
    text = Path(path).read_text(encoding='utf-8', errors='replace')
    # asLib's lexer: '#' starts a comment to the end of the line; a quoted string is one token (an
    # ASG named in a comment or inside a user's name is no group: softIoc would put its records in DEFAULT)
    return {found.group(2) for found in _ACF_TOKENS.finditer(text) if found.group(2)}


def open_groups(path: str | os.PathLike) -> dict[str, int]:
    """The ASGs of a site's access security file that every client may write, with the highest
    level it may write: an unconditional ``RULE(1, WRITE)`` or ``RULE(0, WRITE)`` (no UAG, HAG or
    CALC block). The app writes the fields beyond it, and every field of every other group,
    through softIoc's shell, as its own user is not known to be among their writers.

    Returns:
        ``{group: 0 or 1}``.

    Raises:
        OSError: the file cannot be read.
    """
    opened: dict[str, int] = {}
    for group, body in _group_bodies(path):
        levels = [int(rule.group(1)) for rule in _OPEN_WRITE.finditer(body)]
        if levels:
            opened[group] = max(levels)
    return opened


def _group_bodies(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``(ASG name, text between its braces)`` of each group of an .acf, comments blanked and
    quoted strings emptied first (asLib's lexer: a ``{`` in either is no brace).

    Raises:
        OSError: the file cannot be read.
    """
    text = _ACF_NOISE.sub(lambda found: '""' if found.group().startswith('"') else ' ',
                          Path(path).read_text(encoding='utf-8', errors='replace'))
    bodies = []
    for head in _ACF_BLOCK.finditer(text):
        depth, end = 1, head.end()
        while end < len(text) and depth:
            depth += {'{': 1, '}': -1}.get(text[end], 0)
            end += 1
        bodies.append((head.group(1), text[head.end():end - 1]))
    return bodies


def check_site_level(model_class: type, path: str | os.PathLike, health: bool = True,
                     macros: dict[str, str] | None = None) -> list['CheckMessage']:
    """devioc.W005: a site's file lets clients write the configuration (ASL1: links) of a group holding
    fields of the model, while the model has read-only records.

    Access security guards client puts, not database links: whoever may write a writable record's OUT
    or FLNK can point it at a read-only record and write that through the database (what devioc's own
    file prevents with ``RULE(0, WRITE)``). A warning, as the site may mean it (its writers are trusted).

    Args:
        model_class: the model class.
        path: the site's access security file (``Model(acf=...)``).
        health: the model serves the health records (read-only too).
        macros: the device's macros, for an ASG that holds one.

    Raises:
        OSError: the file cannot be read.
    """
    from .checks import CheckMessage

    fields = model_class._fields.values()
    if not health and not any(getattr(record, 'read_only', False) for record in fields):
        return []
    used = {_expanded_asg(record.fields.get('ASG'), macros) or DEFAULT_GROUP
            for record in fields if not getattr(record, 'read_only', False)} | {DEFAULT_GROUP}
    open1 = [group for group, body in _group_bodies(path) if group in used and _LEVEL1_WRITE.search(body)]
    if not open1:
        return []
    return [CheckMessage(
        'devioc.W005', f'the access security file given as acf= lets clients write level-1 fields (links: OUT, FLNK, '
        f'...) of ASG {", ".join(sorted(open1))}: such a client can point a link at a read-only record and write it '
        'through the database', 'give those groups RULE(0, WRITE) (values only), or keep their writers to people '
        'trusted with the read-only records too', model_class.__name__)]


def render_acf(model_class: type, device: str) -> str:
    """The .acf text for a model: DEFAULT, DEVIOC_RO and one group per ``Meta.access`` entry.

    A group's writers: its ``users`` (if given) on its ``hosts`` (if given), up to its ``level``;
    nobody when it gives neither list, or an empty one. ``DEFAULT`` (fields without ASG) is written
    by everyone, up to ``Meta.access_level``, unless ``Meta.access`` names it.
    """
    from .render import environment

    level = access_level(model_class)
    rules = groups(meta_access(model_class), level)
    default = rules.pop(DEFAULT_GROUP, None)
    items = [_group(DEFAULT_GROUP, default, level),
             {'name': RO_GROUP, 'users': [], 'hosts': [], 'write': 'none', 'level': 0}]
    items += [_group(name, rule, level) for name, rule in sorted(rules.items())]
    return environment().get_template('model.acf.j2').render(
        model=model_class.__name__, device=device, ro_group=RO_GROUP, groups=items)


def _group(name: str, rule: dict[str, Any] | None, level: int) -> dict[str, Any]:
    if rule is None:
        return {'name': name, 'users': [], 'hosts': [], 'write': 'all', 'level': level}
    users, hosts = rule.get('users'), rule.get('hosts')
    nobody = (users is None and hosts is None) or users == [] or hosts == []
    return {'name': name, 'users': [f'"{u}"' for u in users or []], 'hosts': [f'"{h}"' for h in hosts or []],
            'write': 'none' if nobody else 'rule', 'level': rule.get('level', level)}


# -- the app's own writes to read-only records, through the IOC shell

def _quote(text: str) -> str:
    """``text`` as one iocsh argument: single quotes keep everything literal, ``$(..)`` included."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _number(value: Any, name: str) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    number = float(value)
    if math.isnan(number):
        return 'nan'
    if math.isinf(number):
        return 'inf' if number > 0 else '-inf'
    if number != 0.0 and abs(number) < _SMALLEST_NORMAL:
        raise ValueError(f'cannot put {value!r} to {name}: the IOC shell that writes read-only fields cannot parse '
                         'subnormal numbers (below 2.2250738585072014e-308); put 0.0')
    return repr(number)


def _json_number(value: Any, name: str) -> str:
    text = _number(value, name)
    return {'nan': 'NaN', 'inf': 'Infinity', '-inf': '-Infinity'}.get(text, text)


def shell_line(pv: Any, value: Any, target: str | None = None) -> bytes:
    """The ``dbpf`` line that writes ``value`` to a read-only record, as iocsh reads it.

    The value is converted by the record kind first (:meth:`devioc.records.Record.to_ca`), so what
    an app may put is what a CA put takes. Every argument is single-quoted (iocsh splits on commas
    and expands ``$(...)`` elsewhere); numbers go as ``repr``, so a double round-trips exactly;
    enum states by name (by index when the name is empty or shared); numeric and string arrays as
    the JSON array dbpf parses (EPICS 7 dbpf); strings and long strings as text.

    Args:
        pv: the field's :class:`devioc.channels.PV`.
        value: the value, as ``PV.put`` takes it.
        target: the record to write instead of ``pv``'s own: the app's twin ``<pv>:_app`` of a
            field with ``write_<field>`` (:mod:`devioc.writes`), which holds the same states.

    Raises:
        ValueError: the record cannot hold ``value``, or the IOC shell cannot carry it (a line
            break in a string, a subnormal float).
    """
    name = target or pv.name
    if type(value) is float and pv.ftype == _DOUBLE and pv.nelm == 1 and value == value \
            and (value == 0.0 or _SMALLEST_NORMAL <= abs(value) < math.inf):  # the publish fast path
        return f"dbpf {_quote(name)} '{value!r}' >/dev/null\n".encode()
    held = pv.record.to_ca(value, name, pv.enum_strs)
    if pv.is_string:
        text = held.decode('utf-8', 'surrogateescape') if isinstance(held, bytes) else str(held)
        if '\n' in text or '\r' in text:
            raise ValueError(f'cannot put that string to {name}: a read-only field is written through the IOC shell, '
                             'one line per value, so it cannot hold a line break (CR or LF)')
        arg = _quote(text)
    elif pv.record.value_kind == 'enum':
        index = int(held)
        choices = list(pv.enum_strs)
        label = choices[index] if index < len(choices) else ''
        named = max((i + 1 for i, c in enumerate(choices) if c), default=0)  # the IOC's number of states
        binary = pv.record.record in ('bo', 'bi')
        if binary:  # boRecord/biRecord get_enum_strs: 2 states, but 1 when only ZNAM is named
            named = 1 if (choices[:1] or [''])[0] and not (choices[1:2] or [''])[0] else 2
        if label and choices.count(label) == 1:
            arg = _quote(label)
        elif binary and index == 1 and named == 1:
            arg = "''"  # bo/bi put_enum_str: an empty ONAM matches the empty string (a Toggle's default)
        elif index >= named:  # dbPut's string-to-enum takes an index below it only (Illegal choice)
            raise ValueError(f'cannot put state {index} to {name}: a read-only field is written through the IOC '
                             'shell, which takes states by name, or by index up to the last named state; '
                             f'name state {index}')
        elif str(index) not in choices:
            arg = str(index)
        else:
            raise ValueError(f'cannot put state {index} to {name}: its name is empty or shared and another state '
                             f'is named {str(index)!r}, so the IOC shell cannot tell them apart; rename the states')
    elif pv.is_array and pv.nelm > 1:
        if isinstance(held, list):  # FTVL STRING: bytes each
            items = [item.decode('utf-8', 'surrogateescape') for item in held]
            if any('\n' in item or '\r' in item for item in items):
                raise ValueError(f'cannot put that array to {name}: a read-only field is written through the IOC '
                                 'shell, so its strings cannot hold a line break')
            text = json.dumps(items, ensure_ascii=True)
        else:
            text = '[' + ','.join(_json_number(item, name) for item in np.asarray(held).tolist()) + ']'
        arg = _quote(text.replace("'", '\\u0027'))
    else:
        if isinstance(held, (list, np.ndarray)):
            held = np.asarray(held).reshape(-1)
            if held.size != 1:
                raise ValueError(f'cannot put {value!r} to {name}: it holds one element')
            held = held.tolist()[0]
        arg = _quote(_number(held, name))
    return f'dbpf {_quote(name)} {arg} >/dev/null\n'.encode('utf-8', 'surrogateescape')


def _in_ca_context(callback: Callable[[bool], None]) -> Callable[[bool], None]:
    """``callback`` made to run with the process's CA context attached (the reader thread has none:
    a CA read-back made there without it would sit in a new, empty context for ever)."""
    from . import ca

    def attached(ok: bool) -> None:
        ca.attach()
        callback(ok)

    return attached


def field_shell_line(channel: Any, value: Any) -> bytes:
    """The ``dbpf`` line that writes one field (``ioc.<field>.field('HIHI').put``) of a record the app
    writes through the shell (:func:`through_shell`): the record's ASG refuses every CA put, the
    app's own to its HIHI or EGU included.

    Args:
        channel: the :class:`devioc.field_access.FieldChannel`.
        value: the value, as ``FieldChannel.put`` takes it (checked by the field's type first).

    Raises:
        ValueError: the field cannot hold ``value``, or the IOC shell cannot carry it (a line break).
    """
    held = channel._to_ca(value)
    fdef = channel.fdef
    if isinstance(held, bytes):   # DBF_STRING and links (the ``$`` name: written whole as text)
        text = held.decode('utf-8', 'surrogateescape')
        if '\n' in text or '\r' in text:
            raise ValueError(f'cannot put that text to {channel.name}: the record is written through the IOC '
                             'shell, one line per value, so it cannot hold a line break (CR or LF)')
        arg = _quote(text)
    elif fdef.menu and isinstance(held, int) and 0 <= held < len(fdef.menu):
        arg = _quote(fdef.menu[held])   # a menu's choice by name, as dbpf takes it
    elif isinstance(held, (list, tuple, np.ndarray)):
        arg = _quote('[' + ','.join(_json_number(item, channel.name)
                                    for item in np.asarray(held).reshape(-1).tolist()) + ']')
    else:
        arg = _quote(_number(held, channel.name))
    return f'dbpf {_quote(channel.name)} {arg} >/dev/null\n'.encode('utf-8', 'surrogateescape')


def shell_put(pv: Any, value: Any, wait: bool, timeout: float,
              on_done: Callable[[bool], None] | None = None, *, process: Any = None,
              line: bytes | None = None) -> bool:
    """Write ``value`` to the read-only record of ``pv`` through softIoc's shell (any thread).

    Args:
        pv: the field's :class:`devioc.channels.PV`.
        value: the value, as for ``PV.put``.
        wait: block until softIoc has processed the record and the CA read-back holds the value.
        timeout: seconds to wait (with ``wait``).
        on_done: instead of blocking, called (on a reader thread) with True once softIoc has
            processed the record, False if the IOC went away.
        process: the model's :class:`devioc.softioc.IOCProcess` (``pv.model``'s by default).
        line: the shell line to send (:func:`shell_line` of ``value`` by default).

    Returns:
        True once sent (no ``wait``) or processed; False, with an error logged, at the timeout.

    Raises:
        ValueError: the record cannot hold ``value`` (:func:`shell_line`).
        RuntimeError: the IOC is not running.
    """
    import logging

    if process is None:
        process = getattr(pv.model, '_process', None)
    if process is None or pv._chid is None:
        raise RuntimeError(f'{pv.name} is closed: the model has been shut down')
    if line is None:   # write_<field>: to the app's twin, so that the detector sees no client write
        line = shell_line(pv, value, pv._writes.twin.name if getattr(pv, '_writes', None) is not None else None)
    if on_done is not None:
        process.command(line, _in_ca_context(on_done))
        return True
    if not wait:
        process.command(line)
        return True
    done = threading.Event()
    outcome: list[bool] = []

    @_in_ca_context
    def processed(ok: bool) -> None:
        outcome.append(ok)
        if ok:
            pv._read_back(done.set)
        else:
            done.set()

    process.command(line, processed)
    if not done.wait(timeout) or not outcome[0]:
        why = 'the IOC exited' if process.exited.is_set() else f'it was not completed within {timeout:.1f} s'
        logging.getLogger('devioc.channels').error('put of %r to %s failed: %s', value, pv.name, why)
        return False
    if _put_disabled(pv.name, min(timeout, 5.0)):
        logging.getLogger('devioc.channels').error(
            'put of %r to %s failed: the record has DISP=1, so softIoc refuses puts to its fields (put DISP 0 '
            'first)', value, pv.name)
        return False
    return True


def _put_disabled(name: str, timeout: float) -> bool:
    """True when the record of PV ``name`` has DISP=1: ``dbpf``, like a CA put, is then refused by
    dbPutField (EPICS base dbAccess.c), but says so only by printing the old value, so a waited
    shell put reads DISP to report it as a CA put-callback would."""
    record, _, field = name.partition('.')
    if field.rstrip('$').upper() == 'DISP':
        return False
    import epics

    return epics.caget(f'{record}.DISP', timeout=timeout) == 1
