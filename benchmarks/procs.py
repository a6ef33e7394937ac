"""Process helpers for the orchestrator: free ports, process trees, memory, stopping by PID."""

import os
import random
import signal
import socket
import threading
import time

import psutil


def free_port() -> int:
    """Return a port free for both TCP and UDP on 127.0.0.1 (a CA server needs both)."""
    for _ in range(200):
        port = random.randint(30000, 60000)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                tcp.bind(('127.0.0.1', port))
                udp.bind(('127.0.0.1', port))
            return port
        except OSError:
            continue
    raise RuntimeError('no free loopback port found in 200 tries')


def tree(pid: int) -> list:
    """Return psutil.Process objects for ``pid`` and all its descendants (alive ones)."""
    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def hwm_mb(procs) -> float:
    """Sum of each process's peak resident set (VmHWM), in MB."""
    total = 0
    for proc in procs:
        try:
            with open(f'/proc/{proc.pid}/status') as fh:
                for line in fh:
                    if line.startswith('VmHWM:'):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024.0


class RssSampler(threading.Thread):
    """Samples the summed RSS of a process tree every ``period`` s; keeps the peak."""

    def __init__(self, pid: int, period: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.peak_mb = 0.0
        self.pids = set()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            total = 0
            for proc in tree(self.pid):
                self.pids.add(proc.pid)
                try:
                    total += proc.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            self.peak_mb = max(self.peak_mb, total / 2**20)
            self._halt.wait(self.period)

    def stop(self) -> None:
        self._halt.set()
        self.join(2)


def stop_tree(popen, extra_pids=(), grace: float = 5.0) -> None:
    """Stop a server and its descendants, each by PID: close stdin, TERM, then KILL."""
    procs = {p.pid: p for p in tree(popen.pid)}
    for pid in extra_pids:
        if pid not in procs:
            try:
                procs[pid] = psutil.Process(pid)
            except psutil.NoSuchProcess:
                pass
    if popen.stdin:
        try:
            popen.stdin.close()
        except OSError:
            pass
    try:
        os.kill(popen.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    end = time.monotonic() + grace
    while time.monotonic() < end:
        if popen.poll() is not None and not any(p.is_running() and p.status() != 'zombie'
                                                for p in procs.values()):
            break
        time.sleep(0.02)
    for proc in procs.values():
        try:
            if proc.is_running() and proc.status() != 'zombie':
                os.kill(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    try:
        popen.wait(5)
    except Exception:
        pass
