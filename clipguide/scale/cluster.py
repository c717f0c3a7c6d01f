"""Joining or starting a Ray cluster for ``--ray``, and how many workers it holds.

Ray is imported only here and in :mod:`clipguide.scale.pool`, and only when ``--ray`` is given:
without it nothing in clipguide touches Ray.

* ``--ray local`` starts a cluster on this machine (stopped again when the command ends);
* ``--ray auto`` joins the cluster this machine belongs to (``ray start --head`` / ``--address``);
* ``--ray HOST:PORT`` (or ``ray://HOST:PORT``) joins that one.

Workers: one per GPU where the cluster has GPUs (``num_gpus=1`` each), else one per ``threads``
CPUs, capped by ``--workers``. Every worker computes with the same torch thread count as this
process would (``threads``): on a CPU the pictures depend on it, and this is what makes the
images of a split run byte-identical to the in-process run's.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError

INSTALL = 'pip install "clipguide[ray]"'
#: How long a cluster address may take to answer before it counts as unreachable (seconds).
CONNECT_TIMEOUT = 5.0


def add_scale_flags(parser: argparse.ArgumentParser) -> None:
    """``--ray`` and ``--workers``: the flags of every command that can run its tasks on Ray."""
    group = parser.add_argument_group("scale-out (Ray)")
    group.add_argument("--ray", default=None, metavar="local|auto|ADDRESS",
                       help="Run the tasks on Ray: 'local' starts a cluster on this machine, 'auto' joins the one it "
                       f"belongs to, HOST:PORT joins that one ({INSTALL}).")
    group.add_argument("--workers", type=int, default=None, metavar="N",
                       help="At most N Ray workers (default: one per GPU, or per --threads CPUs without GPUs).")


@dataclass
class Cluster:
    """A connected Ray cluster and the workers clipguide runs on it."""

    address: str
    workers: int
    threads: int  # torch threads of every worker
    gpus_per_worker: float
    cpus_per_worker: float
    started: bool  # this process started it (``local``), so it also stops it
    notes: list[str] = field(default_factory=list)

    @property
    def resources(self) -> dict[str, float]:
        return {"num_gpus": self.gpus_per_worker, "num_cpus": self.cpus_per_worker}

    def close(self) -> None:
        import ray

        if self.started and ray.is_initialized():
            ray.shutdown()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@contextmanager
def cluster_from_args(ns: argparse.Namespace, threads: int, say: Callable[[str], None]) -> Iterator[Cluster | None]:
    """The cluster ``--ray`` names (closed afterwards), or None without ``--ray``."""
    if ns.ray is None:
        if ns.workers is not None:
            raise UserError("--workers N counts Ray workers: add --ray local (or auto, or the head's address)")
        yield None
        return
    cluster = connect(ns.ray, workers=ns.workers, threads=threads)
    with cluster:
        for note in cluster.notes:
            say(note)
        say(f"Ray ({ns.ray}): {cluster.workers} worker(s), each " +
            ("with one GPU" if cluster.gpus_per_worker else f"computing with {cluster.threads} thread(s)"))
        yield cluster


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(f"--ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


def connect(address: str, *, workers: int | None = None, threads: int = 0) -> Cluster:
    """Start or join the cluster at ``address`` (checked before anything is written).

    ``threads``: torch threads per worker (0: this process's count, what an in-process run uses).
    An unreachable address is a one-line :class:`UserError` (exit 2), never a wait.
    """
    if workers is not None and workers < 1:
        raise UserError(f"--workers {workers}: give 1 or more")
    ray = import_ray()
    import torch

    threads = threads or torch.get_num_threads()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home from a tool run offline
    started = False
    if address not in ("local", "auto"):
        _check_reachable(address)
    if ray.is_initialized():  # a cluster this process already joined (a notebook, the tests)
        pass
    elif address == "local":
        with _stderr_kept_back():
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        started = True
    else:
        try:
            with _stderr_kept_back():
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        except ConnectionError as e:
            hint = "start one with `ray start --head`, or give its address" if address == "auto" else "check the address"
            raise UserError(f"cannot join the Ray cluster at {address!r} ({str(e).splitlines()[0]}): {hint}") from None
    return _size(Cluster(address, 1, threads, 0.0, 1.0, started), ray.cluster_resources(), workers)


@contextmanager
def _stderr_kept_back() -> Iterator[None]:
    """Ray's core writes its retries and notices straight to file descriptor 2; they are kept back
    while it connects (and shown only if connecting fails in an unexpected way), so that a wrong
    address ends in one line."""
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except ConnectionError:
            raise
        except BaseException:
            held.seek(0)
            os.write(saved, held.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _size(cluster: Cluster, resources: dict[str, float], cap: int | None) -> Cluster:
    """Workers the cluster holds: one per GPU, else one per ``threads`` CPUs; then the cap."""
    gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
    if gpus:
        cluster.gpus_per_worker, cluster.cpus_per_worker, fits = 1.0, 1.0, gpus
    else:
        cluster.cpus_per_worker = float(min(cluster.threads, max(cpus, 1)))
        fits = max(1, int(cpus // cluster.cpus_per_worker))
    cluster.workers = min(fits, cap) if cap else fits
    if cap and cap > fits:
        what = (f"{gpus} GPU(s)" if gpus else
                f"{cpus} CPUs at {cluster.threads} threads per worker; --threads 1 fits {cpus} workers, whose "
                "pictures match an in-process run with --threads 1")
        cluster.notes.append(f"--workers {cap}: the cluster holds {fits} worker(s) ({what})")
    return cluster


def _check_reachable(address: str) -> None:
    """A plain connect to the head's port, so that a wrong address fails in seconds (``ray.init``
    itself retries it without end)."""
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UserError(f"--ray {address!r}: give local, auto, or the head's HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as e:
        raise UserError(f"cannot reach the Ray cluster at {address} ({e.strerror or e}): check the address and "
                        "that `ray start --head` runs there") from None


__all__ = ["Cluster", "connect", "cluster_from_args", "add_scale_flags", "import_ray", "INSTALL"]
