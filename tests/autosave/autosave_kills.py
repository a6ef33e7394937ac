"""Fault injection shared by the CI test and ``benchmarks/autosave_kill.py``: kill -9 during writes.

One cycle: the app (``saved_app.py``) runs; a client (``writer.py``) writes the current time to
``<device>:level`` at ~1 kHz; after a random delay the app is killed with SIGKILL (its softIoc
follows: its stdin closes); the app is started again and must come up, with a restored ``level``
whose value - the moment it was written - is at most about a second before the kill.
"""
from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
APP = HERE / 'saved_app.py'
WRITER = HERE / 'writer.py'
#: level's default in saved_app.py (a time of 1970: never a value the writer wrote)
DEFAULT_LEVEL = 1.0


@dataclass
class KillResult:
    """What the kill cycles measured: ``staleness`` (s) of each restore, and the failures."""

    kills: int = 0
    restores: int = 0
    staleness: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def max_staleness(self) -> float:
        return max(self.staleness) if self.staleness else float('nan')

    def summary(self) -> str:
        s = sorted(self.staleness)
        median = s[len(s) // 2] if s else float('nan')
        return (f'{self.kills} kills, {self.restores} restarts restored a value, {len(self.failures)} failures; '
                f'staleness median {median:.3f} s, max {self.max_staleness:.3f} s')


def _wait_line(path: Path, word: str, proc: subprocess.Popen, timeout: float) -> str | None:
    """The first line of ``path`` starting with ``word`` (None if ``proc`` exits or on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for line in path.read_text(errors='replace').splitlines():
                if line.startswith(word):
                    return line
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            return None
        time.sleep(0.02)
    return None


def start_app(device: str, env: dict, log: Path, *args: str, timeout: float = 30.0) -> subprocess.Popen:
    """Start saved_app.py; returns once it printed READY. RuntimeError (with its output) otherwise."""
    with open(log, 'w') as out:
        proc = subprocess.Popen([sys.executable, str(APP), device, *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    if _wait_line(log, 'READY', proc, timeout) is None:
        stop(proc)
        raise RuntimeError(f'the app did not start: {log.read_text()[-2000:]}')
    return proc


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
    """Stop ``proc`` by its PID with ``sig`` (SIGKILL after ``timeout``); its exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    return proc.returncode


def first_value(log: Path, name: str) -> str | None:
    """The value (repr) the app's first ``do_<name>`` saw, from its ``FIRST`` line."""
    for line in log.read_text(errors='replace').splitlines():
        if line.startswith(f'FIRST {name} '):
            return line.split(' ', 2)[2]
    return None


def kill_cycles(count: int, device: str, env: dict, workdir: Path, seed: int = 0,
                delays: tuple[float, float] = (0.3, 2.5), progress=None) -> KillResult:
    """Run ``count`` kill -9 cycles on ``device`` (its state under env's DEVIOC_STATE_DIR)."""
    rng = random.Random(seed)
    result = KillResult()
    app = start_app(device, env, workdir / 'app-0.log')
    try:
        for cycle in range(1, count + 1):
            wlog = workdir / 'writer.log'
            with open(wlog, 'w') as out:
                writer = subprocess.Popen([sys.executable, str(WRITER), f'{device}:level'], env=env, stdout=out,
                                          stderr=subprocess.STDOUT)
            try:
                line = _wait_line(wlog, 'WRITING', writer, 15.0)
                if line is None:
                    result.failures.append(f'cycle {cycle}: the writer did not connect: {wlog.read_text()[-500:]}')
                    continue
                first_put = float(line.split()[1])
                time.sleep(rng.uniform(*delays))
                app.send_signal(signal.SIGKILL)
                killed_at = time.time()
                app.wait(15.0)
                result.kills += 1
            finally:
                stop(writer, signal.SIGKILL)
            log = workdir / f'app-{cycle}.log'
            try:
                app = start_app(device, env, log)
            except RuntimeError as err:
                result.failures.append(f'cycle {cycle}: {err}')
                app = start_app(device, env, log)  # one more try, so the run goes on
                continue
            seen = first_value(log, 'level')
            try:
                restored = float(seen)
            except (TypeError, ValueError):
                result.failures.append(f'cycle {cycle}: no restored level (first do_level saw {seen!r})')
                continue
            if restored == DEFAULT_LEVEL and cycle == 1:
                restored = first_put   # nothing written before the kill: the default was current until then
            result.restores += 1
            result.staleness.append(killed_at - restored)
            if progress:
                progress(cycle, killed_at - restored)
    finally:
        stop(app)
    return result
