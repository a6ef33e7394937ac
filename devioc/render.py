"""Render a model class into the EPICS database (.db) and startup script (.cmd) softIoc loads.

Macros are expanded here, in Python, so the checks see the final names and values and the files
are complete on their own. Output is stable: the same model, device and macros give the same bytes.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import checks, dbd
from .dbd import dbstring  # noqa: F401  (re-exported)

TEMPLATES = Path(__file__).with_name('templates')
logger = logging.getLogger('devioc.checks')


def dbvalue(value: Any, field: dbd.FieldDef | None = None) -> str:
    """A field value as .db text, by the field's .dbd rule (:meth:`devioc.dbd.FieldDef.db_text`).

    Without a field definition: JSON for link objects and arrays, else a quoted string.

    Raises:
        devioc.dbd.FieldError: the field cannot hold the value (the checks report it first).
    """
    if field is not None:
        return field.db_text(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, separators=(',', ':'), ensure_ascii=False)
    if isinstance(value, bool):
        value = int(value)
    elif isinstance(value, float):
        value = repr(value)
    return f'"{dbstring(value)}"'


@lru_cache(maxsize=1)
def environment():
    """The Jinja2 environment for devioc's templates (built on first use)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters['dbstring'] = dbstring
    return env


def _version() -> str:
    from . import __version__
    return __version__


def expand_model(model_class: type, device: str, macros: Mapping[str, str] | None = None,
                 ignore: tuple[str, ...] = ()) -> dict:
    """``{attname: (pv_name, fields)}`` for a device, or ModelError listing every problem.

    The warnings (``devioc.W0xx``) are logged on the ``devioc.checks`` logger (on stderr when
    logging is not configured, as in ``devioc check``), but those whose id is in ``ignore``.
    """
    records, messages = checks.expanded(model_class, device, dict(macros or {}))
    checks.raise_if(messages)
    for message in [m for m in checks.warnings_of(messages) if m.id not in ignore]:
        logger.warning('%s', message)
    return records


def render_db(model_class: type, device: str, macros: Mapping[str, str] | None = None,
              records: Mapping[str, tuple[str, dict]] | None = None,
              extra: Iterable[tuple[str, str, dict]] = (), alarmed: set[str] | None = None) -> str:
    """The .db text of ``model_class`` for ``device``.

    Args:
        extra: more records, ``(record type, name, fields)``, after the model's own (the hidden scan
            counters of :mod:`devioc.app`, the twins and detectors of :mod:`devioc.writes`).
        alarmed: the fields that get a hidden alarm record (:func:`devioc.alarms.alarmed_fields`: a
            running model's validated fields too); None: those declared ``alarm=True``.
    """
    if records is None:
        records = expand_model(model_class, device, macros)
    items = []  # escaped here, by the same .dbd rules the checks apply: the template only lays the text out
    from .alarms import hidden_records  # alarms (issue 14 §3): hidden records first, processed (PINI) first
    for rtype, name, fields in hidden_records(model_class, records, alarmed):
        defs = dbd.fields(rtype)
        items.append((rtype, dbstring(name), [(key, dbvalue(value, defs.get(key))) for key, value in fields.items()]))
    for att, (name, fields) in records.items():
        rtype = model_class._fields[att].record
        defs = dbd.fields(rtype)
        items.append((rtype, dbstring(name), [(key, dbvalue(value, defs.get(key))) for key, value in fields.items()]))
    for rtype, name, fields in extra:   # hidden records
        defs = dbd.fields(rtype)
        items.append((rtype, dbstring(name), [(key, dbvalue(value, defs.get(key))) for key, value in fields.items()]))
    return environment().get_template('model.db.j2').render(
        model=model_class.__name__, device=device, version=_version(), records=items,
    )


def render_cmd(model_class: type, device: str, macros: Mapping[str, str] | None = None,
               db_filename: str | None = None, env: Mapping[str, str] | None = None,
               acf_filename: str | None = None) -> str:
    """The .cmd text that loads ``db_filename`` (default ``<Model>.db``) and starts the IOC.

    ``acf_filename``: the access security file it loads before iocInit (``asSetFilename``), if any.
    """
    return environment().get_template('model.cmd.j2').render(
        model=model_class.__name__, device=device, version=_version(),
        db_file=db_filename or f'{model_class.__name__}.db', env=sorted((env or {}).items()),
        acf_file=acf_filename or '',
    )


def render_acf(model_class: type, device: str) -> str:
    """The .acf text of ``model_class`` (:func:`devioc.access.render_acf`)."""
    from .access import render_acf as render

    return render(model_class, device)
