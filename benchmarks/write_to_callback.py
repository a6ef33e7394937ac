"""Latency from a CA client's write to the do_<field> call that it causes, p50/p99.

The IOC app runs here; the writer is a separate pyepics process that stamps each value with
time.time() (same host, same clock). Usage: python benchmarks/write_to_callback.py [N] [gap_ms]   (loopback only, private CA ports)
"""
import os, statistics, subprocess, sys, time
from devioc import testing
testing.isolate()
from devioc import models
from twisted.internet import reactor

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
GAP = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.002

class Lat(models.Model):
    stamp = models.Float('stamp', prec=6, MDEL=-1)

class App:
    def __init__(self):
        self.delays = []
        self.ioc = Lat(f'LAT{os.getpid()}', callbacks=self)
        self.first = True
    def do_stamp(self, pv, value, ioc):
        if self.first:
            self.first = False
            return
        self.delays.append((time.time() - value) * 1000)
        if len(self.delays) == N:
            reactor.stop()

app = App()
writer = (f'import time, epics\np = epics.PV("{app.ioc.stamp.name}"); p.wait_for_connection(5)\n'
          f'time.sleep(0.5)\nfor i in range({N}):\n    p.put(time.time()); time.sleep({GAP})\n'
          'epics.ca.flush_io(); time.sleep(1)\n')
proc = subprocess.Popen([sys.executable, '-c', writer])
reactor.callLater(120, reactor.stop)
reactor.run()
proc.wait()
app.ioc.shutdown()
d = sorted(app.delays)
q = lambda p: d[min(len(d) - 1, int(p * len(d)))]
print(f'writes {N}, gap {GAP*1000:.1f} ms, delivered {len(d)}: p50 {q(0.5):.3f} ms  p90 {q(0.9):.3f} ms  p99 {q(0.99):.3f} ms')
