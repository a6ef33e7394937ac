"""Helpers of the access tests: run the C CA tools as another user (uid 65534)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from devioc.testing import epics_tool

OTHER_UID = 65534


def tool_as_other_user(name: str, tmp_root: Path) -> list[str]:
    """The argv prefix that runs EPICS tool ``name`` as uid/gid 65534 (skips the test when not root).

    The tool runs from where it is when that user can run it; else from a world-readable copy of
    its EPICS tree (bin and lib) under ``tmp_root``.
    """
    if os.geteuid() != 0:
        pytest.skip('running a CA client as another user needs root (setpriv)')
    setpriv = shutil.which('setpriv')
    if setpriv is None:
        pytest.skip('setpriv (util-linux) is not installed')
    prefix = [setpriv, f'--reuid={OTHER_UID}', f'--regid={OTHER_UID}', '--clear-groups']
    tool = epics_tool(name)
    if subprocess.run([*prefix, tool, '-h'], capture_output=True, timeout=10).returncode != 0:
        tree = Path(tool).parents[1]   # .../usr, holding bin/ and lib/
        copy = tmp_root / 'epics-usr'
        if not copy.exists():
            shutil.copytree(tree, copy, symlinks=True)
            for path in [copy, *copy.rglob('*')]:
                path.chmod(path.stat().st_mode | 0o055)
            tmp_root.chmod(0o755)
        tool = str(copy / 'bin' / name)
    return [*prefix, tool]


def run_as_other(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run ``argv`` (from :func:`tool_as_other_user`) with ``env``, HOME pointed at /tmp."""
    return subprocess.run(argv, env={**env, 'HOME': '/tmp', 'USER': 'nobody'}, capture_output=True, text=True,
                          timeout=20)
