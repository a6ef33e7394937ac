"""The ``devioc`` command line: scaffold a project and work with a model without running it.

``devioc startproject NAME [DIR]`` (also ``devioc-startproject NAME``, the original's command)
renders ``project_template/``; ``devioc run MODULE:App --device X`` runs an app (:mod:`devioc.runner`);
``devioc render``, ``devioc list-pvs`` and ``devioc check`` take a model as ``MODULE:Class`` plus
``--device`` and ``--macro KEY=VALUE``.

Exit status: 0 success, 1 a failure reported by devioc (model errors, import errors, a refused
target directory), 2 bad usage (unknown option, malformed argument).
"""
from __future__ import annotations

import importlib
import importlib.util
import keyword
import os
import re
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

TEMPLATE_SUFFIXES = ('-tpl', '.j2')  # 'ioc.py-tpl' -> 'ioc.py', 'README.md.j2' -> 'README.md'
SKIPPED_NAMES = {'__pycache__', '.DS_Store'}
SKIPPED_SUFFIXES = ('.pyc', '.pyo')
MACRO_KEY = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


class DeviocError(click.ClickException):
    """A failure devioc reports to the user (exit status 1), with what to do about it."""

    exit_code = 1


# -- macros -------------------------------------------------------------------------------------

class MacroType(click.ParamType):
    """A ``KEY=VALUE`` macro definition; converts to a ``(key, value)`` pair."""

    name = 'KEY=VALUE'

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[str, str]:
        if isinstance(value, tuple):
            return value
        key, sep, val = str(value).partition('=')
        key = key.strip()
        if not sep:
            self.fail(f'{value!r} has no "=": write macros as KEY=VALUE, e.g. --macro location=hutch', param, ctx)
        if not MACRO_KEY.match(key):
            self.fail(f'{key!r} is not a macro name: use letters, digits and underscores, not starting with '
                      'a digit', param, ctx)
        return key, val


MACRO = MacroType()


