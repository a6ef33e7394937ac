"""A script that makes a model and ends without shutdown(): the atexit hook stops the IOC quietly."""
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import sys
    from devioc import models


    class Left(models.Model):
        x = models.Integer('x')


    ioc = Left(sys.argv[1])
    print('made', ioc._process.pid, flush=True)
''')


def test_a_model_left_running_at_exit_is_stopped_without_a_traceback(tmp_path, ca_env, device):
    """The atexit shutdown ran after pyepics had finalized libca and printed "Exception ignored in
    atexit callback ... AttributeError: 'object' object has no attribute 'ca_clear_subscription'"."""
    (tmp_path / 'left.py').write_text(SCRIPT)
    result = subprocess.run([sys.executable, 'left.py', device], cwd=tmp_path, env=ca_env, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'made' in result.stdout
    assert 'Traceback' not in result.stderr and 'Exception ignored' not in result.stderr, result.stderr
