"""devioc: declare an EPICS soft IOC as a Python model class and run it on EPICS base's softIoc.

Import what you need (``from devioc import models, log``); importing the package does no work.
``devioc.run`` (:func:`devioc.runner.run`) and ``devioc.every`` (:func:`devioc.app.every`) are
imported when first used.
"""
from __future__ import annotations

from typing import Any

__version__ = '2026.11.0'
__all__ = ['run', 'every']


def __getattr__(name: str) -> Any:
    if name == 'run':
        from .runner import run
        return run
    if name == 'every':
        from .app import every
        return every
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
