"""Unit tests of the restart policy and supervisor, callback error reports and the /proc readings."""
import logging
import os
import socket
import time

import pytest
from twisted.internet import task

from devioc.health import CallbackErrors, ProcStats, app_version, enabled
from devioc.restart import RestartPolicy, Supervisor, policy_of


# -- restart policy
def test_policy_delays_double_from_min_to_max():
    """The wait before a restart doubles with each death in the window, capped at max_delay."""
    policy = RestartPolicy(min_delay=0.5, max_delay=3.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize('kwargs,named', [
    ({'min_delay': 0}, 'min_delay'), ({'max_delay': -1}, 'max_delay'), ({'window': 'x'}, 'window'),
    ({'min_delay': 5, 'max_delay': 1}, 'max_delay'), ({'max_deaths': 0}, 'max_deaths'),
    ({'max_deaths': 2.5}, 'max_deaths'), ({'min_delay': True}, 'min_delay'),
])
def test_bad_policy_values_are_refused_by_name(kwargs, named):
    """A bad RestartPolicy argument is a ValueError naming the argument."""
    with pytest.raises(ValueError, match=named):
        RestartPolicy(**kwargs)


def test_restart_keyword_values():
    """restart=False/None: no policy; True: the default policy; anything else but a policy: TypeError."""
    assert policy_of(False) is None and policy_of(None) is None
    assert policy_of(True) == RestartPolicy()
    custom = RestartPolicy(min_delay=0.1)
    assert policy_of(custom) is custom
    with pytest.raises(TypeError, match='RestartPolicy'):
        policy_of('yes')


class FakeModel:
    _device_name = 'UNIT'
    _callbacks = None


def test_supervisor_backs_off_then_gives_up(monkeypatch):
    """Deaths 1..4 of 5 schedule restarts after 1, 2, 4, 8 s; the 5th within the window gives up."""
    clock = task.Clock()
    supervisor = Supervisor(FakeModel(), RestartPolicy(), reactor=clock, clock=clock.seconds)
    monkeypatch.setattr(supervisor, '_restart', lambda: None)
    delays = []
    for _ in range(4):
        assert supervisor.ioc_died(-9) is True
        call = clock.getDelayedCalls()[0]
        delays.append(call.getTime() - clock.seconds())
        clock.advance(delays[-1])
    assert delays == [1.0, 2.0, 4.0, 8.0]
    assert supervisor.ioc_died(-9) is False and supervisor.gave_up
    assert supervisor.ioc_died(-9) is False   # stays given up


def test_supervisor_forgets_deaths_outside_the_window(monkeypatch):
    """Deaths older than the window no longer count: the back-off starts again from min_delay."""
    clock = task.Clock()
    supervisor = Supervisor(FakeModel(), RestartPolicy(max_deaths=2, window=10.0), reactor=clock,
                            clock=clock.seconds)
    monkeypatch.setattr(supervisor, '_restart', lambda: None)
    assert supervisor.ioc_died(1)
    clock.advance(11.0)
    assert supervisor.ioc_died(1)   # the first death is out of the window: 1 of 2, not 2 of 2
    assert clock.getDelayedCalls()[-1].getTime() - clock.seconds() == 1.0
    assert not supervisor.ioc_died(1)


def test_stopped_supervisor_cancels_its_restart(monkeypatch):
    """stop() (at shutdown) cancels a scheduled restart and refuses further ones."""
    clock = task.Clock()
    supervisor = Supervisor(FakeModel(), RestartPolicy(), reactor=clock, clock=clock.seconds)
    assert supervisor.ioc_died(-9)
    supervisor.stop()
    assert clock.getDelayedCalls() == []
    assert supervisor.ioc_died(-9) is False


# -- callback errors
def _raise(message):
    raise ValueError(message)


def _error(message):
    try:
        _raise(message)
    except ValueError as err:
        return err


def test_identical_tracebacks_are_logged_once_then_counted(caplog):
    """The same error 50 times in a window: one traceback, then one line with the count of repeats."""
    clock = task.Clock()
    errors = CallbackErrors('DEV', window=60.0, reactor=clock, clock=clock.seconds)
    with caplog.at_level(logging.ERROR, logger='devioc.health'):
        for i in range(50):
            errors.report('x', i, _error(f'bad {i}'))
            clock.advance(0.1)
        clock.advance(55.0)                # to the end of the 60 s window that the first one opened
    records = [r for r in caplog.records if r.name == 'devioc.health']
    assert len(records) == 2
    assert records[0].exc_info is not None and 'do_x(0) raised' in records[0].getMessage()
    assert 'repeated 49 times in the last 60 s' in records[1].getMessage()
    assert 'bad 49' in records[1].getMessage() and records[1].exc_info is None
    assert errors.count == 50 and errors.last == 'do_x: ValueError: bad 49'


def test_a_different_error_is_logged_in_full(caplog):
    """Another exception type, or another callback, is a kind of its own: logged with its traceback."""
    clock = task.Clock()
    errors = CallbackErrors('DEV', reactor=clock, clock=clock.seconds)
    with caplog.at_level(logging.ERROR, logger='devioc.health'):
        errors.report('x', 1, _error('a'))
        errors.report('y', 1, _error('a'))
        try:
            raise KeyError('k')
        except KeyError as err:
            errors.report('x', 1, err)
    assert [r.exc_info is not None for r in caplog.records if r.name == 'devioc.health'] == [True, True, True]


def test_error_after_a_quiet_window_is_logged_in_full_again(caplog):
    """After a window with no repeat, the same error is logged with its traceback again."""
    clock = task.Clock()
    errors = CallbackErrors('DEV', window=5.0, reactor=clock, clock=clock.seconds)
    with caplog.at_level(logging.ERROR, logger='devioc.health'):
        errors.report('x', 1, _error('a'))
        errors.report('x', 2, _error('a'))
        clock.advance(5.0)                 # summary: repeated 1 time
        clock.advance(6.0)                 # a quiet window
        errors.report('x', 3, _error('a'))
    full = [r for r in caplog.records if r.exc_info is not None]
    assert len(full) == 2 and 'do_x(3) raised' in full[1].getMessage()


def test_flush_logs_pending_repeats_at_shutdown(caplog):
    """flush() writes the pending counts at once and leaves no timer behind."""
    clock = task.Clock()
    errors = CallbackErrors('DEV', reactor=clock, clock=clock.seconds)
    with caplog.at_level(logging.ERROR, logger='devioc.health'):
        for i in range(3):
            errors.report('x', i, _error('a'))
        errors.flush()
    assert 'repeated 2 times' in caplog.records[-1].getMessage()
    assert clock.getDelayedCalls() == []


# -- /proc readings and settings
def test_memory_and_cpu_of_this_process():
    """MEM_USED is this process's RSS; IOC_CPU_LOAD counts the CPU time spent since the last reading."""
    stats = ProcStats()
    rss = int(open(f'/proc/{os.getpid()}/statm').read().split()[1]) * os.sysconf('SC_PAGESIZE')
    assert stats.memory([os.getpid()]) == pytest.approx(rss, rel=0.2)
    assert stats.memory([os.getpid(), 2 ** 22 + 7]) > 0     # a pid that is gone counts 0
    assert stats.cpu([os.getpid()]) == 0.0                  # the first reading has nothing to compare
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    load = stats.cpu([os.getpid()])
    assert 0.0 < load <= 100.0


def test_ca_clients_counts_connections_accepted_on_listening_ports():
    """Established connections to a port the process listens on count; its own outgoing ones do not."""
    stats = ProcStats()
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen()
    before = stats.ca_clients(os.getpid())
    clients = [socket.create_connection(server.getsockname()) for _ in range(2)]
    accepted = [server.accept()[0] for _ in clients]
    try:
        assert stats.ca_clients(os.getpid()) == before + 2
    finally:
        for sock in clients + accepted + [server]:
            sock.close()
    assert stats.ca_clients(None) == 0


def test_health_setting_keyword_then_meta():
    """health=: the keyword wins; else Meta.health; else on."""
    class Plain:
        pass

    class Off:
        class Meta:
            health = False

    assert enabled(Plain, None) and not enabled(Plain, False)
    assert not enabled(Off, None) and enabled(Off, True)
    with pytest.raises(TypeError, match="health='no': give True or False"):
        enabled(Plain, 'no')
    Off.Meta.health = 0
    with pytest.raises(TypeError, match='Off.Meta.health = 0'):
        enabled(Off, None)


def test_app_version_from_the_app_or_its_package():
    """APP_VERSION: the app's __version__ or version (a tuple joined by dots), else ''."""
    class A:
        __version__ = '2.1'

    class B:
        version = (1, 4, 0)

    assert app_version(A()) == '2.1' and app_version(B()) == '1.4.0'
    assert app_version(object()) == ''


# -- the 1 Hz update and the rendered records (fake channels: no IOC needed for the logic)
class FakePV:
    def __init__(self, log, name, fail=False):
        self.log, self.name, self.fail = log, name, fail

    def put(self, value):
        if self.fail:
            raise RuntimeError(f'{self.name} is not connected')
        self.log.append((self.name, value))


class FakeStats(ProcStats):
    def memory(self, pids):
        return 5e7

    def cpu(self, pids):
        return 1.25

    def socket_inodes(self, pid):
        return frozenset()


def fake_health():
    from devioc.health import Health

    model = type('M', (), {'_callbacks': None, '_process': None, '_ready': True})()
    model._errors = CallbackErrors('DEV')
    health = Health(model, 'DEV', stats=FakeStats())
    puts = []
    health.pvs = {suffix: FakePV(puts, suffix) for suffix in health.kinds}
    return model, health, puts


def test_tick_puts_only_what_changed():
    """The first update sends the values that differ from the rendered ones; later ones only changes."""
    model, health, puts = fake_health()
    health._sent = dict(health.values)            # as connect() leaves it: the .db holds these
    health.tick()
    assert dict(puts) == {'HEARTBEAT': 1, 'MEM_USED': 5e7, 'IOC_CPU_LOAD': 1.2}
    puts.clear()
    model._errors.report('x', 1, _error('bad'))
    health.tick()
    assert dict(puts) == {'HEARTBEAT': 2, 'CALLBACK_ERRORS': 1, 'LAST_ERROR': 'do_x: ValueError: bad'}


def test_tick_while_the_ioc_is_down_counts_but_sends_nothing():
    """Not ready (softIoc restarting): HEARTBEAT still counts, nothing is put; a put that fails stops the tick."""
    model, health, puts = fake_health()
    model._ready = False
    health.tick()
    assert puts == [] and health.values['HEARTBEAT'] == 1
    model._ready = True
    health.pvs['HEARTBEAT'].fail = True
    health.tick()
    assert puts == [] and health.values['HEARTBEAT'] == 2


def test_rendered_health_records_hold_the_current_counts():
    """After a restart the new softIoc starts with the counts: RESTARTS, HEARTBEAT, LAST_ERROR."""
    model, health, _ = fake_health()
    health.values.update(HEARTBEAT=41, LAST_ERROR='do_x: ValueError: "quoted"')
    health.restarted()
    text = health.render_db()
    blocks = {b.split('"')[1]: b for b in text.split('record(')[1:]}
    assert set(blocks) == {f'DEV:IOC:{name}' for name in health.kinds}
    assert 'field(VAL, "1")' in blocks['DEV:IOC:RESTARTS'] or 'field(VAL, 1)' in blocks['DEV:IOC:RESTARTS']
    assert '41' in blocks['DEV:IOC:HEARTBEAT'] and blocks['DEV:IOC:HEARTBEAT'].startswith('longin')
    assert blocks['DEV:IOC:LAST_ERROR'].startswith('waveform') and 'quoted' in blocks['DEV:IOC:LAST_ERROR']
    assert blocks['DEV:IOC:MEM_USED'].startswith('ai') and 'byte' in blocks['DEV:IOC:MEM_USED']


def test_text_with_a_dollar_is_put_not_rendered():
    """dbLoadRecords expands "$(x)" in a .db (and fails on an undefined macro): such a LAST_ERROR or
    APP_VERSION is rendered empty and put by the first update instead."""
    model, health, puts = fake_health()
    model._errors.report('x', 1, _error('$(device)'))
    health.sample()
    text = health.render_db()
    assert '$' not in text
    health._sent = dict(health._rendered)           # as connect() leaves it
    health.tick()
    assert dict(puts)['LAST_ERROR'] == 'do_x: ValueError: $(device)'


def test_after_a_restart_the_next_update_puts_every_value():
    """restarted() counts the restart and makes the next update put all values to the new IOC."""
    model, health, puts = fake_health()
    health._sent = dict(health.values)
    health.restarted()
    health.tick()
    assert set(dict(puts)) == set(health.kinds) and dict(puts)['RESTARTS'] == 1


def test_callback_backlog_is_the_events_waiting_for_the_reactor():
    """CALLBACK_BACKLOG is the number of monitor events queued for do_<field> callbacks."""
    from devioc.channels import dispatcher

    model, health, _ = fake_health()
    queued = [(None, i) for i in range(7)]
    dispatcher.events.extend(queued)
    try:
        assert health.sample()['CALLBACK_BACKLOG'] == 7
    finally:
        for item in queued:
            dispatcher.events.remove(item)
    assert health.sample()['CALLBACK_BACKLOG'] == len(dispatcher.events)


def test_devioc_check_refuses_a_field_that_clashes_with_a_health_record(tmp_path, monkeypatch):
    """`devioc check` says E025 as Model(...) would, unless the model's Meta turns health off."""
    from click.testing import CliRunner

    from devioc import cli

    (tmp_path / 'clashing.py').write_text(
        'from devioc import models\n\n\n'
        'class Clash(models.Model):\n'
        "    beat = models.Integer('IOC:HEARTBEAT')\n\n\n"
        'class Quiet(Clash):\n'
        '    class Meta:\n'
        '        health = False\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(cli.main, ['check', 'clashing:Clash', '--device', 'DEV'])
    assert result.exit_code == 1 and 'devioc.E025' in result.output, result.output
    result = CliRunner().invoke(cli.main, ['check', 'clashing:Quiet', '--device', 'DEV'])
    assert result.exit_code == 0 and 'no problems found' in result.output, result.output


class _Unprintable(Exception):
    def __str__(self):
        raise RuntimeError('no text')


def test_an_exception_whose_text_fails_is_still_counted_once_and_logged_once(caplog):
    """An exception whose str() raises (a library's, needing an attribute it lacks) is counted and
    de-duplicated like any other: report() must not raise, or every event would end in Twisted's
    own unhandled-error traceback (once per event: the flood de-dup exists to prevent)."""
    clock = task.Clock()
    errors = CallbackErrors('DEV', reactor=clock, clock=clock.seconds)
    with caplog.at_level(logging.ERROR, logger='devioc.health'):
        for i in range(20):
            try:
                raise _Unprintable()
            except _Unprintable as err:
                errors.report('x', i, err)
    assert errors.count == 20
    assert errors.last.startswith('do_x: _Unprintable: <') and 'no text' not in errors.last
    assert len([r for r in caplog.records if r.exc_info is not None]) == 1
def test_health_records_wait_ends_with_the_ioc_that_died(ca_env):
    """softIoc killed while the health records connect (seen: tests/cli kill -9 right after the IOC
    answered): connect() ends as the model's own wait does, with softIoc's return code (app.server
    then exits 128+N), not after the whole deadline with a plain 'did not connect' (exit status 1)."""
    import threading

    from twisted.internet import reactor

    from devioc.models import Model
    from devioc.softioc import IOCStartError

    model, health, _ = fake_health()
    model._process = type('P', (), {'load_failed': False, 'exited': threading.Event(), 'returncode': -9})()
    model._process.exited.set()
    model._start_failure = lambda text: text
    model._wait = lambda done, deadline, failure: Model._wait(model, done, deadline, failure)
    health.device = health.device + 'NOSUCH'
    health.names = {suffix: f'{name}NOSUCH' for suffix, name in health.names.items()}   # never connect
    with pytest.raises(IOCStartError) as err:
        health.connect(reactor, time.monotonic() + 30)
    assert err.value.returncode == -9
    for pv in health.pvs.values():
        pv.disconnect()
