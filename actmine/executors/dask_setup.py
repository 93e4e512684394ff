"""Dask clusters for both kinds of work (evaluations, `dask_cluster`; process jobs, `job_pool`):
connecting to a running scheduler, or starting a `LocalCluster` that listens on 127.0.0.1 only."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping


WORKER_TTL_S = 60  # a LocalCluster's workers send heartbeats every second or so


class ClusterUnavailable(ValueError):
    """A scheduler that cannot be used (unreachable, too few workers in time); says which and why."""


def connect(scheduler: str, workers: int | None = None, timeout_s: float = 120.0):
    """A `distributed.Client` of the running cluster at ``scheduler``; with ``workers``, once that many
    workers have joined. Raises `ClusterUnavailable` naming the address and the cause."""
    from distributed import Client

    client = None
    try:
        client = Client(scheduler, timeout=timeout_s, set_as_default=False)
        if workers:
            client.wait_for_workers(workers, timeout=timeout_s)
        return client
    except Exception as exc:  # noqa: BLE001 - unreachable scheduler, timeout, refused handshake
        if client is not None:
            client.close()
        raise ClusterUnavailable(f"cannot use the Dask cluster at {scheduler}: {type(exc).__name__}: {exc}") from exc


def scheduler_connected(client) -> bool:
    """Whether ``client`` still has its scheduler: once it lost it, it says "connecting" (trying
    again, for up to two minutes) or "closed", and Dask cancels every task it had submitted."""
    return client is not None and client.status in ("running", "newly-created")


def lost_scheduler_message(client, when: str, consequence: str) -> str:
    """One line for a client that lost its scheduler: where, when, what it means, what to do."""
    where = client.scheduler.address if client.scheduler is not None else "its address"
    return (
        f"the connection to the Dask scheduler at {where} was lost {when}; {consequence}. "
        "Restart the scheduler (or check the network to it)"
    )


def local_cluster(
    workers: int, environment: Mapping[str, str] | None = None, resources: Mapping[str, float] | None = None
):
    """A `LocalCluster` of ``workers`` single-threaded worker processes on 127.0.0.1, no dashboard.

    ``environment``: set in each worker process *before* it starts (the nanny's pre-spawn-environ:
    glibc reads MALLOC_TRIM_THRESHOLD_ only at start-up); this process's environment is left as it
    was. ``resources``: what each worker offers (e.g. ``{"GPU": 1}``). The scheduler re-runs no task
    whose worker died (``allowed_failures=0``): the caller decides about retries. A worker silent
    for ``WORKER_TTL_S`` counts as dead. (A cluster of one's own sets these in its own config.)
    """
    import dask
    from distributed import LocalCluster

    pre_spawn = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **(environment or {})}
    # a worker whose heartbeats stop (stopped, swapping, hung) is declared lost after WORKER_TTL_S,
    # and its evaluation retried elsewhere, instead of Dask's default of five minutes
    settings = {
        "distributed.nanny.pre-spawn-environ": pre_spawn,
        "distributed.scheduler.worker-ttl": f"{WORKER_TTL_S}s",
    }
    if resources:
        settings["distributed.worker.resources"] = dict(resources)
    # The nannies run in this process and write pre-spawn-environ into os.environ before spawning.
    saved = {k: os.environ.get(k) for k in (*pre_spawn, "PYTHONHASHSEED")}
    try:
        with dask.config.set(settings):
            return LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                scheduler_port=0,
                dashboard_address=None,
                worker_dashboard_address=None,
                # no dashboard; the scheduler's HTTP routes (health, metrics) on a
                # free port of 127.0.0.1 rather than the default :8787
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0", "allowed_failures": 0},
                silence_logs=logging.ERROR,
            )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def close_quietly(client, cluster=None) -> None:
    """Close the client and the cluster (either may be None); a failure to close is logged, never
    raised. A client that lost its scheduler is closed without the traceback its cancelled
    reconnection loop logs: the caller has said what happened in one line."""
    client_log = logging.getLogger("distributed.client")
    level = client_log.level
    if client is not None and not scheduler_connected(client):
        client_log.setLevel(logging.CRITICAL + 1)
    try:
        for closing in (client, cluster):
            if closing is not None:
                try:
                    closing.close()
                except Exception as exc:  # noqa: BLE001 - best effort at the end of a run
                    logging.getLogger("actmine.executors").warning("closing %r: %s", closing, exc)
    finally:
        client_log.setLevel(level)
