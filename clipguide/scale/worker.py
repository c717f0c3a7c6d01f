"""What one worker does: keep its models loaded and run tasks, one at a time.

A task is any picklable object with ``run(session, hook)`` that writes its own outputs (always
through :mod:`clipguide.output`'s atomic files) and returns how many images it made, and with
``device``, ``offline`` and ``label``. The same task objects run in-process
(:func:`clipguide.scale.pool.run_here`) and on Ray workers; the task types live beside their front
ends (compare, telephone, batch).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

#: Test hook: a marker path. The first task step of any worker that finds no file there creates it and
#: exits the worker process at once (a worker dying mid-task, which Ray must retry).
EXIT_ONCE = "CLIPGUIDE_TEST_EXIT_ONCE"


class Task(Protocol):
    label: str
    device: str
    offline: bool

    def run(self, session: Any, hook: Any) -> int: ...


class Worker:
    """One Ray actor (``ray.remote(Worker)``): a :class:`~clipguide.session.Session` per device,
    so that models load once per worker however many tasks it runs."""

    def __init__(self, threads: int, cwd: str) -> None:
        import torch

        torch.set_num_threads(threads)  # the driver's count: the pictures depend on it on a CPU
        if Path(cwd).is_dir():  # relative paths in settings (init images, presets) mean the driver's
            os.chdir(cwd)
        self.sessions = Sessions()

    def run(self, task: Task) -> int:
        return task.run(self.sessions.of(task), exit_once_hook())


class Sessions:
    """One :class:`~clipguide.session.Session` per (device, offline) the tasks ask for."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, bool], Any] = {}

    def of(self, task: Task) -> Any:
        from ..session import Session

        key = (task.device, task.offline)
        if key not in self._sessions:
            self._sessions[key] = Session(task.device, task.offline)
        return self._sessions[key]


def exit_once_hook() -> Any:
    """The step hook of a task: nothing, unless the test hook :data:`EXIT_ONCE` is set."""
    marker = os.environ.get(EXIT_ONCE)
    if not marker:
        return None

    def hook(step: Any) -> None:
        if step.i >= 1 and not os.path.exists(marker):
            Path(marker).touch()
            os._exit(17)  # no cleanup, no exception: as a crashed or killed process

    return hook


__all__ = ["Worker", "Sessions", "Task", "EXIT_ONCE"]
