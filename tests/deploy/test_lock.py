"""The one-instance-per-device lock (devioc.lock): an abstract UNIX socket, no file anywhere.

Properties the old /tmp lock file lacked: a planted symlink clobbers nothing, a lock left by a
stopped process of another user never blocks, ``X:A`` and ``X_A`` are different devices, the
holder's death (even by SIGKILL) releases it, and neither forked nor exec'd children keep it.
"""
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from devioc import lock, models


def fresh(prefix: str = 'LCK') -> str:
    return f'{prefix}{uuid.uuid4().hex[:8].upper()}'


def test_second_acquire_is_refused_with_the_holders_pid_and_user():
    """DeviceBusy names this process as the holder; after close() the device is free again."""
    device = fresh()
    held = lock.acquire(device)
    try:
        with pytest.raises(lock.DeviceBusy) as info:
            lock.acquire(device)
        import pwd
        assert f'pid {os.getpid()}, user {pwd.getpwuid(os.getuid()).pw_name}' in str(info.value)
        assert f'device {device} is already running on this host' in str(info.value)
    finally:
        held.close()
    assert not held.held
    lock.acquire(device).close()
    held.close()                                  # a second close does nothing


def test_models_device_busy_is_the_lock_error():
    """models.DeviceBusy, which apps catch, is the class the lock raises."""
    assert models.DeviceBusy is lock.DeviceBusy


def test_names_that_sanitise_alike_are_different_locks():
    """X:A, X_A, X.A and X-A are four devices: each takes its own lock."""
    base = fresh()
    held = [lock.acquire(f'{base}{sep}A') for sep in (':', '_', '.', '-')]
    try:
        assert len({lock.lock_address(h.device) for h in held}) == 4
    finally:
        for h in held:
            h.close()


def test_names_that_sanitise_alike_get_different_cache_directories():
    """X:A and X_A may run at once (different locks), so they must not share the .db/.cmd directory:
    measured, when both started together one softIoc loaded the other's database and timed out."""
    names = ['X:A', 'X_A', 'X%3AA', 'X.A', 'a/b', 'a_b', 'é', '_', '']
    dirs = [models._safe(name) for name in names]
    assert len(set(dirs)) == len(names), dict(zip(names, dirs))
    assert models._safe('MYIOC-001') == 'MYIOC-001'                  # plain names are unchanged
    assert all('/' not in d and d not in ('', '.', '..') for d in dirs)


def test_long_names_fit_the_socket_address():
    """A name too long for sun_path is locked by its SHA-256; two such names differ."""
    first, second = 'L' * 150 + fresh(), 'L' * 150 + fresh()
    assert len(lock.lock_address(first)) <= lock.SUN_PATH_MAX
    assert lock.lock_address(first) != lock.lock_address(second)
    a = lock.acquire(first)
    try:
        with pytest.raises(lock.DeviceBusy):
            lock.acquire(first)
        lock.acquire(second).close()
    finally:
        a.close()


HOLDER = '''
import sys, time
from devioc import lock
held = lock.acquire(sys.argv[1])
print('held', flush=True)
time.sleep(60)
'''


@pytest.mark.parametrize('round_', range(3))
def test_kill_9_of_the_holder_releases_the_lock(round_):
    """A holder killed with SIGKILL leaves nothing behind: the next start gets the device at once."""
    device = fresh()
    proc = subprocess.Popen([sys.executable, '-c', HOLDER, device], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'held'
        with pytest.raises(lock.DeviceBusy, match=f'pid {proc.pid}'):
            lock.acquire(device)
    finally:
        proc.kill()
        proc.wait()
    lock.acquire(device).close()


def test_exec_child_does_not_hold_the_lock():
    """A program the app starts (even with close_fds=False) does not inherit the lock socket."""
    device = fresh()
    held = lock.acquire(device)
    child = subprocess.Popen(['sleep', '30'], close_fds=False)
    try:
        held.close()
        lock.acquire(device).close()            # free while the child still runs
    finally:
        child.kill()
        child.wait()


def test_forked_child_does_not_hold_the_lock():
    """A forked worker drops its copy at fork: the device is free once the parent lets go."""
    device = fresh()
    held = lock.acquire(device)
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:                                 # the worker: report, then outlive the parent's lock
        os.close(rd)
        os.write(wr, b'held' if held.held else b'dropped')
        time.sleep(10)
        os._exit(0)
    os.close(wr)
    try:
        assert os.read(rd, 10) == b'dropped'
        held.close()
        lock.acquire(device).close()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(rd)


def test_planted_symlink_in_the_old_lock_dir_is_not_followed(tmp_path, monkeypatch, run_model, device):
    """The old DEVIOC_LOCK_DIR/<device>.lock symlink to a victim file is ignored: nothing is written."""
    locks = tmp_path / 'devioc-locks'
    locks.mkdir()
    victim = tmp_path / 'victim'
    victim.write_text('IMPORTANT DATA\n')
    (locks / f'{device}.lock').symlink_to(victim)
    monkeypatch.setenv('DEVIOC_LOCK_DIR', str(locks))

    class Clob(models.Model):
        x = models.Float('x')

    run_model(Clob)
    assert victim.read_text() == 'IMPORTANT DATA\n'
    assert sorted(p.name for p in locks.iterdir()) == [f'{device}.lock']


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to act as a second user (CI runs as root)')
def test_other_user_sees_the_holder_and_gets_the_device_after_it_stops():
    """uid 65534 is refused while root holds the device (pid named), and gets it once root has let go."""
    device = fresh()
    held = lock.acquire(device)
    go_rd, go_wr = os.pipe()
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(go_wr)
            os.close(rd)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                lock.acquire(device)
                first = 'ACQUIRED'
            except lock.DeviceBusy as err:
                first = f'BUSY {err}'
            os.write(wr, first.encode() + b'\n')
            os.read(go_rd, 1)                  # wait until the parent has released
            try:
                lock.acquire(device).close()
                second = 'ACQUIRED'
            except Exception as err:
                second = f'{type(err).__name__} {err}'
            os.write(wr, second.encode() + b'\n')
        finally:
            os._exit(0)
    os.close(go_rd)
    os.close(wr)
    with os.fdopen(rd) as answers:
        first = answers.readline().strip()
        held.close()
        os.write(go_wr, b'x')
        second = answers.readline().strip()
    os.waitpid(pid, 0)
    os.close(go_wr)
    assert first.startswith('BUSY') and f'pid {os.getpid()}, user root' in first, first
    assert second == 'ACQUIRED', second