def macros_dict(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``--macro`` pairs as a dict (a later definition of a key wins)."""
    return {key: value for key, value in pairs}


# -- startproject ---------------------------------------------------------------------------------

def template_root() -> Path:
    """The project template tree: the installed ``devioc.project_template`` package, else the checkout's."""
    try:
        from importlib.resources import files
        root = files('devioc.project_template')
        path = Path(str(root))
        if path.is_dir():
            return path
    except (ImportError, ModuleNotFoundError, TypeError):
        pass
    path = Path(__file__).resolve().parent.parent / 'project_template'
    if path.is_dir():
        return path
    raise DeviocError('the project template is missing from this devioc installation; reinstall devioc')


def check_project_name(name: str) -> str:
    """Return ``name`` if it can be a project (and Python package) name, else raise BadParameter saying why."""
    if not name:
        raise click.BadParameter('the project name is empty')
    if not name.isidentifier():
        if name[0].isdigit():
            reason = 'it begins with a digit; make sure the name begins with a letter or underscore'
        elif '-' in name:
            reason = f'it contains "-"; use an underscore instead, e.g. {name.replace("-", "_")!r}'
        else:
            reason = 'use only letters, digits and underscores, beginning with a letter'
        raise click.BadParameter(f'{name!r} is not a valid Python package name: {reason}')
    if not name.isascii():
        raise click.BadParameter(f'{name!r} is not a valid project name: use only ASCII letters, digits and underscores')
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise click.BadParameter(f'{name!r} is a Python keyword; choose another name')
    if name != name.lower():
        raise click.BadParameter(f'{name!r} has capital letters; Python package names are lowercase, '
                                 f'e.g. {name.lower()!r} (the model class is named for you)')
    if name in sys.builtin_module_names or name in sys.stdlib_module_names or _importable(name):
        raise click.BadParameter(f'{name!r} conflicts with the name of an existing Python module; '
                                 'choose another name')
    return name


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return True


def camel_case(name: str) -> str:
    """'my_ioc' -> 'MyIoc' (the model class name; the app is '<that>App')."""
    parts = [p for p in name.split('_') if p]
    return ''.join(p[:1].upper() + p[1:] for p in parts) or 'Model'


def _devioc_requirement() -> str:
    try:
        from importlib.metadata import version
        return f'devioc>={version("devioc")}'
    except Exception:
        return 'devioc'


def project_context(name: str) -> dict[str, str]:
    """The template variables for project ``name``."""
    model = camel_case(name)
    return {
        'project_name': name,
        'model_name': model,
        'app_name': f'{model}App',
        'device_example': f'{name.upper().replace("_", "")}-001',
        'devioc_requirement': _devioc_requirement(),
        'service_user': name,
        'app_path': f'/opt/{name}/venv/bin/{name}-server',
    }


def render_tree(source: Path, context: dict[str, str], subdir: str = '') -> dict[str, tuple[str, bool]]:
    """Render the template tree (or one subdirectory of it) in memory: ``{relative path: (text, executable)}``."""
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    base = source / subdir if subdir else source
    out: dict[str, tuple[str, bool]] = {}
    for path in sorted(base.rglob('*')):
        rel = path.relative_to(source)
        if path.is_dir() or any(part in SKIPPED_NAMES for part in rel.parts) or path.name.endswith(SKIPPED_SUFFIXES):
            continue
        if rel.as_posix() == '__init__.py':    # marks the template package, not part of a project
            continue
        target = env.from_string(rel.relative_to(subdir).as_posix() if subdir else rel.as_posix()).render(context)
        text = path.read_text(encoding='utf-8')
        for suffix in TEMPLATE_SUFFIXES:
            if target.endswith(suffix):
                target = target[: -len(suffix)]
                text = env.from_string(text).render(context)
                break
        out[target] = (text, text.startswith('#!'))
    return out


def generic_deploy_context() -> dict[str, str]:
    """The context that renders the top-level ``deploy/`` files: one unit for any devioc app."""
    return {**project_context('devioc'), 'device_example': 'MYIOC-001', 'app_path': '/opt/myioc/venv/bin/myioc-server'}


def write_generic_deploy(directory: str | os.PathLike) -> list[Path]:
    """Regenerate the repository's ``deploy/`` files from ``project_template/deploy``."""
    written = []
    for rel, (text, executable) in render_tree(template_root(), generic_deploy_context(), 'deploy').items():
        path = Path(directory) / rel
        path.write_text(text, encoding='utf-8')
        path.chmod(0o755 if executable else 0o644)
        written.append(path)
    return written


def start_project(name: str, directory: str | os.PathLike | None = None) -> Path:
    """Create project ``name`` in ``directory`` (default ``./name``); never writes into a non-empty directory."""
    check_project_name(name)
    target = Path(directory) if directory is not None else Path.cwd() / name
    if target.exists() and not target.is_dir():
        raise DeviocError(f'{target} exists and is not a directory; choose another place for the project')
    if target.is_dir() and any(target.iterdir()):
        raise DeviocError(f'{target} already exists and is not empty; devioc never overwrites files. '
                          'Choose another name or directory, or remove it first')
    files = render_tree(template_root(), project_context(name))
    try:
        target.mkdir(parents=True, exist_ok=True)
        for rel, (text, executable) in files.items():
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding='utf-8')
            if executable:
                path.chmod(0o755)
    except OSError as err:
        raise DeviocError(f'cannot write the project into {target}: {_os_reason(err)}. '
                          'Choose a directory this user can write') from None
    return target


def _os_reason(err: OSError) -> str:
    """'Permission denied (/path)': an OSError without its '[Errno N]' prefix."""
    reason = err.strerror or str(err)
    return f'{reason} ({err.filename})' if err.filename else reason


# -- models -----------------------------------------------------------------------------------------

