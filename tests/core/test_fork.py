"""Any process: children the app forks or spawns never keep its softIoc alive, and never stop it."""
import os
import signal
import subprocess
import sys
import textwrap

from devioc import models
from devioc.testing import alive, caget, child_pids, wait_for


APP = textwrap.dedent('''
    import multiprocessing, os, subprocess, sys, time
    from devioc import models
    from twisted.internet import reactor

    class Beamline(models.Model):
        flux = models.FloatInput('flux', default=1.5)

    def busy():
        time.sleep(60)

    if __name__ == '__main__':
        multiprocessing.set_start_method('fork')
        ioc = Beamline(sys.argv[1])
        worker = multiprocessing.Process(target=busy, daemon=True)
        worker.start()
        forked = os.fork()
        if forked == 0:
            time.sleep(60)
            os._exit(0)
        spawned = subprocess.Popen(['sleep', '60'], close_fds=False)
        print('READY', ioc.process.pid, worker.pid, forked, spawned.pid, flush=True)
        reactor.addSystemEventTrigger('before', 'shutdown', ioc.shutdown)
        reactor.run()
''')


def test_softioc_dies_with_the_app_whatever_it_forked(device, ca_env, tmp_path):
    """The app forks a multiprocessing worker, an os.fork child and a subprocess with close_fds=False,
    then is killed with SIGKILL: its softIoc exits anyway (no child holds softIoc's stdin pipe)."""
    script = tmp_path / 'app.py'
    script.write_text(APP)
    app = subprocess.Popen([sys.executable, str(script), device], env=ca_env, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    pids = []
    try:
        line = app.stdout.readline()
        assert line.startswith('READY'), line
        pids = [int(pid) for pid in line.split()[1:]]
        ioc_pid, helpers = pids[0], pids[1:]
        assert caget(f'{device}:flux', ca_env) == '1.5'
        app.kill()
        app.wait(10)
        wait_for(lambda: not alive(ioc_pid), timeout=10, what='softIoc to exit after the app was killed')
        assert all(alive(pid) for pid in helpers)   # the helpers still run: they were not what held it
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(10)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Small(models.Model):
    level = models.Float('level', default=2.5)


def test_a_forked_child_drops_the_pipe_and_cannot_stop_the_parents_ioc(device, ca_port):
    """In an os.fork child, softIoc's stdin is /dev/null, and model.shutdown() there is a no-op:
    the parent's IOC keeps serving after the child called it and exited."""
    ioc = Small(device, ca_port=ca_port)
    try:
        fd = ioc.process.proc.stdin.fileno()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:   # the child: report, try to stop the parent's IOC, leave without cleanup
            try:
                os.close(read_end)
                target = os.readlink(f'/proc/self/fd/{fd}')
                ioc.shutdown()
                os.write(write_end, target.encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as report:
            target = report.read()
        os.waitpid(pid, 0)
        assert target == '/dev/null'
        assert ioc.process.pid in child_pids(os.getpid()) and not ioc.process.exited.is_set()
        assert ioc.level.put(3.5, wait=True) is True and ioc.level.get() == 3.5
        assert caget(f'{device}:level') == '3.5'
    finally:
        ioc.shutdown()
