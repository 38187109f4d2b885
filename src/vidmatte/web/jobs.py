"""The server's jobs: a SQLite store (stdlib, in the work folder) and a bounded queue run by a few worker threads.

A job is one uploaded clip, its guidance (keyframes per subject: object 1's in ``keyframes``, as jobs kept them before
the page had several subjects, any further object's in ``objects``) and settings (saved as the page changes them,
not only when it runs), its latest run, and the last run that completed (``result``). States:
  ready -> queued -> running -> done | failed | cancelled      (a finished job may be run again)
A run that fails, is refused or is cancelled leaves the last completed run's outputs offered (``outputs`` and
``result`` change only when a run completes): they are still on disk, since every output is renamed into place
only when complete.
A restart keeps every job: finished ones as they were, queued or running ones become ``interrupted`` (their
outputs were never renamed into place, so nothing half-written is offered for download).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import deque
from typing import Callable

from ..errors import Cancelled, VidmatteError
from ..job import JobControl, ProgressEvent

FINISHED = ("ready", "done", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running")
PROGRESS_WRITE_SECONDS = 1.0  # a running job's progress reaches the database at most this often (pages read memory)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    info TEXT NOT NULL DEFAULT '{}',
    settings TEXT NOT NULL DEFAULT '{}',
    keyframes TEXT NOT NULL DEFAULT '[]',
    progress TEXT,
    error TEXT,
    outputs TEXT NOT NULL DEFAULT '[]',
    details TEXT NOT NULL DEFAULT '{}',
    runs INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    guide_preview TEXT,
    objects TEXT
)
"""
# Columns added after the first release, with their definitions: an older database gains them when opened.
_ADDED = {"details": "TEXT NOT NULL DEFAULT '{}'",  # what the run reported
          "runs": "INTEGER NOT NULL DEFAULT 0",  # runs started: numbers each run, so the page says which one
          "result": "TEXT",  # the last completed run: its number, end time and settings (what its outputs are)
          "guide_preview": "TEXT",  # the propagation preview on disk: from which keyframe (and object), which frames
          "objects": "TEXT"}  # subjects beyond the first: {"2": [its keyframes], ...} (object 1's are `keyframes`)
_JSON_FIELDS = ("info", "settings", "keyframes", "progress", "outputs", "details", "result", "guide_preview",
                "objects")


class QueueFull(VidmatteError):
    """As many jobs wait as the queue holds (HTTP 429)."""


