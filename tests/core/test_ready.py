"""A model is ready when, and only when, it is ready: every record connected, a database that failed
to load always an IOCStartError, ``ca_port`` reaching its own IOC."""
import os
import subprocess
import sys
import textwrap

import pytest

from devioc import ca, models
from devioc.softioc import IOCStartError
from devioc.testing import ca_environment

N_RECORDS = 200
Wide = type('Wide', (models.Model,), {f'f{i}': (models.Float if i % 2 else models.Integer)(f'f{i}', default=i)
                                      for i in range(N_RECORDS)})


@pytest.mark.slow
def test_fifty_starts_in_a_row_come_up_with_every_record_connected(device, ca_port):
    """Right after the constructor, every one of 200 fields is connected and get() returns its
    default, in each of 50 starts in a row (libca's ca_pend_io used to forget pending channels)."""
    failures = []
    for attempt in range(50):
        ioc = Wide(f'{device}R{attempt}', ca_port=ca_port)
        try:
            unconnected = [name for name, pv in ioc._pvs.items() if not pv.connected]
            values = [ioc._pvs[f'f{i}'].get(timeout=5) for i in range(N_RECORDS)]
            wrong = [i for i, value in enumerate(values) if value != i]
            if unconnected or wrong:
                failures.append((attempt, len(unconnected), wrong[:5]))
        finally:
            ioc.shutdown()
    assert failures == []


FAKE_SOFTIOC = r'''#!/bin/sh
# A stand-in for softIoc that writes its start-up lines in the order the test asks for, then
# answers the IOC shell as softIoc does: "echo X" on stdout, an unknown command on stderr.
{script}
while read -r cmd arg; do
  case "$cmd" in
    echo) echo "$arg" ;;
    exit) exit 0 ;;
    "") ;;
    *) echo "Command $cmd not found." >&2 ;;
  esac
done
'''

FAILED = 'echo "ERROR failed to load \'Fake.db\'"'
READY = 'echo "iocRun: All initialization complete"'

ORDERS = {
    'failure before iocRun, both on stderr': f'{FAILED} >&2\n{READY} >&2',
    'iocRun on stdout, failure on stderr later': f'{READY}\nsleep 0.3\n{FAILED} >&2',
    'iocRun on stderr, failure on stdout later': f'{READY} >&2\nsleep 0.3\n{FAILED}',
    'failure on stdout, then iocRun on stderr': f'{FAILED}\n{READY} >&2',
    'both on stdout, failure after iocRun': f'{READY}\nsleep 0.2\n{FAILED}',
}


class Fake(models.Model):
    level = models.Float('level')


@pytest.mark.parametrize('order', sorted(ORDERS))
def test_a_database_that_failed_to_load_is_an_iocstarterror_whatever_the_line_order(order, device, tmp_path):
    """softIoc's "failed to load" line, whichever stream it comes on and whether before or after
    "iocRun", ends the start-up with IOCStartError saying the database did not load."""
    fake = tmp_path / 'softIoc'
    fake.write_text(FAKE_SOFTIOC.format(script=ORDERS[order]))
    fake.chmod(0o755)
    with pytest.raises(IOCStartError, match='could not load the database(.|\n)*failed to load'):
        Fake(device, command=str(fake), timeout=20)


def test_a_softioc_that_never_answers_times_out_with_a_clear_error(device, tmp_path):
    """A program that prints iocRun but never answers the shell is not taken for a ready IOC."""
    fake = tmp_path / 'softIoc'
    fake.write_text(f'#!/bin/sh\n{READY}\nexec sleep 60\n')
    fake.chmod(0o755)
    with pytest.raises(IOCStartError, match='did not finish iocInit within 1.5 s'):
        Fake(device, command=str(fake), timeout=1.5)


