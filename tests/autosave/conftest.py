"""Fixtures of the autosave tests: real small filesystems for full-disk and read-only faults."""
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

# The tests import their helper modules beside them (autosave_faults, autosave_kills): CI runs pytest
# with --import-mode=importlib, which puts no test folder on sys.path, so this conftest does.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(size_kb, read_only=False)``: a real tmpfs mounted under tmp_path; unmounted at the end.

    A full tmpfs fails writes with ENOSPC, a read-only one with EROFS, for root as for anyone: the
    faults are the kernel's own. Skipped where this process may not mount (not root, no CAP_SYS_ADMIN).
    """
    mounted = []

    def mount(size_kb: int = 64) -> Path:
        point = tmp_path / f'fs-{uuid.uuid4().hex[:6]}'
        point.mkdir()
        result = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size_kb}k,mode=0755', 'tmpfs', str(point)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f'cannot mount a tmpfs here (needs root): {result.stderr.strip()}')
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(['umount', '-l', str(point)], capture_output=True)
