"""Filter runs started from the page: one background thread at a time, polled for progress."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from thresher.store import Run
from thresher.workflows.filter import FilterSettings, run_filter


@dataclass
class FilterJob:
    """A filter run in a background thread; ``status`` is running, done or error."""

    id: str
    settings: FilterSettings
    previous_tag: str | None
    started: float = field(default_factory=time.monotonic)
    status: str = "running"
    phase: str = "embedding and filtering"
    finished: float | None = None
    error: str | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        end = self.finished if self.finished is not None else time.monotonic()
        return {
            "id": self.id,
            "status": self.status,
            "phase": self.phase,
            "elapsed_s": round(end - self.started, 2),
            "tag": self.settings.tag(),
            "previous_tag": self.previous_tag,
            "settings": dict(self.settings.__dict__),
            "counts": self.counts,
            "error": self.error,
        }


class JobBusyError(RuntimeError):
    """A filter is already running (HTTP 409)."""


class FilterJobs:
    """Starts filters in daemon threads and remembers their outcome."""

    def __init__(self, run: Run, lock: threading.RLock | None = None) -> None:
        self._run = run
        self._jobs: dict[str, FilterJob] = {}
        self._guard = threading.Lock()
        self._run_lock = lock or threading.RLock()
        self._threads: list[threading.Thread] = []

    def start(self, settings: FilterSettings, *, previous_tag: str | None) -> FilterJob:
        with self._guard:
            if any(j.status == "running" for j in self._jobs.values()):
                raise JobBusyError("a filter is already running; wait for it to finish")
            job = FilterJob(id=uuid.uuid4().hex[:12], settings=settings, previous_tag=previous_tag)
            self._jobs[job.id] = job
        thread = threading.Thread(target=self._work, args=(job,), daemon=True, name=job.id)
        self._threads.append(thread)
        thread.start()
        return job

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the running filters (at most ``timeout`` seconds in all); True when none
        is left running. For whoever shares the run after this server (a test, a script)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in list(self._threads):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
        return not any(t.is_alive() for t in self._threads)

    def get(self, job_id: str) -> FilterJob | None:
        return self._jobs.get(job_id)

    def _work(self, job: FilterJob) -> None:
        try:
            with self._run_lock:  # one writer of the run's manifest at a time
                result = run_filter(self._run, job.settings, device="cpu")
            job.counts = {k: int(v) for k, v in result.counts.items()}
            job.phase = "done"
            job.status = "done"
        except Exception as exc:  # reported to the page, never raised into the server
            job.error = f"{type(exc).__name__}: {exc}"
            job.phase = "failed"
            job.status = "error"
        finally:
            job.finished = time.monotonic()
