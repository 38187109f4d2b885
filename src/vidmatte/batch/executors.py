"""Where tasks run: a local process pool (the default) or a Ray actor pool (``--ray``), behind one small interface.

    executor.submit(task) -> concurrent.futures.Future[TaskResult]
    executor.progress() -> [(task id, pass name, writing, done, total), ...]   (drained, non-blocking)
    executor.cancel()   -> every running job is cancelled (its temporary outputs removed); queued tasks dropped
    executor.close()

Each worker is a ``tasks.Worker``: its weights are loaded once when it starts (a pool initialiser; an actor's
constructor) and kept for every task it runs; its thread counts come from its CPU allotment.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import queue
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor

from .tasks import Task, TaskResult, Worker

# --- local process pool -------------------------------------------------------------------------------------------
_WORKER: Worker | None = None


def _start_worker(cpus: int, preload: dict | None, events, cancel_flag) -> None:
    """Pool initialiser: the coordinator owns Ctrl-C (it cancels through ``cancel_flag``); load the weights once."""
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER = Worker(cpus, events.put, preload)
    threading.Thread(target=_watch_cancel, args=(cancel_flag,), name="vidmatte-batch-cancel", daemon=True).start()


def _watch_cancel(cancel_flag) -> None:
    cancel_flag.wait()
    while True:  # keep cancelling: a task already handed to this process may start after the first cancel
        _WORKER.cancel()
        time.sleep(0.2)


def _run_in_worker(task: Task) -> TaskResult:
    return _WORKER.run(task)


class LocalPool:
    """``workers`` processes (spawned: no state inherited from the coordinator), ``cpus`` each."""

    def __init__(self, workers: int, cpus: int, preload: dict | None):
        context = multiprocessing.get_context("spawn")
        self._events = context.Queue()
        self._cancel_flag = context.Event()
        self._pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                         initargs=(cpus, preload, self._events, self._cancel_flag))

    def submit(self, task: Task) -> Future:
        return self._pool.submit(_run_in_worker, task)

    def progress(self) -> list[tuple]:
        return _drain(self._events.get_nowait, queue.Empty)

    def cancel(self) -> None:
        self._cancel_flag.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._events.close()


def _drain(get_nowait, empty) -> list[tuple]:
    events = []
    while True:
        try:
            events.append(get_nowait())
        except empty:
            return events


# --- Ray -----------------------------------------------------------------------------------------------------------
class RayWorker:
    """The actor: one ``Worker``; a second thread (max_concurrency=2) takes ``cancel`` while ``run`` works."""

    def __init__(self, cpus: int, preload: dict | None, events):
        self.worker = Worker(cpus, events.put_nowait if hasattr(events, "put_nowait") else events.put, preload)

    def ready(self) -> bool:
        return True

    def run(self, task: Task) -> TaskResult:
        return self.worker.run(task)

    def cancel(self) -> None:
        self.worker.cancel()


class RayPool:
    """``workers`` actors (default: one per 2 of the cluster's CPUs) sharing the cluster's CPUs, on a local Ray
    (address None: this machine's CPUs) or an existing cluster."""

    def __init__(self, workers: int | None, preload: dict | None, address: str | None):
        try:
            import ray
            from ray.util.queue import Empty, Queue
        except ImportError:
            from ..extras import require

            require("ray", "--ray")
            raise
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        self._ray, self._empty = ray, Empty
        if not ray.is_initialized():
            ray.init(**ray_options(address))
        total = max(1, int(ray.cluster_resources().get("CPU", 1)))
        workers = workers or max(1, total // 2)
        cpus = max(1, total // workers)
        self._events = Queue()
        actor = ray.remote(num_cpus=cpus, max_concurrency=2)(RayWorker)
        self._actors = [actor.remote(cpus, preload, self._events) for _ in range(workers)]
        self._idle = collections.deque(self._actors)
        self._waiting: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._cancelled = False

    def submit(self, task: Task) -> Future:
        future: Future = Future()
        with self._lock:
            self._waiting.append((task, future))
        self._dispatch()
        return future

    def _dispatch(self) -> None:
        with self._lock:
            while self._idle and self._waiting and not self._cancelled:
                actor, (task, future) = self._idle.popleft(), self._waiting.popleft()
                reference = actor.run.remote(task)
                reference.future().add_done_callback(lambda done, a=actor, f=future: self._finished(a, f, done))

    def _finished(self, actor, future: Future, done: Future) -> None:
        with self._lock:
            self._idle.append(actor)
        try:
            future.set_result(done.result())
        except Exception as exc:  # the actor died (a lost node, an out-of-memory kill): that task fails
            future.set_exception(exc)
        self._dispatch()

    def progress(self) -> list[tuple]:
        return _drain(self._events.get_nowait, self._empty)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            waiting, self._waiting = list(self._waiting), collections.deque()
        for _, future in waiting:
            future.cancel()
        self._ray.get([actor.cancel.remote() for actor in self._actors], timeout=30)

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._events.shutdown()


def ray_options(address: str | None) -> dict:
    """``ray.init`` arguments: join ``address``, or start a small private local Ray (no dashboard, loopback)."""
    common = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        return {"address": address, **common}
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return {"num_cpus": cpus, "object_store_memory": 100 << 20, "_node_ip_address": "127.0.0.1", **common}
