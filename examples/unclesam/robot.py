"""The Robot model: the EPICS records the bridge serves (see app.py for what drives each one).

All records are ``$(device):<name>``. Macros: ``gonio`` names the goniometer IOC that the safety
output links write to (``$(gonio):robot_prepare``, ``$(gonio):robot_ready``,
``$(gonio):robot_approach``).
"""
from __future__ import annotations

from devioc import models

from . import payloads as pl

ACTIVITY_CHOICES = [a.upper() for a in pl.ACTIVITIES]
FIT_CHOICES = [m.upper() for m in pl.FIT_MODELS]
OP_STATES = ['IDLE', 'BUSY', 'NORMAL', 'ERROR', 'ABORTED', 'REFUSED']
HEALTH_STATES = ['OK', 'WARNING', 'ERROR', 'OFFLINE']
LOG_LEVELS = ['INFO', 'WARNING', 'ERROR']
CONFIG_CHOICES = ['NONE', 'PROBE ALL', 'PROBE L', 'PROBE M', 'PROBE R', 'CALIBRATE', 'RESET',
                  'CLEAR']
# config choice index -> robot_config arguments
CONFIG_ARGS = {1: ['probe', 'all'], 2: ['probe', 'l'], 3: ['probe', 'm'], 4: ['probe', 'r'],
               5: ['calibrate'], 6: ['reset'], 7: ['clear']}


def _gonio_link(flag: str) -> str:
    return '$(gonio):robot_' + flag + ' CA NMS'


