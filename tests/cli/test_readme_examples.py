"""The README's testing example runs as written, with devioc's pytest plugin, and passes."""
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / 'README.md'


def test_readme_testing_example_passes(tmp_path, ca_env):
    """The "Testing your IOC" example (callbacks on a running reactor) passes under pytest."""
    section = README.read_text().split('## Testing your IOC', 1)[1].split('\n## ', 1)[0]
    code = re.search(r'```python\n(.*?)```', section, re.S).group(1)
    (tmp_path / 'conftest.py').write_text("pytest_plugins = ['devioc.testing']\n")
    (tmp_path / 'test_example.py').write_text(code)
    env = {k: v for k, v in ca_env.items() if k != 'PYTEST_ADDOPTS'}
    result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', str(tmp_path)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert '1 passed' in result.stdout, result.stdout
