"""devioc.rpc without an IOC: declarations, their checks (E028), argument coercion, the JSON encoding
and the reply history."""
import inspect

import numpy as np
import pytest

from devioc import models, rpc
from devioc.checks import ModelError


class App:
    @models.function
    def plain(self, a: float, n: int = 3, flag: bool = False, label: str = 'x', data: np.ndarray = None,
              ints: list[int] = (), extra: dict = None) -> float:
        """Adds things.

        More text that is not the summary."""
        return a

    @models.function(name='go', timeout=5, length=100, size=1024, threaded=True)
    def moves(self, where) -> None:
        pass

    def not_served(self, x: int) -> int:
        return x


def test_a_declaration_records_each_argument_kind_default_and_the_return_kind():
    """Each type hint maps to its kind; defaults are kept; self is not an argument; the docstring's
    first paragraph is the doc."""
    spec = App.plain._devioc_function
    kinds = [(a.name, a.kind) for a in spec.arguments]
    assert kinds == [('a', 'float'), ('n', 'int'), ('flag', 'bool'), ('label', 'str'), ('data', 'array'),
                     ('ints', 'array'), ('extra', 'json')]
    assert spec.arguments[0].default is inspect.Parameter.empty and spec.arguments[1].default == 3
    assert spec.arguments[5].dtype == 'int64'
    assert spec.returns == 'float' and spec.doc == 'Adds things.' and spec.problems == []
    assert spec.signature().startswith('plain(a: float, n: int = 3, flag: bool = False')


def test_options_of_the_decorator_are_kept_and_the_served_name_may_differ():
    spec = App.moves._devioc_function
    assert (spec.name, spec.method, spec.timeout, spec.length, spec.size, spec.threaded) == \
        ('go', 'moves', 5.0, 100, 1024, True)
    assert spec.arguments[0].kind == 'json' and spec.returns == 'none'


def test_functions_of_finds_only_the_declared_methods_bound_to_the_app():
    app = App()
    found = rpc.functions_of(app)
    assert sorted(found) == ['go', 'plain']
    assert found['plain'][1].__self__ is app


@pytest.mark.parametrize('kwargs, text', [
    ({'timeout': 0}, 'timeout must be a positive number'),
    ({'timeout': True}, 'timeout must be a positive number'),
    ({'size': 100}, 'size must be an int from 256'),
    ({'length': 0}, 'length must be an int from 1'),
    ({'name': 'has:colon'}, 'is not a plain name'),
])
def test_bad_options_are_e028_problems(kwargs, text):
    def method(self, a: int) -> int:
        return a
    spec = models.function(**kwargs)(method)._devioc_function
    assert any(text in msg for msg, _ in spec.problems), spec.problems


def test_star_args_and_arguments_named_like_the_functions_own_pvs_are_problems():
    def method(self, status: int, *rest, **more):
        pass
    messages = [msg for msg, _ in models.function(method)._devioc_function.problems]
    assert any("'status'" in m for m in messages)
    assert sum('cannot be served' in m for m in messages) == 2


class Small(models.Model):
    taken = models.Float('go:where')


def test_problems_name_long_pv_names_and_names_taken_by_fields():
    """E028 for a PV name over 60 bytes (with the device) and for a field named like a function's PV."""
    messages = rpc.problems(Small, App(), 'D' * 50)
    texts = [m.msg for m in messages]
    assert all(m.id == 'devioc.E028' for m in messages)
    assert any('over 60 bytes' in t and 'plain:label' in t for t in texts)
    assert any("field named 'go:where'" in t for t in texts)
    assert rpc.problems(Small, App(), 'DEV') and not [t for t in
                                                       (m.msg for m in rpc.problems(Small, App(), 'DEV'))
                                                       if 'over 60' in t]


def test_a_model_whose_app_has_a_bad_function_does_not_start(tmp_path, monkeypatch, device):
    """The model raises ModelError (E028) before starting softIoc."""
    monkeypatch.setenv('DEVIOC_CACHE_DIR', str(tmp_path))

    class Bad:
        @models.function
        def spread(self, *values: float) -> float:
            return 0.0

    class Empty(models.Model):
        level = models.Float('level')

    with pytest.raises(ModelError, match=r'Bad.spread: \(devioc.E028\) \*values cannot be served'):
        Empty(device, callbacks=Bad())