def load_model(spec: str) -> type:
    """Import ``MODULE:Class`` (the current directory is searched first) and return the model class."""
    from .checks import ModelError
    from .models import Model

    module_name, sep, attr = spec.partition(':')
    if not sep or not module_name or not attr:
        raise click.BadParameter(f'{spec!r} is not MODULE:Class, e.g. myioc.ioc:Myioc', param_hint='MODEL')
    if os.getcwd() not in sys.path and '' not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModelError:
        raise
    except ImportError as err:
        raise DeviocError(f'cannot import {module_name!r}: {err}. Run from the project directory or '
                          'install the project (pip install -e .)') from err
    except Exception as err:
        raise DeviocError(f'importing {module_name!r} failed: {type(err).__name__}: {err}') from err
    obj = module
    for part in attr.split('.'):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise DeviocError(f'{module_name!r} has no {attr!r}') from None
    if not (isinstance(obj, type) and issubclass(obj, Model)):
        raise DeviocError(f'{spec} is not a devioc model class (a subclass of devioc.models.Model)')
    return obj


class ModelProblems(DeviocError):
    """The model has errors; the message lists every check message with its id and hint."""

    def __init__(self, spec: str, error: Any):
        super().__init__(f'{spec} has {len(error.messages)} problem(s):\n{error}')


def _model_options(func):
    func = click.option('-m', '--macro', 'macros', type=MACRO, multiple=True, metavar='KEY=VALUE',
                        help='A macro for the fields ($(KEY) or ${KEY}); repeat for more.')(func)
    func = click.option('-d', '--device', required=True, help='The device name (PV prefix), e.g. MYIOC-001.')(func)
    return click.argument('model', metavar='MODULE:Class')(func)


def _with_model(spec: str):
    from .checks import ModelError
    try:
        return load_model(spec)
    except ModelError as err:
        raise ModelProblems(spec, err) from None


# -- commands ---------------------------------------------------------------------------------------

@click.group(context_settings={'help_option_names': ['-h', '--help']})
@click.version_option(package_name='devioc', message='devioc %(version)s')
def main() -> None:
    """devioc: declare an EPICS soft IOC as a Python class, run it on EPICS base's softIoc."""


@main.command('startproject', context_settings={'help_option_names': ['-h', '--help']})
@click.argument('name')
@click.argument('directory', required=False, type=click.Path(file_okay=False))
def startproject(name: str, directory: str | None) -> None:
    """Create a project NAME: app.server, the model, tests and deploy files.

    The project is written to DIRECTORY (default ./NAME), which must not exist or be empty.
    """
    try:
        target = start_project(name, directory)
    except click.BadParameter as err:
        err.param_hint = 'NAME'
        raise
    context = project_context(name)
    shown = os.path.relpath(target) if not os.path.relpath(target).startswith('..') else str(target)
    click.echo(f'devioc project {name!r} created in {shown}')
    click.echo('Next:')
    click.echo(f'  cd {shown} && pip install -e ".[test]"')
    click.echo(f'  bin/app.server --device {context["device_example"]}')
    click.echo('  pytest')


@main.command('render')
@_model_options
@click.option('-o', '--output', default='.', show_default=True, type=click.Path(file_okay=False),
              help='Directory for the .db and .cmd files (created if needed).')
def render_command(model: str, device: str, macros: tuple, output: str) -> None:
    """Write the .db and .cmd of MODULE:Class for a device, without running it (and its .acf, beside the
    .db, when the model has read-only fields, Meta.access or Meta.access_level)."""
    from . import access, render
    from .checks import ModelError

    model_class = _with_model(model)
    macro_map = macros_dict(macros)
    out = Path(output)
    db_path = out / f'{model_class.__name__}.db'
    cmd_path = out / f'{model_class.__name__}.cmd'
    try:
        db_text = render.render_db(model_class, device, macro_map)
        acf_path = out / f'{model_class.__name__}.acf' if access.uses_access(model_class) else None  # issue 14
        acf_text = render.render_acf(model_class, device) if acf_path else ''
        cmd_text = render.render_cmd(model_class, device, macro_map, db_filename=db_path.name,
                                     acf_filename=acf_path.name if acf_path else None)
    except ModelError as err:
        raise ModelProblems(model, err) from None
    try:
        out.mkdir(parents=True, exist_ok=True)
        db_path.write_text(db_text)
        cmd_path.write_text(cmd_text)
        if acf_path:
            acf_path.write_text(acf_text)
    except OSError as err:
        raise DeviocError(f'cannot write into {out}: {_os_reason(err)}. Give -o a directory this user can write') from None
    click.echo(f'wrote {db_path}')
    if acf_path:
        click.echo(f'wrote {acf_path}')
    click.echo(f'wrote {cmd_path}')
    click.echo(f'run it with: cd {shlex.quote(str(out))} && {shlex.quote(_softioc_hint())} {cmd_path.name}')