class JobStore:
    """Jobs and their settings in ``jobs.sqlite3``; one connection shared by the server's threads under a lock."""

    def __init__(self, path):
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            for name, definition in _ADDED.items():
                if name not in columns:  # a database made before the job kept this
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {definition}")

    def mark_interrupted(self) -> int:
        """At start-up: jobs the last server left queued or running were interrupted by its end."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET state='interrupted', error='the server stopped before this job finished', "
                "updated=? WHERE state IN ('queued', 'running')", (time.time(),))
            return cursor.rowcount

    def add(self, job_id: str, name: str, info: dict, settings: dict) -> None:
        now = time.time()
        with self._lock:
            self._db.execute("INSERT INTO jobs (id, created, updated, name, state, info, settings) "
                             "VALUES (?, ?, ?, ?, 'ready', ?, ?)",
                             (job_id, now, now, name, json.dumps(info), json.dumps(settings)))

    def update(self, job_id: str, **fields) -> None:
        columns = ", ".join(f"{name}=?" for name in fields)
        values = [json.dumps(v) if name in _JSON_FIELDS and v is not None else v for name, v in fields.items()]
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {columns}, updated=? WHERE id=?", (*values, time.time(), job_id))

    def count_run(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE jobs SET runs=runs+1 WHERE id=?", (job_id,))

    def get(self, job_id: str) -> dict | None:
        with self._lock:
            self._db.row_factory = sqlite3.Row
            row = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _as_dict(row) if row is not None else None

    def all(self) -> list[dict]:
        with self._lock:
            self._db.row_factory = sqlite3.Row
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created DESC").fetchall()
        return [_as_dict(row) for row in rows]

    def removable(self) -> list[str]:
        """Ids of jobs that may be deleted to make room, oldest first (nothing queued or running)."""
        with self._lock:
            rows = self._db.execute("SELECT id FROM jobs WHERE state NOT IN ('queued', 'running') "
                                    "ORDER BY updated").fetchall()
        return [row[0] for row in rows]

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id=?", (job_id,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _as_dict(row: sqlite3.Row) -> dict:
    job = dict(row)
    for name in _JSON_FIELDS:
        if job.get(name) is not None:
            job[name] = json.loads(job[name])
    return job


def progress_dict(event: ProgressEvent) -> dict:
    return {"pass": event.pass_name, "pass_index": event.pass_index, "passes": event.passes, "done": event.done,
            "total": event.total, "fps": round(event.fps, 2),
            "eta": None if event.eta is None else round(event.eta, 1)}


class JobQueue:
    """At most ``capacity`` jobs waiting and ``workers`` running; each running job has its own ``JobControl``.

    ``execute(job_id, control)`` runs one job through the pipeline and returns its outputs' names and what the run
    reported (``ConvertResult.details``, e.g. guided frames whose keyframes disagree); it raises
    ``Cancelled`` when cancelled and a ``VidmatteError`` (or anything else) when it fails: the job is then marked
    failed with a one-line reason, and the worker goes on with the next.
    """

    def __init__(self, store: JobStore, execute: Callable[[str, JobControl], tuple[list[str], dict]],
                 workers: int = 1, capacity: int = 4, cpus: int | None = None):
        self.store, self.execute, self.capacity, self.cpus = store, execute, capacity, cpus
        self._waiting: deque[str] = deque()
        self._running: dict[str, JobControl] = {}
        self._live: dict[str, dict] = {}  # job id -> last progress (pages poll this, not the database)
        self._cond = threading.Condition()
        self._closing = False
        self._threads = [threading.Thread(target=self._work, name=f"vidmatte-web-worker-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, job_id: str) -> None:
        with self._cond:
            if job_id in self._waiting or job_id in self._running:
                raise QueueFull("this job is already queued or running")
            if len(self._waiting) >= self.capacity:
                raise QueueFull(f"the queue is full ({self.capacity} jobs waiting); try again when one finishes")
            # The last completed run's outputs stay offered until this run completes (a failed run replaces none).
            self.store.update(job_id, state="queued", error=None, progress=None)
            self.store.count_run(job_id)
            self._waiting.append(job_id)
            self._cond.notify()

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued job at once, or a running one (its pass stops within a frame); False if neither."""
        with self._cond:
            if job_id in self._waiting:
                self._waiting.remove(job_id)
                self.store.update(job_id, state="cancelled", error="cancelled before it started")
                return True
            control = self._running.get(job_id)
        if control is None:
            return False
        control.cancel()
        return True

    def progress(self, job_id: str) -> dict | None:
        return self._live.get(job_id)

    def position(self, job_id: str) -> int | None:
        with self._cond:
            return list(self._waiting).index(job_id) if job_id in self._waiting else None

    def close(self, timeout: float = 30.0) -> None:
        """Stop: cancel what runs, forget what waits (the store marks those interrupted at the next start)."""
        with self._cond:
            self._closing = True
            self._waiting.clear()
            controls = list(self._running.values())
            self._cond.notify_all()
        for control in controls:
            control.cancel()
        for thread in self._threads:
            thread.join(timeout)

    # --- worker -------------------------------------------------------------------------------------------
    def _next(self) -> tuple[str, JobControl] | None:
        with self._cond:
            while not self._waiting and not self._closing:
                self._cond.wait(timeout=1.0)
            if self._closing:
                return None
            job_id = self._waiting.popleft()
            control = JobControl(on_progress=self._reporter(job_id), cpus=self.cpus)
            self._running[job_id] = control
            self.store.update(job_id, state="running", details={})  # the last run's report no longer holds
            return job_id, control

    def _work(self) -> None:
        while (item := self._next()) is not None:
            job_id, control = item
            try:
                self._run(job_id, control)
            finally:
                with self._cond:
                    self._running.pop(job_id, None)

    def _run(self, job_id: str, control: JobControl) -> None:
        try:
            outputs, details = self.execute(job_id, control)
        except Cancelled:
            self.store.update(job_id, state="cancelled", error="cancelled; no output was written",
                              progress=self._live.pop(job_id, None))
        except VidmatteError as exc:
            self.store.update(job_id, state="failed", error=str(exc), progress=self._live.pop(job_id, None))
        except Exception as exc:  # a crashed job is reported, never left hanging
            control.log.exception("web job %s crashed", job_id)
            self.store.update(job_id, state="failed", error=f"{type(exc).__name__}: {exc}",
                              progress=self._live.pop(job_id, None))
        else:
            job = self.store.get(job_id)
            result = {"run": job["runs"], "finished": time.time(), "settings": job["settings"]}
            self.store.update(job_id, state="done", outputs=outputs, details=details, result=result,
                              progress=self._live.pop(job_id, None))

    def _reporter(self, job_id: str) -> Callable[[ProgressEvent], None]:
        last_write = [0.0]

        def report(event: ProgressEvent) -> None:
            self._live[job_id] = progress_dict(event)
            now = time.monotonic()
            if now - last_write[0] >= PROGRESS_WRITE_SECONDS:
                last_write[0] = now
                self.store.update(job_id, progress=self._live[job_id])

        return report
