#!/usr/bin/env python3
"""Summarise a py-spy raw (folded) profile: top functions by own and by inclusive samples.

    python benchmarks/spy_summary.py /tmp/spy/devioc-work-4.txt [--top 25]
"""

import argparse
import collections
import re


def frame_name(frame: str) -> str:
    """'func (path/to/file.py:12)' -> 'func (file.py)'."""
    m = re.match(r'(.*?) \((.*?)(?::\d+)?\)$', frame.strip())
    if not m:
        return frame.strip()
    func, path = m.groups()
    parts = path.split('/')
    return f'{func} ({"/".join(parts[-2:])})'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('path')
    parser.add_argument('--top', type=int, default=25)
    args = parser.parse_args()
    own, incl, threads = collections.Counter(), collections.Counter(), collections.Counter()
    total = 0
    with open(args.path) as fh:
        for line in fh:
            stack, _, count = line.rstrip().rpartition(' ')
            if not stack:
                continue
            n = int(count)
            frames = stack.split(';')
            total += n
            if frames and frames[0].startswith('thread'):
                threads[frames[0]] += n
                frames = frames[1:]
            names = [frame_name(f) for f in frames if f]
            if names:
                own[names[-1]] += n
            for name in set(names):
                incl[name] += n
    print(f'{total} samples')
    for title, counter in (('threads', threads), ('own', own), ('inclusive', incl)):
        print(f'\n-- {title}')
        for name, n in counter.most_common(args.top):
            print(f'{100.0 * n / max(total, 1):6.1f}%  {name}')


if __name__ == '__main__':
    main()
