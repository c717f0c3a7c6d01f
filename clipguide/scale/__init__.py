"""Scale-out: the tasks of ``compare``, a telephone study and ``batch`` on a Ray cluster.

``cluster`` starts or joins the cluster (``--ray local|auto|ADDRESS``, ``--workers N``), ``worker``
is what runs on it (models loaded once per worker), ``pool`` hands the tasks out and draws the
progress bar. Nothing here imports Ray until ``--ray`` is given. docs/scale-out.md has the commands.
"""

from .cluster import Cluster, add_scale_flags, cluster_from_args, connect
from .pool import run_here, run_on

__all__ = ["Cluster", "add_scale_flags", "cluster_from_args", "connect", "run_here", "run_on"]
