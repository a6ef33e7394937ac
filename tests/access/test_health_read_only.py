"""The health records are read-only to clients even in a model with no read-only field of its own:
devioc then loads its access security file for them alone, and the app's updates still land."""
import subprocess
import time

import pytest_twisted
from twisted.internet import reactor, task

from devioc import models
from devioc.softioc import epics_tool
from devioc.testing import caget


class Plain(models.Model):
    setpoint = models.Float('setpoint')


def _caput(name, value, env):
    return subprocess.run([epics_tool('caput'), '-c', '-w', '3', name, value], env=env,
                          capture_output=True, text=True, timeout=15)


@pytest_twisted.inlineCallbacks
def test_health_records_refuse_clients_and_take_the_apps_updates(run_model, device, ca_env):
    ioc = run_model(Plain)
    assert (ioc._directory / 'Plain.acf').is_file()
    result = _caput(f'{device}:IOC:HEARTBEAT', '12345', ca_env)
    assert result.returncode != 0 and 'Write access denied' in result.stderr + result.stdout, result.stderr
    assert _caput(f'{device}:setpoint', '2.5', ca_env).returncode == 0     # DEFAULT: everyone writes
    first = int(caget(f'{device}:IOC:HEARTBEAT', ca_env))
    deadline = time.monotonic() + 10
    while int(caget(f'{device}:IOC:HEARTBEAT', ca_env)) <= first:       # the app's updates, through the shell
        assert time.monotonic() < deadline, 'HEARTBEAT did not count up'
        yield task.deferLater(reactor, 0.5, lambda: None)
    assert int(caget(f'{device}:IOC:HEARTBEAT', ca_env)) != 12345
