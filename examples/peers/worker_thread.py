"""caproto's ``worker_thread.py`` in devioc: blocking work on a thread, its result published from there.

Original: caproto/caproto ``caproto/ioc_examples/worker_thread.py`` (caproto 1.3.0).
Run: ``python -m devioc run examples/peers/worker_thread.py:WorkerThreadApp --device wt``
serves ``wt:request`` and ``wt:response`` (0). Each client write to request (the same value too)
queues it; a worker thread sleeps that many seconds, then writes how many requests it has done
(1, 2, ...) to response.

Differs: the worker puts to ``response`` straight from its thread (devioc fields work from any
thread), so the original's second queue and its reader loop are not needed. A request is
clamped to 0..3600 s by the record (DRVL/DRVH): a negative one killed the original's worker.
"""
import itertools
import queue
import threading
import time

from devioc import log, models

logger = log.get_module_logger(__name__)


class WorkerThread(models.Model):
    request = models.Integer('request', min_val=0, max_val=3600, units='s')
    response = models.Integer('response')


class WorkerThreadApp:
    """Each write to request is a job for a worker thread: it sleeps that long, then counts."""

    def __init__(self, device, **kwargs):
        self.requests = queue.Queue()
        self.ioc = WorkerThread(device, callbacks=self, **kwargs)

    def on_start(self, ioc):
        threading.Thread(target=self.work, args=(ioc,), daemon=True).start()

    def write_request(self, pv, value, ioc):
        logger.info('Sending the request %s to the worker.', value)
        self.requests.put(value)

    def work(self, ioc):
        for count in itertools.count(1):
            request = self.requests.get()
            logger.info('Sleeping for %s seconds...', request)
            time.sleep(request)
            ioc.response.put(count)
            logger.info('Done')


if __name__ == '__main__':
    import devioc
    devioc.run(WorkerThreadApp)
