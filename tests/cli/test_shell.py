"""devioc.shell without processes: line handling of the console, exit statuses, serve()'s failure paths."""
import os

import pytest

from devioc import shell
from devioc.checks import CheckMessage, ModelError


@pytest.fixture(autouse=True)
def no_signal_changes(monkeypatch):
    """serve() must not change this pytest process's signal handling."""
    monkeypatch.setattr(shell, 'take_signals', lambda reactor: None)


class FakeProcess:
    def __init__(self):
        self.sent = []
        self.console = None

    def send(self, data):
        self.sent.append(data)


class FakeModel:
    """The state devioc.shell reads of a model: its ``_``-names (fields may take the public ones)."""

    def __init__(self, code=None):
        self._process = self.process = FakeProcess()
        self._ioc_exit_code = code


class FakeReactor:
    """Records stop() calls and system event triggers; run() fires the 'before shutdown' ones."""

    def __init__(self):
        self.stops = 0
        self.triggers = []
        self.ran = False

    def stop(self):
        self.stops += 1

    def addSystemEventTrigger(self, phase, event, func):
        self.triggers.append((phase, event, func))

    def run(self):
        self.ran = True
        for phase, event, func in self.triggers:
            if (phase, event) == ('before', 'shutdown'):
                func()


def test_complete_lines_go_to_the_ioc_and_partial_lines_wait():
    """Typed bytes reach softIoc's stdin line by line; an unfinished line is held until its newline."""
    model, reactor = FakeModel(), FakeReactor()
    console = shell.Console(model, reactor)
    console.typed(b'dbl\ndbpr X:')
    assert model.process.sent == [b'dbl\n']
    console.typed(b'enum\n')
    assert model.process.sent == [b'dbl\n', b'dbpr X:enum\n']
    assert reactor.stops == 0


def test_exit_stops_the_app_instead_of_reaching_the_ioc():
    """'exit' is not forwarded: the reactor is stopped, so the app shuts down cleanly."""
    model, reactor = FakeModel(), FakeReactor()
    console = shell.Console(model, reactor)
    console.active = True
    console.typed(b'  exit\r\x00\n')
    assert model.process.sent == []
    assert reactor.stops == 1
    assert console.exit_requested


def test_end_of_input_stops_the_app_once():
    """Ctrl-D on the terminal stops the reactor once; after detach it is ignored."""
    model, reactor = FakeModel(), FakeReactor()
    console = shell.Console(model, reactor)
    console.active = True
    console.end_of_input()
    console.end_of_input()
    assert reactor.stops == 1
    console.detach()
    console.end_of_input()
    assert reactor.stops == 1


def test_detach_stops_passing_output_to_the_terminal():
    """After detach the IOC's output is no longer sent to the console writer (it is logged again)."""
    model, reactor = FakeModel(), FakeReactor()
    console = shell.Console(model, reactor)
    model.process.console = console.show
    console.detach()
    assert model.process.console is None


def test_no_console_when_stdin_is_not_a_terminal():
    """attach_console returns None for a pipe and leaves the model's output to the log."""
    read_fd, write_fd = os.pipe()
    try:
        model = FakeModel()
        assert shell.attach_console(model, FakeReactor(), stdin_fd=read_fd) is None
        assert model.process.console is None
    finally:
        os.close(read_fd)
        os.close(write_fd)


@pytest.mark.parametrize('code, status', [(None, 0), (0, 1), (3, 3), (-9, 137), (-15, 143)])
def test_exit_status_says_how_the_ioc_ended(code, status):
    """0 after a clean stop; the IOC's code, 1 for an unasked-for clean exit, 128 + signal when killed."""
    assert shell.exit_status(FakeModel(code)) == status


def test_serve_returns_1_when_the_model_has_errors(caplog):
    """A ModelError while starting is logged with its messages; the reactor never runs."""
    reactor = FakeReactor()

    def factory():
        raise ModelError([CheckMessage('devioc.E004', 'too many states', 'use at most 16', 'M.enum')])

    assert shell.serve(factory, reactor=reactor) == 1
    assert not reactor.ran
    assert 'devioc.E004' in caplog.text


def test_serve_returns_1_when_the_ioc_does_not_start(caplog):
    """Any start-up failure (no softIoc, device busy, ...) is logged and gives status 1."""
    reactor = FakeReactor()

    def factory():
        raise RuntimeError('softIoc exited during start-up')

    assert shell.serve(factory, reactor=reactor) == 1
    assert 'the IOC did not start: softIoc exited during start-up' in caplog.text


def test_serve_shuts_the_app_down_and_reports_the_ioc_status(monkeypatch):
    """serve() runs the reactor, calls app.shutdown before shutdown, and returns the IOC's exit status."""
    monkeypatch.setattr(shell.os, 'isatty', lambda fd: False)
    calls = []

    class App:
        def __init__(self):
            self.ioc = FakeModel(code=-9)

        def shutdown(self):
            calls.append('shutdown')

    reactor = FakeReactor()
    assert shell.serve(App, reactor=reactor) == 137
    assert reactor.ran and calls == ['shutdown']
