"""Count the code lines of the peer examples and of their originals, and print the README's table.

A code line is a line holding Python code: blank lines, comment-only lines and docstrings (a string
standing alone as the first statement of a module, class or function) are not counted, in either
file, so long explanations cost nothing on either side.

Usage::

    python examples/peers/count_lines.py [--originals DIR] [--here]

The originals are read from ``DIR/<repository>/<path>`` (e.g. ``DIR/pythonSoftIOC/docs/examples/
example_cothread_ioc.py``, a checkout of each repository under DIR); caproto's are read from the
installed ``caproto`` package when DIR does not hold them (``pip install caproto``; its
``ioc_examples`` ship with it). An original found nowhere is shown as "?".
"""
from __future__ import annotations

import argparse
import ast
import io
import os
import sys
import tokenize
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent


class Port(NamedTuple):
    """One example: our file, and where the original lives."""

    ours: str
    repo: str        # owner/name on GitHub
    path: str        # the original's path in that repository


PORTS = [
    Port('simple.py', 'caproto/caproto', 'caproto/ioc_examples/simple.py'),
    Port('enums.py', 'caproto/caproto', 'caproto/ioc_examples/enums.py'),
    Port('setpoint_rbv_pair.py', 'caproto/caproto', 'caproto/ioc_examples/setpoint_rbv_pair.py'),
    Port('random_walk.py', 'caproto/caproto', 'caproto/ioc_examples/random_walk.py'),
    Port('thermo_sim.py', 'caproto/caproto', 'caproto/ioc_examples/thermo_sim.py'),
    Port('decay.py', 'caproto/caproto', 'caproto/ioc_examples/decay.py'),
    Port('scan_rate.py', 'caproto/caproto', 'caproto/ioc_examples/scan_rate.py'),
    Port('custom_write.py', 'caproto/caproto', 'caproto/ioc_examples/custom_write.py'),
    Port('startup_and_shutdown_hooks.py', 'caproto/caproto', 'caproto/ioc_examples/startup_and_shutdown_hooks.py'),
    Port('worker_thread.py', 'caproto/caproto', 'caproto/ioc_examples/worker_thread.py'),
    Port('chirp.py', 'caproto/caproto', 'caproto/ioc_examples/chirp.py'),
    Port('mini_beamline.py', 'caproto/caproto', 'caproto/ioc_examples/mini_beamline.py'),
    Port('trigger_with_pc.py', 'caproto/caproto', 'caproto/ioc_examples/too_clever/trigger_with_pc.py'),
    Port('example_ioc.py', 'DiamondLightSource/pythonSoftIOC', 'docs/examples/example_cothread_ioc.py'),
    Port('example_ioc.py', 'DiamondLightSource/pythonSoftIOC', 'docs/examples/example_asyncio_ioc.py'),
    Port('records_calculate.py', 'DiamondLightSource/pythonSoftIOC', 'docs/examples/example_records_calculate.py'),
]


def _docstring_lines(tree: ast.AST) -> set[int]:
    """Line numbers taken by docstrings in ``tree``."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def code_lines(source: str) -> int:
    """The number of code lines in ``source`` (Python text): see the module docstring.

    Raises:
        SyntaxError: ``source`` is not Python.
    """
    skip = _docstring_lines(ast.parse(source))
    lines: set[int] = set()
    ignored = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
               tokenize.ENDMARKER, tokenize.ENCODING}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in ignored:
            lines.update(line for line in range(token.start[0], token.end[0] + 1) if line not in skip)
    return len(lines)


def find_original(port: Port, originals: Path | None) -> Path | None:
    """The original's file: under ``originals``, else (caproto) in the installed package, else None."""
    if originals is not None:
        candidate = originals / port.repo.split('/')[1] / port.path
        if candidate.is_file():
            return candidate
    if port.repo == 'caproto/caproto':
        try:
            import caproto
        except ImportError:
            return None
        candidate = Path(caproto.__file__).parent.parent / port.path
        if candidate.is_file():
            return candidate
    return None


def table(originals: Path | None = None, link_prefix: str = 'examples/peers/') -> str:
    """The comparison as a Markdown table: example, original (repository and path), both counts.

    Args:
        originals: where checkouts of the original repositories are (see :func:`find_original`).
        link_prefix: what goes before an example's file name in its link (``''`` beside this file).
    """
    rows = ['| example | original | original lines | devioc lines |', '| --- | --- | --- | --- |']
    for port in PORTS:
        found = find_original(port, originals)
        theirs = str(code_lines(found.read_text(encoding='utf-8'))) if found else '?'
        ours = code_lines((HERE / port.ours).read_text(encoding='utf-8'))
        rows.append(f'| [`{port.ours}`]({link_prefix}{port.ours}) | {port.repo} `{port.path}` | {theirs} | {ours} |')
    return '\n'.join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--originals', type=Path, default=None,
                        help='a directory holding a checkout of each original repository, by name')
    parser.add_argument('--here', action='store_true', help="links relative to examples/peers/ (its README)")
    args = parser.parse_args(argv)
    if args.originals is not None and not args.originals.is_dir():
        parser.error(f'--originals {args.originals}: no such directory')
    print(table(args.originals, '' if args.here else 'examples/peers/'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
