"""Logging helpers, compatible with the original devioc.log.

``get_module_logger(__name__)`` gives a module its logger; ``log_to_console(level)`` sends all
records to stderr with timestamps; ``IMPORTANT`` is a level between INFO and WARNING.
"""
from __future__ import annotations

import logging
import os
import sys
from logging.handlers import RotatingFileHandler

LOG_LEVEL = logging.DEBUG
IMPORTANT = 25
logging.addLevelName(IMPORTANT, 'IMPORTANT')

CONSOLE_FORMAT = '%(asctime)s %(levelname)-9s [%(name)s] %(message)s'
DATE_FORMAT = '%Y-%m-%d %H:%M:%S'


class TermColor:
    """ANSI colour codes for console output."""

    WARNING = '\033[93m'
    FAIL = '\033[91m'
    OKBLUE = '\033[94m'
    BOLD = '\033[1m'
    ENDC = '\033[0m'

    @classmethod
    def warn(cls, text: str) -> str:
        return f'{cls.WARNING}{text}{cls.ENDC}'

    @classmethod
    def error(cls, text: str) -> str:
        return f'{cls.FAIL}{text}{cls.ENDC}'

    @classmethod
    def debug(cls, text: str) -> str:
        return f'{cls.OKBLUE}{text}{cls.ENDC}'

    @classmethod
    def emphasis(cls, text: str) -> str:
        return f'{cls.BOLD}{text}{cls.ENDC}'


def use_colour(stream) -> bool:
    """True when ``stream`` is a terminal that shows colours.

    Not when ``NO_COLOR`` is set (https://no-color.org; the generated systemd unit and SysV script
    set it, because procServ gives the app a pty and keeps everything it shows in its log file), nor
    when ``TERM`` is unset or ``dumb`` (daemons, pipes, editors' consoles).
    """
    if os.environ.get('NO_COLOR'):
        return False
    if os.environ.get('TERM', 'dumb') == 'dumb':
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class ColoredConsoleHandler(logging.StreamHandler):
    """A stream handler that colours warnings and errors when writing to a terminal (:func:`use_colour`)."""

    def format(self, record: logging.LogRecord) -> str:
        msg = super().format(record)
        if not use_colour(self.stream):
            return msg
        if record.levelno == logging.WARNING:
            return TermColor.warn(msg)
        if record.levelno > logging.WARNING:
            return TermColor.error(msg)
        if record.levelno == IMPORTANT:
            return TermColor.emphasis(msg)
        if record.levelno == logging.DEBUG:
            return TermColor.debug(msg)
        return msg


def get_module_logger(name: str) -> logging.Logger:
    """Return the logger for a module; the original's helper, kept for compatibility.

    The full dotted name is kept (the original kept only the last part, which made loggers of
    different packages collide), so ``logging.getLogger('devioc')`` configures all of devioc.
    """
    return logging.getLogger(name)


def log_to_console(level: int = LOG_LEVEL) -> None:
    """Send log records at ``level`` and above to stderr, with timestamps.

    Calling it again only changes the level: records are never printed twice.
    """
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, ColoredConsoleHandler):
            handler.setLevel(level)
            break
    else:
        console = ColoredConsoleHandler(sys.stderr)
        console.setLevel(level)
        console.setFormatter(logging.Formatter(CONSOLE_FORMAT, DATE_FORMAT))
        root.addHandler(console)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)


def log_to_file(filename: str, level: int = logging.DEBUG) -> None:
    """Also send log records to a rotating file (1 MB x 10)."""
    handler = RotatingFileHandler(filename, maxBytes=1_000_000, backupCount=10)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT, DATE_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
