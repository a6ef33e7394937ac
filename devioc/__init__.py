"""devioc: declare an EPICS soft IOC as a Python model class and run it on EPICS base's softIoc.

Import what you need (``from devioc import models, log``); importing the package does no work.
"""
__version__ = '2026.11.0'