def test_ca_port_needs_no_address_list_edit(ca_port, tmp_path):
    """Model(ca_port=P) reaches its own IOC on P when the client address list names another port only."""
    script = tmp_path / 'app.py'
    script.write_text(textwrap.dedent('''
        import sys
        from devioc import models

        class Tank(models.Model):
            level = models.Float('level', default=1.5)

        ioc = Tank(sys.argv[1], ca_port=int(sys.argv[2]), timeout=8)
        try:
            print('LEVEL', ioc.level.get(), ioc.level.connected)
        finally:
            ioc.shutdown()
    '''))
    env = ca_environment()
    other = env['EPICS_CA_SERVER_PORT']
    env.update(EPICS_CA_ADDR_LIST=f'127.0.0.1:{other}', EPICS_CA_AUTO_ADDR_LIST='NO',
               DEVIOC_CACHE_DIR=str(tmp_path / 'cache'))
    assert str(ca_port) != other
    result = subprocess.run([sys.executable, str(script), f'CAP{os.getpid()}', str(ca_port)], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'LEVEL 1.5 True' in result.stdout


def test_reaches_reads_the_context_environment(monkeypatch):
    """ca.reaches: the ports of the address list entries, the default port for bare entries and the
    automatic list; unknown (None) when pyepics made the context before devioc."""
    monkeypatch.setattr(ca, '_made_with', {'EPICS_CA_ADDR_LIST': '127.0.0.1:5100 10.0.0.255',
                                           'EPICS_CA_AUTO_ADDR_LIST': 'NO', 'EPICS_CA_SERVER_PORT': '5070'})
    assert ca.reaches(5100) is True and ca.reaches(5070) is True and ca.reaches(5064) is False
    monkeypatch.setattr(ca, '_made_with', {})
    assert ca.reaches(5100) is None
    monkeypatch.setattr(ca, '_made_with', {'EPICS_CA_NAME_SERVERS': 'host:5200'})
    assert ca.reaches(5200) is True and ca.reaches(5064) is True and ca.reaches(5065) is False


def test_a_second_model_on_a_port_this_process_cannot_search_is_refused_at_once(monkeypatch, device):
    """When the process's CA context cannot search the port, the model says so before starting
    softIoc (libca reads its address list once per process), instead of timing out."""
    monkeypatch.setattr(ca, 'reaches', lambda port: False)
    with pytest.raises(IOCStartError, match='ca_port=5999 cannot be reached(.|\n)*EPICS_CA_ADDR_LIST'):
        Fake(device, ca_port=5999)


@pytest.mark.parametrize('order', sorted(ORDERS))
def test_load_failure_is_known_once_both_streams_are_synced(order, tmp_path):
    """IOCProcess.synced is set only once both output streams were read past softIoc's start-up, so
    load_failed is already final then, even for a failure line written after iocRun on the other stream."""
    from devioc.softioc import IOCProcess

    fake = tmp_path / 'softIoc'
    fake.write_text(FAKE_SOFTIOC.format(script=ORDERS[order]))
    fake.chmod(0o755)
    process = IOCProcess([str(fake)], tmp_path, dict(os.environ), 'fake')
    process.start()
    try:
        assert process.synced.wait(10)
        assert process.load_failed
        assert not process.exited.is_set()
        assert not any('devioc-sync' in line for line in process.tail)
    finally:
        assert process.stop() == 0


def test_a_second_model_on_the_port_of_a_running_one_is_refused_at_once(device, ca_port):
    """Two softIocs on one CA port answer this process's unicast searches at random (the second model
    timed out after 10 s in 8 of 13 tries): the second model is refused before its softIoc starts, and
    the first keeps working. Once the first is stopped, the port is this process's to use again."""
    class Pair(models.Model):
        level = models.Integer('level')

    first = Pair(f'{device}A', ca_port=ca_port)
    try:
        with pytest.raises(IOCStartError, match=f'CA port {ca_port} is already served by {device}A(.|\n)*own process'):
            Pair(f'{device}B', ca_port=ca_port)
        assert first.level.put(3, wait=True) and first.level.get() == 3
    finally:
        first.shutdown()
    again = Pair(f'{device}B', ca_port=ca_port)
    try:
        assert again.level.put(4, wait=True) and again.level.get() == 4
    finally:
        again.shutdown()