@main.command('list-pvs')
@_model_options
def list_pvs_command(model: str, device: str, macros: tuple) -> None:
    """Print the PV names MODULE:Class serves for a device, one a line."""
    from .checks import ModelError

    model_class = _with_model(model)
    try:
        names = model_class.pv_names(device, macros_dict(macros))
    except ModelError as err:
        raise ModelProblems(model, err) from None
    for name in names:
        click.echo(name)


@main.command('check')
@_model_options
@click.option('--acf', type=click.Path(exists=True, dir_okay=False),
              help="A site's access security file the model will run with (Model(acf=...)): every ASG must be "
                   'defined there.')
def check_command(model: str, device: str, macros: tuple, acf: str | None) -> None:
    """Run the model checks for MODULE:Class and a device; exit status 1 when there are errors.

    Warnings (devioc.W0xx) are printed too; they alone leave the exit status 0.
    """
    from . import access, checks, health

    model_class = _with_model(model)
    records, messages = checks.expanded(model_class, device, macros_dict(macros))
    if health.enabled(model_class, None):   # E025, as Model(...) would refuse it
        messages = messages + health.check_clashes(model_class, records, device)
    if acf:  # access (issue 14): the site's file replaces Meta.access, so its groups are what count
        messages = [m for m in messages if m.id not in ('devioc.W004', 'devioc.E027')]
        messages += access.check_access(model_class, access.site_groups(acf), {**macros_dict(macros), 'device': device})
        messages += access.check_site_level(model_class, acf, health.enabled(model_class, None),
                                            {**macros_dict(macros), 'device': device})   # W005
    try:
        checks.raise_if(messages)
    except checks.ModelError as err:
        raise ModelProblems(model, err) from None
    warnings = checks.warnings_of(messages)
    for message in warnings:
        click.echo(str(message), err=True)
    if warnings:
        click.echo(f'{model}: no errors, {len(warnings)} warning{"s" if len(warnings) > 1 else ""} '
                   f'({len(records)} records for device {device})')
    else:
        click.echo(f'{model}: no problems found ({len(records)} records for device {device})')


def _softioc_hint() -> str:
    """The softIoc to name in hints: its full path when devioc finds one, as the shell may not."""
    from .softioc import SoftIocNotFound, epics_tool
    try:
        return epics_tool('softIoc')
    except SoftIocNotFound:
        return 'softIoc'


@main.command('console')
@click.argument('instance', required=False)
@click.option('-s', '--socket', 'socket_path', type=click.Path(), default=None,
              help='The console socket itself (default: /run/<project>/<INSTANCE>/console).')
def console_command(instance: str | None, socket_path: str | None) -> None:
    """Open the IOC shell of a deployed INSTANCE (procServ's console socket).

    INSTANCE is the instance name (MYIOC-001) or the unit's (myioc@MYIOC-001). Ctrl-] leaves;
    Ctrl-X kills the app and procServ restarts it; Ctrl-T toggles procServ's auto-restart.
    The socket is mode 0660 for the service user and group: run as that user (sudo -u myioc),
    as root, or as a member of the group. From another host: ssh -t HOST devioc console INSTANCE.
    """
    from . import console

    if not instance and not socket_path:
        raise click.UsageError('give an INSTANCE (e.g. myioc@MYIOC-001) or --socket PATH')
    try:
        path = socket_path or console.find_socket(instance)
        sock = console.connect(path)
    except console.ConsoleError as err:
        raise DeviocError(str(err)) from None
    with sock:
        console.attach(sock)


