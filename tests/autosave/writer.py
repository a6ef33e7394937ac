"""Write the current time (``time.time()``, s) to a PV at about 1 kHz until killed.

``python writer.py PV``: prints ``WRITING <time>`` once connected, just before the first put. Each value is the moment it was put,
so a restored value tells its own age.
"""
import sys
import time


def main(name):
    import epics

    pv = epics.PV(name, auto_monitor=False)
    if not pv.wait_for_connection(10.0):
        print(f'FAIL cannot connect to {name}', flush=True)
        return 1
    print(f'WRITING {time.time()!r}', flush=True)   # the default value was current until now
    period = 0.001
    next_put = time.monotonic()
    while True:
        try:
            pv.put(time.time(), wait=False)
        except Exception:  # the IOC is gone (killed): keep trying until killed ourselves
            time.sleep(0.01)
        next_put += period
        delay = next_put - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_put = time.monotonic()


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
