"""Fixtures of the autosave tests: real small filesystems for full-disk and read-only faults."""
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

# the helpers beside these tests (autosave_faults, autosave_kills) import under any import mode:
# with --import-mode=importlib (how CI runs the tests against the wheel) pytest adds no test folder
# to sys.path
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


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
