"""Running a list of tasks: here, one after another, or on a Ray cluster's workers.

On Ray every worker is an actor holding its models (:class:`~clipguide.scale.worker.Worker`); the
driver hands each idle worker the next task and draws one bar (tasks done, images per minute).

Faults: a worker process that dies is restarted and its task run again (``max_restarts`` and
``max_task_retries``: Ray's own retries). Tasks write only complete files (atomic renames) and
finished work is found again by each front end's resume rule, so a retried task ends with the
same files. Ctrl-C (or an error) kills the workers, so only finished files stay; temporary files
a killed worker leaves behind are removed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import UserError
from .cluster import Cluster
from .worker import EXIT_ONCE, Sessions, Task, Worker

#: How often a dead worker is restarted, and its task retried, before the run fails.
RETRIES = 3


def run_here(tasks: Sequence[Task], *, quiet: bool = False,
             on_done: Callable[[Task, int], None] | None = None) -> int:
    """Every task in this process, in order (models loaded once); the images made."""
    progress, sessions = Progress(len(tasks), quiet), Sessions()
    try:
        for task in tasks:
            n = task.run(sessions.of(task), None)
            progress.done(n)
            if on_done is not None:
                on_done(task, n)
    finally:
        progress.close()
    return progress.images


def run_on(cluster: Cluster, tasks: Sequence[Task], *, out_dir: Path, quiet: bool = False,
           on_done: Callable[[Task, int], None] | None = None) -> int:
    """Every task on the cluster's workers (at most one task per worker at a time); the images made.

    ``on_done(task, images)`` runs on the driver as each task finishes (in finishing order).
    """
    import ray

    if not tasks:
        return 0
    options: dict[str, Any] = dict(cluster.resources, max_restarts=RETRIES, max_task_retries=RETRIES)
    if os.environ.get(EXIT_ONCE):
        options["runtime_env"] = {"env_vars": {EXIT_ONCE: os.environ[EXIT_ONCE]}}
    actor = ray.remote(Worker).options(**options)
    workers = [actor.remote(cluster.threads, os.getcwd()) for _ in range(min(cluster.workers, len(tasks)))]
    progress = Progress(len(tasks), quiet)
    queue = list(tasks)
    running: dict[Any, tuple[Any, Task]] = {}

    def hand_next(worker: Any) -> None:
        if queue:
            task = queue.pop(0)
            running[worker.run.remote(task)] = (worker, task)

    try:
        for worker in workers:
            hand_next(worker)
        while running:
            [ref], _ = ray.wait(list(running), num_returns=1)
            worker, task = running.pop(ref)
            n = _result(ray, ref, task)
            progress.done(n)
            if on_done is not None:
                on_done(task, n)
            hand_next(worker)
    except BaseException:
        for worker in workers:  # Ctrl-C or a failed task: nothing more runs, nothing half-written stays
            ray.kill(worker, no_restart=True)
        _remove_temporary_files(out_dir)
        raise
    finally:
        progress.close()
    for worker in workers:
        ray.kill(worker, no_restart=True)
    return progress.images


def _result(ray: Any, ref: Any, task: Task) -> int:
    """The task's result; a user's mistake inside it is the same one-line error as in-process."""
    try:
        return int(ray.get(ref))
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, UserError):
            raise cause from None
        raise
    except ray.exceptions.RayActorError as e:
        raise RuntimeError(f"task {task.label} failed: its worker died {RETRIES + 1} times ({e})") from None


class Progress:
    """One bar over the tasks, with the images made per minute (nothing when ``quiet``)."""

    def __init__(self, total: int, quiet: bool) -> None:
        from ..cli_flags import progress_bar

        self.images, self.start = 0, time.monotonic()
        self.bar = None if quiet or not total else progress_bar(total, unit="task")

    def done(self, images: int) -> None:
        self.images += images
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{self.images / max(time.monotonic() - self.start, 1e-9) * 60:.1f} images/min")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _remove_temporary_files(out_dir: Path) -> None:
    """The ``.NAME.RANDOM.tmp`` files (clipguide.output.files) a killed worker could not remove."""
    for tmp in Path(out_dir).rglob(".*.tmp"):
        try:
            tmp.unlink()
        except OSError:
            pass


__all__ = ["run_here", "run_on", "RETRIES"]
