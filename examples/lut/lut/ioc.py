"""The look-up-table IOC: drives an output PV from an input PV through an interpolated table.

Run it with ``bin/app.server --device LUT1 --macro input=MOTOR:pos --macro output=OTHER:setpoint``. The input and output are any PVs on the network, named by the ``input`` and
``output`` macros. Whenever the target changes (the input moved, the table, fit or an offset was
edited, control turned ON) and control is ON, the target is written to the output PV.

    target = fit(clip(input - xoffset, xmin, xmax)) + yoffset     (see lut.table)

PVs (``<device>:<name>``):

    fit        mbbo     fit kind: LINEAR NEAREST NEXT PREVIOUS SPLINE0 SPLINE1 SPLINE2 SPLINE3 POLY
    degree     longout  POLY degree (0..10)
    control    bo       OFF/ON: write the target to the output PV (ON) or only compute it (OFF)
    xoffset    ao       subtracted from the input before the table look-up
    yoffset    ao       added to the table's value to make the target
    input      ai       latest value of the input PV (read-only)
    target     ai       target computed from the input (read-only)
    output     ai       latest value of the output PV (read-only)
    new        ao       write a value: adds the point (input - xoffset, value - yoffset), replacing
                        the point at that x; so the target at the current input becomes the value
    delete     bo       write 1: deletes the point nearest to the current input (in table x)
    clear      bo       write 1: deletes every point
    save       bo       write 1: writes the autosave file now (edits are saved within a second anyway)
    points     waveform the table as x0 y0 x1 y1 ... (one record, so autosave keeps x and y together)
    xvals      waveform table x values, sorted (npoints valid elements; one NaN when empty)
    yvals      waveform table y values
    npoints    longin   number of points in the table
    status     mbbi     OK / ALARM; ALARM carries severity MAJOR (STAT=STATE) for alarm handlers
    message    waveform (CHAR, read with ``caget -S``) what is wrong (first), and what was done last
    input_pv   waveform (CHAR) name of the input PV
    output_pv  waveform (CHAR) name of the output PV

Settings (fit, degree, offsets, control) and the points persist through devioc's autosave
(``autosave=True`` on those records and on ``points``; the file is
``$DEVIOC_STATE_DIR/<device>/autosave.json``): they are restored into the records before the IOC
starts, so the app starts from them. ``--data DIR`` imports the table file of earlier versions
(``DIR/<device>.json``) once, when autosave holds no table; it is then renamed
``.imported-<time>`` (an unreadable one ``.corrupt-<time>``, reported in ``message``). A table that
cannot serve the fit (too few points, duplicate x, NaN), a disconnected input or output PV, or a
failed save sets ``status`` to ALARM with the reason in ``message``; the output is then not
written, and the app keeps running.

Threading: devioc calls ``do_<field>`` on the reactor thread. The input and output PVs are plain
pyepics PVs whose callbacks arrive on libca's thread; :class:`ExternalPV` hands every event to the
reactor with ``callFromThread``, so all state of the app is only touched on the reactor thread.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any, Callable, List, Mapping, Optional, Tuple

import numpy as np

from devioc import models

from .table import MAX_DEGREE, Fit, Settings, Table, TableError, TableFileError, TableStore

logger = logging.getLogger(__name__)

MAX_POINTS = 256
MESSAGE_LENGTH = 200
FIT_CHOICES = [fit.name for fit in Fit]
OK, ALARM = 0, 1


class LUT(models.Model):
    """The records of the look-up-table IOC (see the module docstring)."""

    fit = models.Enum('fit', choices=FIT_CHOICES, default=0, desc='Fit kind', autosave=True)
    degree = models.Integer('degree', min_val=0, max_val=MAX_DEGREE, default=1, desc='POLY degree',
                            autosave=True)
    control = models.Toggle('control', zname='OFF', oname='ON', high=0, default=1,
                            desc='Write target to output', autosave=True)
    xoffset = models.Float('xoffset', default=0.0, prec=4, desc='Input offset', autosave=True)
    yoffset = models.Float('yoffset', default=0.0, prec=4, desc='Output offset', autosave=True)
    input = models.FloatInput('input', prec=4, desc='Input PV value')
    target = models.FloatInput('target', prec=4, desc='Target from the table')
    output = models.FloatInput('output', prec=4, desc='Output PV value')
    new = models.Float('new', prec=4, MDEL=-1, desc='New point value at input')
    delete = models.Toggle('delete', zname='IDLE', oname='DELETE', desc='Delete point nearest input')
    clear = models.Toggle('clear', zname='IDLE', oname='CLEAR', desc='Delete all points')
    save = models.Toggle('save', zname='IDLE', oname='SAVE', desc='Write the autosave file now')
    points = models.Array('points', type=float, length=2 * MAX_POINTS, desc='Table x0 y0 x1 y1 ...',
                          autosave=True)
    xvals = models.Array('xvals', type=float, length=MAX_POINTS, desc='Table x values')
    yvals = models.Array('yvals', type=float, length=MAX_POINTS, desc='Table y values')
    npoints = models.IntegerInput('npoints', desc='Number of table points')
    status = models.EnumInput('status', choices=['OK', 'ALARM'], default=0, ZRSV='NO_ALARM',
                              ONSV='MAJOR', desc='Table status')
    message = models.StringInput('message', max_length=MESSAGE_LENGTH, desc='Status message')
    input_pv = models.StringInput('input_pv', max_length=80, desc='Input PV name')
    output_pv = models.StringInput('output_pv', max_length=80, desc='Output PV name')


class ExternalPV:
    """A PV of another IOC, watched with pyepics; its events are delivered on the reactor thread.

    ``on_value(value)`` and ``on_connection(connected)`` run on the reactor thread, in order.
    """

    def __init__(self, name: str, reactor: Any, on_value: Callable[[Any], None],
                 on_connection: Callable[[bool], None]):
        import epics

        self.name = name
        self.connected = False
        self._reactor = reactor
        self._on_value = on_value
        self._on_connection = on_connection
        self._pv = epics.PV(name, auto_monitor=True, callback=self._value_cb,
                            connection_callback=self._connection_cb)

    def _value_cb(self, value: Any = None, **_: Any) -> None:  # libca thread
        if self._on_value is not None:
            self._reactor.callFromThread(self._deliver_value, value)

    def _connection_cb(self, conn: bool = False, **_: Any) -> None:  # libca thread
        if self._on_connection is not None:
            self._reactor.callFromThread(self._deliver_connection, bool(conn))

    def _deliver_value(self, value: Any) -> None:
        if self._on_value is not None:
            self._on_value(value)

    def _deliver_connection(self, connected: bool) -> None:
        self.connected = connected
        if self._on_connection is not None:
            self._on_connection(connected)

    def put(self, value: float) -> None:
        """Write without waiting; the caller checks ``connected`` first (a put never blocks)."""
        self._pv.put(value, wait=False)

    def close(self) -> None:
        """Stop delivering events and drop the channel."""
        self._on_value = self._on_connection = None
        try:
            self._pv.clear_callbacks()
            self._pv.disconnect()
        except Exception:  # libca may already be gone at interpreter exit
            pass


def _pairs(points: Any) -> List[Tuple[float, float]]:
    """The (x, y) points of the ``points`` record (x0 y0 x1 y1 ...); NaN pairs (an empty table) dropped."""
    flat = [float(v) for v in np.ravel(points if points is not None else [])]
    pairs = zip(flat[0::2], flat[1::2])
    return [(x, y) for x, y in pairs if not (math.isnan(x) and math.isnan(y))]


def _number(value: Any) -> Optional[float]:
    """Return a finite float from a CA value, or None."""
    try:
        number = float(np.ravel(value)[0]) if np.ndim(value) else float(value)
    except (TypeError, ValueError, IndexError):
        return None
    return number if math.isfinite(number) else None


class LUTApp:
    """The look-up-table application: table, settings, file, and the two external PVs.

    Args:
        device: the device name; records are ``<device>:<name>``.
        macros: must hold ``input`` and ``output``, the names of the PVs to read and drive.
        data_dir: directory of an earlier version's table file ``<device>.json``, imported once
            when autosave holds no table (None: no import).
        reactor: the Twisted reactor (the global one by default).
        **model_kwargs: passed to the model (``ca_port``, ``command`` ...).
    """

    def __init__(self, device: str, macros: Optional[Mapping[str, str]] = None,
                 data_dir: Optional[str] = None, reactor: Any = None, **model_kwargs: Any):
        if reactor is None:
            from twisted.internet import reactor
        macros = dict(macros or {})
        missing = [key for key in ('input', 'output') if not macros.get(key)]
        if missing:
            raise ValueError('missing ' + ' and '.join(f'--macro {key}=<PV name>' for key in missing)
                             + ': input is the PV the table reads, output the PV it drives')
        self.reactor = reactor
        self.store = TableStore(data_dir, device) if data_dir else None
        self.file_problem = ''
        self.save_problem = ''
        self.table_problem = ''
        self.note = ''
        self.input_value: Optional[float] = None
        self.target_value: Optional[float] = None
        self.last_written: Optional[float] = None
        self.input_connected = False
        self.output_connected = False
        self._new_seen = False
        self._shown = None
        self._imported: dict = {}
        # the records come up holding the autosaved settings and table: the app starts from them
        # a softIoc that dies is started again (the app and its links stay up): restart=True by default
        self.ioc = LUT(device, callbacks=self, macros=macros, **{'restart': True, **model_kwargs})
        self.settings = self._restored_settings()
        self.table = Table(_pairs(self.ioc.points.get()))
        if not len(self.table) and self.store is not None:
            self._import()
        self.ioc.input_pv.put(macros['input'])
        self.ioc.output_pv.put(macros['output'])
        self.source = ExternalPV(macros['input'], reactor, self.on_input, self.on_input_connection)
        self.sink = ExternalPV(macros['output'], reactor, self.on_output, self.on_output_connection)
        self.publish_table()
        self.recompute()

    # -- start-up ---------------------------------------------------------------------------
    def _restored_settings(self) -> Settings:
        ioc = self.ioc
        return Settings(fit=Fit(int(ioc.fit.get())), degree=int(ioc.degree.get()),
                        xoffset=float(ioc.xoffset.get()), yoffset=float(ioc.yoffset.get()),
                        control=bool(ioc.control.get()))

    def _import(self) -> None:
        """Take the table and settings of an earlier version's file (``--data``), once."""
        try:
            table, settings = self.store.load()
        except TableFileError as exc:
            try:
                moved = self.store.quarantine()
                where = f'moved to {moved}'
            except OSError as err:
                where = f'left in place ({err.strerror})'
            self.file_problem = f'bad table file, {where}; started empty: {exc}'
            logger.error('%s', self.file_problem)
            return
        if settings is None:  # no file
            return
        self.table, self.settings = table, settings
        self._imported = {name: getattr(settings, name) for name in ('fit', 'degree', 'xoffset', 'yoffset', 'control')
                          if getattr(settings, name) != getattr(self._restored_settings(), name)}
        for name in ('degree', 'xoffset', 'yoffset'):
            getattr(self.ioc, name).put(getattr(settings, name))
        self.ioc.fit.put(int(settings.fit))
        self.ioc.control.put(int(bool(settings.control)))
        target = f'{self.store.path}.imported-{time.strftime("%Y%m%dT%H%M%S")}'
        try:
            os.replace(self.store.path, target)
        except OSError as err:
            target = f'{self.store.path} (not renamed: {err.strerror})'
        self.note = f'imported {len(table)} points from {target}'
        logger.info('%s', self.note)

    # -- external PVs (reactor thread) --------------------------------------------------------
    def on_input(self, value: Any) -> None:
        """A new input value: publish it and drive the output."""
        self.input_value = _number(value)
        if self.input_value is not None:
            self.ioc.input.put(self.input_value)
        self.recompute()

    def on_input_connection(self, connected: bool) -> None:
        """The input PV (dis)connected: without it there is no target."""
        self.input_connected = connected
        if not connected:
            self.input_value = None
        self.recompute()

    def on_output(self, value: Any) -> None:
        """Mirror the output PV's value."""
        number = _number(value)
        if number is not None:
            self.ioc.output.put(number)

    def on_output_connection(self, connected: bool) -> None:
        """The output PV (dis)connected; a reconnect writes the current target again."""
        self.output_connected = connected
        self.last_written = None
        self.recompute()

    # -- settings (devioc callbacks, reactor thread) ------------------------------------------
    def do_fit(self, pv, value, ioc) -> None:
        self._set('fit', Fit(int(value)))

    def do_degree(self, pv, value, ioc) -> None:
        self._set('degree', int(value))

    def do_xoffset(self, pv, value, ioc) -> None:
        self._set('xoffset', float(value))

    def do_yoffset(self, pv, value, ioc) -> None:
        self._set('yoffset', float(value))

    def do_control(self, pv, value, ioc) -> None:
        self.last_written = None  # turning control ON writes the target even if unchanged
        self._set('control', bool(value))

    def _set(self, name: str, value: Any) -> None:
        if name in self._imported:  # a value the import put: the record's older ones are stale
            if value == self._imported[name]:
                del self._imported[name]
            return
        if getattr(self.settings, name) == value:
            return  # the first value after start, or an echo of our own state
        setattr(self.settings, name, value)   # autosave keeps the record's new value
        shown = value.name if isinstance(value, Fit) else value
        self.note = f'{name} set to {shown}'
        self.recompute()

    # -- table edits ------------------------------------------------------------------------
    def do_new(self, pv, value, ioc) -> None:
        if not self._new_seen:  # the record's value at start is not a request
            self._new_seen = True
            return
        if self.input_value is None:
            self.note = f'point not added: the input PV {self.source.name} has no value'
            self.update_status()
            return
        try:
            x, y = self.table.at_input(self.input_value, value, self.settings)
            if len(self.table) >= MAX_POINTS and not self.table.has_x(x):
                raise TableError(f'the table is full ({MAX_POINTS} points): delete points first')
            old = self.table.add(x, y)
        except TableError as exc:
            self.note = f'point not added: {exc}'
            self.update_status()
            return
        what = f'replaced ({old[0]:.6g}, {old[1]:.6g}) by' if old else 'added'
        self.table_changed(f'{what} ({x:.6g}, {y:.6g})')

    def do_delete(self, pv, value, ioc) -> None:
        if not value:
            return
        if self.input_value is None:
            self.note = f'nothing deleted: the input PV {self.source.name} has no value'
            self.update_status()
            return
        try:
            x, y = self.table.remove_nearest(self.input_value - self.settings.xoffset)
        except TableError as exc:
            self.note = f'nothing deleted: {exc}'
            self.update_status()
            return
        self.table_changed(f'deleted ({x:.6g}, {y:.6g})')

    def do_clear(self, pv, value, ioc) -> None:
        if value:
            self.table.clear()
            self.table_changed('table cleared')

    def do_save(self, pv, value, ioc) -> None:
        if value:
            if self.save_file():
                self.note = f'saved {len(self.table)} points to {self.ioc._autosave.path}'
            self.update_status()

    def table_changed(self, note: str) -> None:
        """Publish, save and apply an edited table."""
        logger.info('%s', note)
        self.note = note
        self.file_problem = ''  # the new table replaces a bad imported file's
        self.publish_table()   # points is autosaved: written within a second
        self.recompute()

    # -- output -----------------------------------------------------------------------------
    def publish_table(self) -> None:
        """Write the table arrays and point count to their records."""
        xs, ys = self.table.xs, self.table.ys
        if not len(xs):  # a CA put carries at least one element
            xs = ys = np.array([np.nan])
        self.ioc.xvals.put(xs)
        self.ioc.yvals.put(ys)
        self.ioc.points.put(np.column_stack([xs, ys]).ravel())
        self.ioc.npoints.put(len(self.table))

    def save_file(self) -> bool:
        """Write the autosave file now; a failure is reported in status, never raised."""
        saver = self.ioc._autosave
        if not saver.flush():
            self.save_problem = f'cannot save {saver.path}: see the log'
            return False
        self.save_problem = ''
        self.file_problem = ''  # a good file replaces the bad one
        return True

    def recompute(self) -> None:
        """Compute the target from the input and write it to the output when control is ON."""
        self.target_value = None
        try:
            self.table.check(self.settings.fit, self.settings.degree)
            self.table_problem = ''
        except TableError as exc:
            self.table_problem = str(exc)
        if not self.table_problem and self.input_value is not None:
            try:
                self.target_value = self.table.evaluate(self.input_value, self.settings)
            except TableError as exc:  # not expected after check(); never crash on it
                self.table_problem = str(exc)
        if self.target_value is not None:
            self.ioc.target.put(self.target_value)
            self.drive()
        self.update_status()

    def drive(self) -> None:
        """Write the target to the output PV if control is ON and it differs from the last write."""
        target = self.target_value
        if target is None or not self.settings.control or not self.output_connected:
            return
        if target == self.last_written:
            return
        try:
            self.sink.put(target)
        except Exception as exc:  # a refused put must not stop the app
            logger.error('cannot write %s to %s: %s', target, self.sink.name, exc)
            return
        self.last_written = target

    def problems(self) -> List[str]:
        """Return what is wrong now, most important first."""
        found = [p for p in (self.file_problem, self.table_problem, self.save_problem) if p]
        if not self.input_connected:
            found.append(f'input PV {self.source.name} is not connected')
        if self.settings.control and not self.output_connected:
            found.append(f'output PV {self.sink.name} is not connected')
        return found

    def update_status(self) -> None:
        """Publish status and message (only when they change)."""
        problems = self.problems()
        if problems:
            state, text = ALARM, problems[0]
            if self.note:
                text = f'{text} [last: {self.note}]'
        else:
            state = OK
            text = self.note or f'OK: {self.settings.fit.name} through {len(self.table)} points'
            if self.input_value is not None and self.table.clamped(self.input_value, self.settings):
                text = f'input {self.input_value:.6g} is outside the table: target held at its end'
        text = text[:MESSAGE_LENGTH]
        if (state, text) != self._shown:
            self._shown = (state, text)
            self.ioc.status.put(state)
            self.ioc.message.put(text)
            if state == ALARM:
                logger.warning('ALARM: %s', text)

    # -- stop -------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Drop the external PVs and stop the IOC."""
        for link in (getattr(self, 'source', None), getattr(self, 'sink', None)):
            if link is not None:
                link.close()
        self.ioc.shutdown()
