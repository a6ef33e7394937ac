"""caproto's ``custom_write.py`` in devioc: each write to A or B is written into a file.

Original: caproto/caproto ``caproto/ioc_examples/custom_write.py`` (caproto 1.3.0).
Run: ``python -m devioc run examples/peers/custom_write.py:CustomWriteApp --device custom_write``
serves ``custom_write:directory`` (the system temporary directory) and ``custom_write:A``,
``custom_write:B`` (0): every client write, the same value too, writes the value and a newline to
``<directory>/A`` or ``<directory>/B``.

Differs: ``directory`` is a CHAR waveform of 256 bytes (``caput -S``/``caget -S``), as the original's
``report_as_string``. The file is written after the record took the value: when it cannot be
written (no such directory) the error is logged and the PV keeps the value, where caproto's putter
raises before the value is taken and the client's put fails.
"""
import pathlib
import tempfile

from devioc import log, models

logger = log.get_module_logger(__name__)


class CustomWrite(models.Model):
    directory = models.String('directory', max_length=255, default=tempfile.gettempdir(),
                              desc='The directory to write data to')
    A = models.Integer('A', desc='Writes to (DIRECTORY)/A')
    B = models.Integer('B', desc='Writes to (DIRECTORY)/B')


class CustomWriteApp:
    """Each write to A or B is written into the file <directory>/A or <directory>/B."""

    def __init__(self, device, **kwargs):
        self.ioc = CustomWrite(device, callbacks=self, **kwargs)

    def write_A(self, pv, value, ioc):
        filename = pathlib.Path(ioc.directory.get()) / pv.name[-1]
        with open(filename, 'wt') as f:
            print(f'{value}', file=f)
        logger.warning('Wrote %s to %s', value, filename)

    write_B = write_A


if __name__ == '__main__':
    import devioc
    devioc.run(CustomWriteApp)
