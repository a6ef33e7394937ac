"""validate_<field> survives a softIoc restart (restart=True): a refused value is still put back."""
import os
import signal

import pytest_twisted

from devioc import models
from devioc.restart import RestartPolicy
from devioc.testing import caget, caput, until


class Tank(models.Model):
    level = models.Float('level', default=10.0)


class Keeper:
    def __init__(self):
        self.restarts = 0
        self.judged = []

    def validate_level(self, pv, value, ioc):
        self.judged.append(value)
        return value >= 0

    def on_ioc_restart(self, ioc):
        self.restarts += 1


@pytest_twisted.inlineCallbacks
def test_a_refused_value_is_put_back_after_a_restart(run_model, device, ca_env):
    app = Keeper()
    ioc = run_model(Tank, callbacks=app, restart=RestartPolicy(min_delay=0.1, max_delay=0.5))
    caput(f'{device}:level', 20, ca_env)
    yield until(lambda: 20.0 in app.judged, 'validate_level(20)')
    os.kill(ioc._process.pid, signal.SIGKILL)
    yield until(lambda: app.restarts == 1 and ioc._ready, 'the restart')
    caput(f'{device}:level', -5, ca_env)
    yield until(lambda: -5.0 in app.judged, 'validate_level(-5) after the restart')
    yield until(lambda: caget(f'{device}:level', ca_env) != '-5', 'the refused value put back')
