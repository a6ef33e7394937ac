#!/usr/bin/env python3
"""Autosave fault injection, full run: kill -9 an app at random moments during 1 kHz writes.

    python benchmarks/autosave_kill.py [--kills 100] [--seed 1] [--json out.json]

Each cycle (tests/autosave/autosave_kills.py): a client writes the current time to
``<device>:level`` at ~1 kHz, the app is killed with SIGKILL after 0.3..2.5 s (its softIoc follows),
the app is started again and must come up with a restored value. The value is the moment it was
written, so ``kill time - restored value`` is the age of what was restored (the staleness). The
issue's bar: every restart comes up, every restored value at most ~1 s old. The bounded CI version
(5 kills) is ``tests/autosave/test_autosave_live.py``. Runs on private loopback CA ports; state and logs in
a temporary directory, removed at the end unless ``--keep``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--kills', type=int, default=100)
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--json', help='write the result here as JSON')
    parser.add_argument('--keep', action='store_true', help='keep the work directory (logs, state)')
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT / 'tests' / 'autosave'))
    from autosave_kills import kill_cycles

    from devioc import autosave, testing

    testing.isolate(2)   # private loopback ports, before any CA context
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # a stop still stops the app (finally below)
    work = Path(tempfile.mkdtemp(prefix='autosave-kill-'))
    env = {**testing.ca_environment(), 'EPICS_CA_SERVER_PORT': os.environ['EPICS_CA_ADDR_LIST'].split()[1].split(':')[1],
           'DEVIOC_STATE_DIR': str(work / 'state'), 'DEVIOC_CACHE_DIR': str(work / 'cache')}
    device = f'AK{uuid.uuid4().hex[:6].upper()}'
    started = time.monotonic()
    try:
        result = kill_cycles(args.kills, device, env, work, seed=args.seed,
                             progress=lambda n, s: print(f'kill {n:3d}: restored a value {s:.3f} s old', flush=True))
    finally:
        testing.stop_repeaters(os.environ['EPICS_CA_REPEATER_PORT'])
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    over = [s for s in result.staleness if s > 1.0]
    print(result.summary() + f'; {len(over)} over 1 s (period {autosave.PERIOD} s, '
          f'{time.monotonic() - started:.0f} s in all)')
    for failure in result.failures:
        print('FAILURE', failure)
    if args.json:
        Path(args.json).write_text(json.dumps({
            'kills': result.kills, 'restores': result.restores, 'failures': result.failures,
            'staleness_s': result.staleness, 'max_staleness_s': result.max_staleness, 'period_s': autosave.PERIOD,
            'seed': args.seed}, indent=1))
    return 0 if not result.failures and result.restores == args.kills else 1


if __name__ == '__main__':
    sys.exit(main())