@main.command('run', add_help_option=False,
              context_settings={'ignore_unknown_options': True, 'allow_extra_args': True})
@click.argument('target', required=False, metavar='MODULE:App')
@click.argument('args', nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run_command(ctx: click.Context, target: str | None, args: tuple) -> None:
    """Run an app (or a bare model) until it is stopped: MODULE:App --device NAME [options].

    MODULE:App may also be path/to/app.py:App, and name a model class (MODULE:Model). The model's
    macros become --<macro> options; "devioc run MODULE:App --help" lists them. Exit status: 0 after
    a clean stop, 1 when the IOC did not start, 2 bad usage, 128+N when the IOC died by signal N.
    """
    if target is None or target in ('-h', '--help'):
        click.echo(ctx.get_help())
        return
    from .runner import command

    command(target).main(args=list(args), prog_name=f'{ctx.find_root().info_name or "devioc"} run {target}')
# -- devioc call (devioc.rpc / devioc.client) ----------------------------------------------------
def _call_value(text: str) -> Any:
    """A command-line value: JSON when it parses (3, 1.5, true, [1, 2], "x"), else the text itself."""
    import json

    from .rpc import decode_hook
    try:
        return json.loads(text, object_hook=decode_hook)
    except ValueError:
        return text


@main.command('call', context_settings={'help_option_names': ['-h', '--help']})
@click.argument('device')
@click.argument('function', required=False)
@click.argument('arguments', nargs=-1)
@click.option('--list', 'show_list', is_flag=True, help='List the functions DEVICE serves and their signatures.')
@click.option('--timeout', type=float, default=None, help='Seconds the call may take (default: the function\'s).')
@click.option('--connect-timeout', type=float, default=5.0, show_default=True,
              help='Seconds to wait for the device\'s channels.')
def call_command(device: str, function: str | None, arguments: tuple, show_list: bool, timeout: float | None,
                 connect_timeout: float) -> None:
    """Call FUNCTION of the devioc app serving DEVICE: devioc call ROBOT-1 mount port=L3 puck=2.

    ARGUMENTS are NAME=VALUE (keyword) or VALUE (positional); a VALUE is read as JSON when it parses
    (3, 1.5, true, [1,2], "a b"), else taken as text. The result is printed as JSON; a failed call
    prints TYPE: MESSAGE on stderr and exits 1.
    """
    import json

    from .client import Client, RPCConnectionError
    from .rpc import RPCError

    args, kwargs = [], {}
    for item in arguments:
        key, sep, value = item.partition('=')
        if sep and MACRO_KEY.match(key):
            kwargs[key] = _call_value(value)
        elif kwargs:
            raise click.BadParameter(f'{item!r}: a positional value after NAME=VALUE ones', param_hint='ARGUMENTS')
        else:
            args.append(_call_value(item))
    if timeout is not None:
        kwargs['_timeout'] = timeout
    try:
        client = Client(device, timeout=connect_timeout)
    except RPCConnectionError as err:
        raise DeviocError(str(err)) from None
    if show_list or function is None:
        if not client.functions:
            click.echo(f'{device} serves no functions')
        for spec in client.functions.values():
            click.echo(spec['signature'] + (f'\n    {spec["doc"]}' if spec.get('doc') else ''))
        return
    try:
        result = client.call(function, *args, **kwargs)
    except AttributeError as err:
        raise DeviocError(str(err)) from None
    except (RPCError, TimeoutError, RPCConnectionError, ValueError) as err:
        raise DeviocError(str(err)) from None
    click.echo(json.dumps(result, default=lambda v: v.tolist() if hasattr(v, 'tolist') else str(v)))
# -- end devioc call


def startproject_main(argv: list[str] | None = None) -> None:
    """``devioc-startproject NAME``: the original devioc's command, kept for its users."""
    startproject.main(args=argv, prog_name='devioc-startproject')
