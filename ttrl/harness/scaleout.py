"""Running shard jobs on several local processes or on a Ray cluster.

Workers never receive the parent's objects: each rebuilds the plugin set from the plan's
:class:`~ttrl.harness.plan.PluginRecipe` (built-ins, installed entry points, ``--plugin`` modules),
so a worker sees exactly the estimators the parent resolved. A shard job carries the groups the
parent read from a file, or a :class:`~ttrl.harness.sources.SimulationSlice` that the worker
simulates itself (so the parent never simulates). Results come back per shard and the parent
assembles them in shard order, which is why every executor gives the same numbers.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from ttrl.core.errors import UserError

from .plan import BenchPlan
from .shard import run_shard_job


class ProcessExecutor:
    """``--workers N``: a pool of N fresh (spawned) Python processes on this machine."""

    def __init__(self, workers: int):
        if workers < 1:
            raise UserError(f"--workers must be at least 1, got {workers}.")
        self.workers = workers
        self.description = f"{workers} local processes"
        self.pool: ProcessPoolExecutor | None = None

    in_process = False

    def run(self, plan: BenchPlan, jobs):
        # spawn, not fork: a worker must rebuild plugins from the recipe exactly as a Ray worker does
        self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        # at most two shards in flight per worker keeps memory flat on large files
        pending, queue = set(), list(jobs)
        queue.reverse()
        while queue or pending:
            while queue and len(pending) < 2 * self.workers:
                job = queue.pop()
                pending.add(self.pool.submit(run_shard_job, plan, job.index, job.groups, job.labels))
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class RayExecutor:
    """``--ray [ADDRESS]``: shard jobs as Ray tasks on an existing cluster, or on a local Ray instance.

    When Ray is already initialised in this process (an embedding program, the tests), that instance
    is used and left running; otherwise ``ray.init(address)`` is called and shut down afterwards.
    """

    def __init__(self, address: str | None = None, *, max_in_flight: int = 64):
        try:
            import ray
        except ImportError:
            raise UserError("--ray needs Ray: pip install 'ttrl[ray]'.") from None
        self.ray = ray
        self.address = address
        self.max_in_flight = max_in_flight
        self.started = False
        self.description = f"Ray ({address or 'local'})"

    in_process = False

    def run(self, plan: BenchPlan, jobs):
        ray = self.ray
        if not ray.is_initialized():
            target = None if self.address in (None, "local") else self.address
            try:
                ray.init(address=target, include_dashboard=False, log_to_driver=False)
            except ConnectionError as exc:
                raise UserError(f"--ray {self.address}: cannot connect to the Ray cluster ({exc}).") from None
            self.started = True
        task = ray.remote(run_shard_job)
        plan_ref = ray.put(plan)
        pending, queue = [], list(jobs)
        queue.reverse()
        while queue or pending:
            while queue and len(pending) < self.max_in_flight:
                job = queue.pop()
                pending.append(task.remote(plan_ref, job.index, job.groups, job.labels))
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield ray.get(ref)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False