def test_coerce_converts_what_is_safe_and_names_the_argument_otherwise():
    arg = rpc.Argument
    assert rpc.coerce(arg('a', 'float'), 2) == 2.0 and isinstance(rpc.coerce(arg('a', 'float'), 2), float)
    assert rpc.coerce(arg('n', 'int'), 4.0) == 4
    assert rpc.coerce(arg('f', 'bool'), 1) is True
    np.testing.assert_array_equal(rpc.coerce(arg('d', 'array'), [1, 2]), np.array([1.0, 2.0]))
    image = rpc.coerce(arg('d', 'array'), np.arange(6).reshape(2, 3))   # not flattened behind the caller's back
    assert image.shape == (2, 3) and image.dtype == np.float64
    assert rpc.coerce(arg('d', 'array'), 5).shape == (1,)
    for argument, value in [(arg('n', 'int'), 4.5), (arg('a', 'float'), 'x'), (arg('s', 'str'), 3),
                            (arg('f', 'bool'), 2), (arg('n', 'int'), True), (arg('d', 'array'), 'abc')]:
        with pytest.raises(TypeError, match=f"argument '{argument.name}' must be {argument.kind}"):
            rpc.coerce(argument, value)


def test_numpy_arrays_and_scalars_survive_the_json_round_trip():
    value = {'a': np.arange(6, dtype=np.int32).reshape(2, 3), 'x': np.float32(1.5), 'n': [1, 'b']}
    back = rpc.json.loads(rpc.dumps(value), object_hook=rpc.decode_hook)
    np.testing.assert_array_equal(back['a'], value['a'])
    assert back['a'].dtype == np.int32 and back['x'] == 1.5 and back['n'] == [1, 'b']


def test_a_value_json_cannot_carry_is_a_clear_type_error():
    with pytest.raises(TypeError, match='a object cannot be sent as JSON'):
        rpc.dumps(object())


def test_the_reply_history_keeps_the_newest_replies_that_fit_and_refuses_an_oversized_one():
    fn = rpc._Function(App.moves._devioc_function, None, 'hidden')  # size=1024
    for index in range(100):
        text = rpc._history(fn, {'id': str(index), 'ok': True, 'result': index})
    replies = rpc.json.loads(text)
    assert len(text.encode()) <= 1023
    assert replies[0]['id'] == '99' and [r['id'] for r in replies] == [str(i) for i in range(99, 99 - len(replies), -1)]
    text = rpc._history(fn, {'id': 'big', 'ok': True, 'result': 'x' * 2000})
    first = rpc.json.loads(text)[0]
    assert first['id'] == 'big' and first['ok'] is False and 'size=' in first['error']['message']


def test_devioc_call_refuses_a_positional_value_after_keyword_ones():
    """Bad usage (exit 2) before any network access."""
    from click.testing import CliRunner

    from devioc.cli import main

    result = CliRunner().invoke(main, ['call', 'DEV', 'mount', 'port=L3', 'fast'])
    assert result.exit_code == 2 and "'fast': a positional value after NAME=VALUE ones" in result.output


def test_devioc_call_to_a_device_nobody_serves_says_what_to_check():
    """Exit 1 naming the PV that did not connect and what to check."""
    from click.testing import CliRunner

    from devioc.cli import main

    result = CliRunner().invoke(main, ['call', 'NOBODY-SERVES-THIS', '--list', '--connect-timeout', '0.5'])
    assert result.exit_code == 1
    assert 'NOBODY-SERVES-THIS:rpc:functions did not connect within 0.5 s' in result.output
    assert 'EPICS_CA_ADDR_LIST' in result.output


def test_cli_values_are_json_when_they_parse_and_text_otherwise():
    from devioc.cli import _call_value

    assert _call_value('3') == 3 and _call_value('1.5') == 1.5 and _call_value('[1, 2]') == [1, 2]
    assert _call_value('lA1') == 'lA1' and _call_value('"3"') == '3' and _call_value('true') is True


def test_a_function_named_with_a_double_underscore_starts_and_is_served(device, ca_port):
    """A served name holding '__' (go__home) used to crash the start with a bare KeyError('go'): the
    records' attributes were split at the first '__'."""
    from devioc.client import Client

    class Home(models.Model):
        level = models.Float('level')

    class Robot:
        @models.function
        def go__home(self, speed: float = 1.0) -> str:
            return f'home at {speed}'

        @models.function
        def go(self, home__speed: float = 2.0) -> float:
            return home__speed

    ioc = Home(device, callbacks=Robot(), ca_port=ca_port)
    try:
        assert sorted(ioc._rpc.functions) == ['go', 'go__home']
        assert set(ioc._rpc.functions['go__home'].pvs) == {'speed', 'status', 'message', 'return', 'reply'}
        assert set(ioc._rpc.functions['go'].pvs) == {'home__speed', 'status', 'message', 'return', 'reply'}
        assert sorted(Client(device).functions) == ['go', 'go__home']
    finally:
        ioc.shutdown()


def test_an_argument_that_would_be_the_list_of_functions_is_e028(device):
    class Listed(models.Model):
        level = models.Float('level')

    class Bad:
        @models.function
        def rpc(self, functions: int = 1) -> int:
            return functions

    with pytest.raises(ModelError, match=r'rpc:functions, a PV of function rpc, is devioc\'s list of functions'):
        Listed(device, callbacks=Bad())