class Robot(models.Model):
    """About a hundred records: connection, commands, operation tracking, robot state and ports."""

    # -- connection to the robot DHS ----------------------------------------------------------
    connected = models.BoolInput('connected', zname='DISCONNECTED', oname='CONNECTED',
                                 desc='Robot DHS connection')
    dhs_name = models.StringInput('dhs_name', max_length=39, desc='Connected DHS name')
    framing = models.EnumInput('framing', choices=['NONE', 'V1', 'V2'], desc='DHS framing')
    dcs_port = models.IntegerInput('dcs_port', desc='DCS listen port')
    connections = models.IntegerInput('connections', desc='DHS connections so far')
    disconnects = models.IntegerInput('disconnects', desc='DHS disconnections so far')
    stale = models.BoolInput('stale', zname='FRESH', oname='STALE', desc='DHS silent too long')
    conn_time = models.FloatInput('conn_time', prec=0, units='s', desc='Seconds connected')
    idle_time = models.FloatInput('idle_time', prec=1, units='s', desc='Seconds since DHS message')
    heartbeat = models.IntegerInput('heartbeat', desc='DHS heartbeat counter')
    alive = models.IntegerInput('alive', desc='Bridge heartbeat counter')
    uptime = models.FloatInput('uptime', prec=0, units='s', desc='Bridge uptime')
    enable = models.Enum('enable', choices=['DISABLED', 'ENABLED'], default=1, autosave=True,
                         desc='Accept robot commands')
    health = models.EnumInput('health', choices=HEALTH_STATES, default=3, desc='Overall health')
    health_msg = models.StringInput('health_msg', max_length=80, desc='Why health is not OK')

    # -- commands (each becomes a DCS operation) ----------------------------------------------
    mount = models.String('mount', max_length=20, desc='Mount port, e.g. lA1')
    prefetch = models.String('prefetch', max_length=20, desc='Prefetch port, e.g. lA2')
    dismount = models.Toggle('dismount', zname='IDLE', oname='DISMOUNT', desc='Dismount sample')
    abort = models.Toggle('abort', zname='IDLE', oname='ABORT', desc='Abort all operations')
    abort_mode = models.Enum('abort_mode', choices=['SOFT', 'HARD'], autosave=True, desc='Abort soft or hard')
    standby = models.Toggle('standby', zname='IDLE', oname='STANDBY', desc='Park the robot')
    config = models.Enum('config', choices=CONFIG_CHOICES, desc='Config sub-command')
    probe_l = models.Toggle('probe_l', zname='IDLE', oname='PROBE', desc='Probe left cassette')
    probe_m = models.Toggle('probe_m', zname='IDLE', oname='PROBE', desc='Probe middle cassette')
    probe_r = models.Toggle('probe_r', zname='IDLE', oname='PROBE', desc='Probe right cassette')
    reset = models.Toggle('reset', zname='IDLE', oname='RESET', desc='Reset the robot')

    # -- operation tracking -------------------------------------------------------------------
    handle = models.StringInput('handle', max_length=39, desc='Last operation handle')
    handle_count = models.IntegerInput('handle_count', desc='Operations started')
    operation = models.StringInput('operation', max_length=39, desc='Last operation')
    op_args = models.StringInput('op_args', max_length=39, desc='Last operation arguments')
    op_state = models.EnumInput('op_state', choices=OP_STATES, desc='Last operation state')
    op_msg = models.StringInput('op_msg', max_length=200, desc='Last update or result')
    op_time = models.FloatInput('op_time', prec=1, units='s', desc='Running operation time')
    last_op_time = models.FloatInput('last_op_time', prec=1, units='s',
                                     desc='Last operation duration')
    busy = models.BoolInput('busy', zname='IDLE', oname='BUSY', desc='An operation is running')
    op_count = models.IntegerInput('op_count', desc='Operations completed')
    error_count = models.IntegerInput('error_count', desc='Operations ended in error')
    abort_count = models.IntegerInput('abort_count', desc='Operations aborted')
    refused_count = models.IntegerInput('refused_count', desc='Commands refused')
    mount_count = models.IntegerInput('mount_count', desc='Successful mounts')
    dismount_count = models.IntegerInput('dismount_count', desc='Successful dismounts')
    last_mount_time = models.FloatInput('last_mount_time', prec=1, units='s',
                                        desc='Last mount duration')

    # -- robot status (robot_status, robot_state) ---------------------------------------------
    status = models.IntegerInput('status', desc='Robot status code (0 = ok)')
    state = models.EnumInput('state', choices=ACTIVITY_CHOICES, desc='Robot activity')
    need_reset = models.BoolInput('need_reset', zname='NO', oname='NEEDS RESET', desc='Needs reset')
    need_cal = models.BoolInput('need_cal', zname='NO', oname='NEEDS CALIBRATION',
                                desc='Needs calibration')
    need_clear = models.BoolInput('need_clear', zname='NO', oname='NEEDS CLEAR',
                                  desc='Needs clear')
    pin_lost = models.BoolInput('pin_lost', zname='NO', oname='PIN LOST', desc='Pin lost')
    manual_mode = models.BoolInput('manual_mode', zname='AUTO', oname='MANUAL', desc='Manual mode')
    needs = models.Calc('needs', calc='A||B||C||D', desc='Any need flag set',
                        inpa='$(device):need_reset CP NMS', inpb='$(device):need_cal CP NMS',
                        inpc='$(device):need_clear CP NMS', inpd='$(device):pin_lost CP NMS')
    error = models.BoolInput('error', zname='NO', oname='ERROR', desc='Robot or operation error')
    error_msg = models.StringInput('error_msg', max_length=200, desc='Last error')
    warning = models.StringInput('warning', max_length=80, desc='Robot warning')
    cal_msg = models.StringInput('cal_msg', max_length=80, desc='Calibration message')

    # -- logs ---------------------------------------------------------------------------------
    log = models.StringInput('log', max_length=200, desc='Last log line')
    log_level = models.EnumInput('log_level', choices=LOG_LEVELS, desc='Last log line level')
    log_count = models.IntegerInput('log_count', desc='Log lines so far')
    sample_log = models.StringInput('sample_log', max_length=200, desc='Last sample event')

    # -- sample -------------------------------------------------------------------------------
    sample = models.StringInput('sample', max_length=20, desc='Mounted port, empty if none')
    sample_mounted = models.BoolInput('sample_mounted', zname='NO', oname='YES',
                                      desc='A sample is mounted')
    prefetched = models.StringInput('prefetched', max_length=20, desc='Prefetched port')
    sample_time = models.FloatInput('sample_time', prec=0, units='s', desc='Seconds since mount')

    # -- safety flags, forwarded to the goniometer IOC ----------------------------------------
    prepare = models.BoolInput('prepare', zname='OFF', oname='ON', desc='Robot asks gonio prepare')
    # attribute ready_flag: Model.ready (the IOC is up) is taken; the PV is still <device>:ready
    ready_flag = models.BoolInput('ready', zname='OFF', oname='ON', desc='Robot ready at gonio')
    approach = models.BoolInput('approach', zname='OFF', oname='ON', desc='Robot near gonio')
    prepare_out = models.CalcOut('prepare_out', calc='A', inpa='$(device):prepare CP NMS',
                                 out=_gonio_link('prepare'), desc='prepare -> goniometer')
    ready_out = models.CalcOut('ready_out', calc='A', inpa='$(device):ready CP NMS',
                               out=_gonio_link('ready'), desc='ready -> goniometer')
    approach_out = models.CalcOut('approach_out', calc='A', inpa='$(device):approach CP NMS',
                                  out=_gonio_link('approach'), desc='approach -> goniometer')
    safe = models.Calc('safe', calc='!(A||B)', desc='Gonio free to move',
                       inpa='$(device):prepare CP NMS', inpb='$(device):approach CP NMS')

    # -- cassettes and ports ------------------------------------------------------------------
    ports_l = models.Array('ports_l', type='SHORT', length=pl.PORTS, desc='Left port states')
    ports_m = models.Array('ports_m', type='SHORT', length=pl.PORTS, desc='Middle port states')
    ports_r = models.Array('ports_r', type='SHORT', length=pl.PORTS, desc='Right port states')
    type_l = models.EnumInput('type_l', choices=pl.CASSETTE_TYPES, desc='Left cassette type')
    type_m = models.EnumInput('type_m', choices=pl.CASSETTE_TYPES, desc='Middle cassette type')
    type_r = models.EnumInput('type_r', choices=pl.CASSETTE_TYPES, desc='Right cassette type')
    full_l = models.IntegerInput('full_l', desc='Left occupied ports')
    full_m = models.IntegerInput('full_m', desc='Middle occupied ports')
    full_r = models.IntegerInput('full_r', desc='Right occupied ports')
    empty_l = models.IntegerInput('empty_l', desc='Left empty ports')
    empty_m = models.IntegerInput('empty_m', desc='Middle empty ports')
    empty_r = models.IntegerInput('empty_r', desc='Right empty ports')
    bad_l = models.IntegerInput('bad_l', desc='Left bad or jammed ports')
    bad_m = models.IntegerInput('bad_m', desc='Middle bad or jammed ports')
    bad_r = models.IntegerInput('bad_r', desc='Right bad or jammed ports')
    fit_l = models.EnumInput('fit_l', choices=FIT_CHOICES, desc='Left calibration fit model')
    fit_m = models.EnumInput('fit_m', choices=FIT_CHOICES, desc='Middle calibration fit model')
    fit_r = models.EnumInput('fit_r', choices=FIT_CHOICES, desc='Right calibration fit model')
    fit_rms_l = models.FloatInput('fit_rms_l', prec=3, units='mm', desc='Left fit residual')
    fit_rms_m = models.FloatInput('fit_rms_m', prec=3, units='mm', desc='Middle fit residual')
    fit_rms_r = models.FloatInput('fit_rms_r', prec=3, units='mm', desc='Right fit residual')

    # -- I/O and force ------------------------------------------------------------------------
    inputs = models.IntegerInput('inputs', desc='Digital inputs bitmask')
    outputs = models.IntegerInput('outputs', desc='Digital outputs bitmask')
    force_x = models.FloatInput('force_x', prec=2, units='N', desc='Gripper force X')
    force_y = models.FloatInput('force_y', prec=2, units='N', desc='Gripper force Y')
    force_z = models.FloatInput('force_z', prec=2, units='N', desc='Gripper force Z')
