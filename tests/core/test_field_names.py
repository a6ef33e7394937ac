"""Fields may take the names the model once kept its state under (issue 13 item 8), live."""
import pytest_twisted
from twisted.internet import reactor, task

from devioc import models
from devioc.testing import caget, caput


class Names(models.Model):
    process = models.Integer('process', default=3)
    directory = models.String('directory', default='/data')
    ready = models.Toggle('ready')


class App:
    def __init__(self):
        self.seen = []

    def do_process(self, pv, value, ioc):
        self.seen.append(value)


@pytest_twisted.inlineCallbacks
def test_fields_named_process_and_directory_are_pvs_and_the_model_still_runs(run_model, device, ca_env):
    app = App()
    ioc = run_model(Names, callbacks=app)
    assert ioc.process.get() == 3 and ioc.directory.get() == '/data'
    assert ioc.ready.get() == 0
    assert ioc._process is not None and ioc._process.pid > 0 and ioc._ready
    assert str(ioc._directory).endswith(device)
    caput(f'{device}:process', 7, ca_env)
    for _ in range(100):
        if 7 in app.seen:
            break
        yield task.deferLater(reactor, 0.05, lambda: None)
    assert app.seen == [3, 7]
    assert caget(f'{device}:directory', ca_env).split()[-1] == '/data'
    pid = ioc._process.pid
    ioc.shutdown()
    assert ioc._process.exited.is_set(), f'softIoc {pid} still running'


def test_public_state_names_still_read_the_state_when_no_field_takes_them(run_model, device):
    class Plain(models.Model):
        x = models.Float('x')

    ioc = run_model(Plain)
    assert ioc.device_name == device and ioc.ready is True and ioc.process is ioc._process
    assert ioc.directory == ioc._directory and ioc.db_name == 'Plain' and ioc.callbacks is ioc
    assert ioc.macros['device'] == device and ioc.ioc_exit_code is None
