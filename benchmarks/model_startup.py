"""Time a devioc model's constructor (render, softIoc start, every record connected): N Float records.

Usage: python benchmarks/model_startup.py N [N ...]    (loopback only, private CA ports)
"""
import sys
import time

from devioc import testing

testing.isolate()

from devioc import models  # noqa: E402  (after the CA environment is set)

for n in [int(a) for a in sys.argv[1:]] or [10, 2000]:
    model_class = type(f'Start{n}', (models.Model,), {f'f{i}': models.Float(f'f{i}') for i in range(n)})
    started = time.perf_counter()
    model = model_class(f'STARTUP{n}')
    print(f'{n} records: constructor returned after {time.perf_counter() - started:.3f} s')
    model.shutdown()
