"""A small app with autosaved fields, run as a subprocess by the autosave tests and benchmark.

``python saved_app.py DEVICE [--states A,B,C] [--level-kind float|int]``: serves the model on the
environment's CA port, prints ``FIRST <field> <value>`` for the first value each ``do_<field>``
sees, then ``READY``, and shuts down cleanly on SIGTERM (the model's shutdown writes the file).
"""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('device')
    parser.add_argument('--states', default='A,B,C')
    parser.add_argument('--level-kind', default='float', choices=['float', 'int'])
    args = parser.parse_args(argv)

    import logging

    from twisted.internet import reactor

    from devioc import log, models
    from devioc.shell import take_signals

    log.log_to_console(logging.INFO)
    take_signals(reactor)

    level_kind = models.Float if args.level_kind == 'float' else models.Integer

    class Saved(models.Model):
        level = level_kind('level', default=1, autosave=('VAL', 'HIHI', 'EGU'))
        mode = models.Enum('mode', choices=args.states.split(','), autosave=True)
        note = models.String('note', max_length=80, default='fresh', autosave=True)
        plain = models.Integer('plain', default=5)

        class Meta:
            access_level = 1   # clients edit configuration fields here (ASL1: HIHI, EGU)

    class App:
        def __init__(self, device):
            self.seen = set()
            self.ioc = Saved(device, callbacks=self)

        def _first(self, name, value):
            if name not in self.seen:
                self.seen.add(name)
                print(f'FIRST {name} {value!r}', flush=True)

        def do_level(self, pv, value, ioc):
            self._first('level', value)

        def do_mode(self, pv, value, ioc):
            self._first('mode', value)

        def do_note(self, pv, value, ioc):
            self._first('note', value)

        def shutdown(self):
            self.ioc.shutdown()

    app = App(args.device)
    reactor.addSystemEventTrigger('before', 'shutdown', app.shutdown)
    reactor.callWhenRunning(lambda: print('READY', flush=True))
    reactor.run()


if __name__ == '__main__':
    sys.exit(main())
