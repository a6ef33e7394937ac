"""Shared bits of the benchmark subjects: arguments, record mix, report lines.

Every subject serves the same PVs under ``<prefix>:``:

- mode ``startup``: ``r0`` .. ``r{n-1}``, a mix of record kinds (see ``KINDS``).
- mode ``work``: ``cmd`` -> logic writes ``cmd + 1`` to ``result`` (round trip);
  ``go`` = g -> the server publishes ``g*OFFSET + 1 .. g*OFFSET + PUBLISH_COUNT`` to ``pub``;
  ``in`` collects client writes in the server callback, ``done`` = p reports phase p.

Subjects append one JSON object per line to the ``--out`` file: ``ready`` when their
Python logic can serve, ``publish`` after a publish loop, ``intake`` after each phase.
"""

import argparse
import json
import os
import time

KINDS = ('ao', 'longout', 'bo', 'mbbo', 'stringout', 'ai')
OFFSET = 100_000
PUBLISH_COUNT = 20_000
QUIET_S = 0.3        # intake: the phase ends when no value came for this long
QUIET_MAX_S = 15.0   # ... or after this long at most


def kind_of(index: int) -> str:
    """Return the EPICS record type of startup record ``index``."""
    return KINDS[index % len(KINDS)]


def parse_args(description: str) -> argparse.Namespace:
    """Parse the command line every subject shares."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--prefix', required=True)
    parser.add_argument('--mode', choices=['startup', 'work'], required=True)
    parser.add_argument('--n', type=int, default=0, help='records in startup mode')
    parser.add_argument('--out', required=True, help='file the JSON report lines go to')
    return parser.parse_args()


def report(path: str, event: str, **fields) -> None:
    """Append one JSON line ``{"event": event, ...}`` to ``path`` in a single write."""
    line = json.dumps(dict(event=event, t=time.monotonic(), **fields)) + '\n'
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class Intake:
    """Values a server callback received, each with the time it came."""

    def __init__(self) -> None:
        self.seen = []   # (monotonic time, value)

    def add(self, value) -> None:
        self.seen.append((time.monotonic(), int(value)))

    def quiet_for(self) -> float:
        """Seconds since the last value (infinite when none came)."""
        return time.monotonic() - self.seen[-1][0] if self.seen else float('inf')

    def summary(self, phase: int) -> dict:
        """Stats of the values of ``phase`` (those in ``phase*OFFSET+1 ..``); resets."""
        low, high = phase * OFFSET, (phase + 1) * OFFSET
        mine = [(t, v) for t, v in self.seen if low < v < high]
        vals = [v for _, v in mine]
        ordered = all(a < b for a, b in zip(vals, vals[1:]))
        out = dict(phase=phase, received=len(vals), unique=len(set(vals)), in_order=ordered,
                   last=vals[-1] if vals else None, t_first=mine[0][0] if mine else None,
                   t_last=mine[-1][0] if mine else None)
        self.seen = []
        return out
