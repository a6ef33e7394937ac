"""Helpers of the autosave tests: real faults of a filesystem (full, read-only)."""
import os
import subprocess
from pathlib import Path


def remount(point: Path, read_only: bool) -> None:
    """Remount a tmpfs of the ``tmpfs`` fixture read-only (or read-write again)."""
    subprocess.run(['mount', '-o', f'remount,{"ro" if read_only else "rw"}', str(point)], check=True)


def fill(point: Path) -> Path:
    """Fill a filesystem until it has no free block; returns the filler file (delete it to free the disk)."""
    filler = point / 'filler'
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 1):  # down to the last byte
            try:
                while True:
                    os.write(fd, b'\0' * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler
