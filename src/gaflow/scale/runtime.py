"""Ray session handling shared by ``explain-dataset`` and ``bench --workers``.

:func:`require_ray` imports Ray or raises a :class:`~gaflow.errors.GaflowError` that says how to
install it; :func:`ray_session` joins a cluster (``address`` / ``$RAY_ADDRESS``) or starts a local,
embedded Ray sized for ``workers`` actors, and shuts down only what it started.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import GaflowError, InputError

INSTALL = "pip install 'gaflow[ray]'  (or: pip install 'ray[data]' pyarrow)"


def require_ray():
    """The ``ray`` module (with Ray Data and pyarrow), or a clear error saying how to install."""
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise GaflowError(
            f"this needs Ray, which is not installed ({exc.name or exc}): {INSTALL}"
        ) from None
    return ray


def check_workers(workers: int | None, gpus_per_worker: float = 0.0) -> int:
    """``workers`` as a positive int (``None``: the CPU count of this machine)."""
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    if isinstance(gpus_per_worker, bool) or not isinstance(gpus_per_worker, int | float) or not (
        0 <= gpus_per_worker < float("inf")
    ):
        raise InputError(f"gpus_per_worker must be a number >= 0, got {gpus_per_worker!r}")
    return workers


@dataclass
class Session:
    """What :func:`ray_session` did: ``local`` (started here) and its start-up ``seconds``."""

    address: str | None
    local: bool
    seconds: float


@contextmanager
def ray_session(workers: int, address: str | None = None, num_gpus: float | None = None):
    """A Ray session: an already initialised one is reused as is; ``address`` (or
    ``$RAY_ADDRESS``) joins that cluster; otherwise a local Ray with ``workers`` CPUs starts here
    and is shut down on exit."""
    ray = require_ray()
    if ray.is_initialized():
        yield Session(address, False, 0.0)
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    t0 = time.perf_counter()
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    import logging

    ray_logger = logging.getLogger("ray")  # start-up notices (auth mode, "Started ...")
    level = ray_logger.level
    ray_logger.setLevel(logging.ERROR)
    try:
        if address:
            _check_reachable(address)
            ray.init(address=address, **kwargs)
        else:
            # the driver's environment (PYTHONPATH, GAFLOW_DATA, HF_HUB_OFFLINE) reaches the
            # local workers: they are children of this process
            # "local": a new Ray here, never a cluster that 'ray start' left on this machine
            ray.init(address="local", num_cpus=workers, num_gpus=num_gpus, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray"
        raise GaflowError(f"could not start or join {where}: {exc}") from None
    finally:
        ray_logger.setLevel(level)
    try:
        yield Session(address, not address, time.perf_counter() - t0)
    finally:
        ray.shutdown()


@contextmanager
def quiet_ray_data(enabled: bool = True):
    """Ray Data logs a failed pipeline's stack trace on stderr; gaflow reports the cause itself
    (the full logs stay in Ray's session log folder)."""
    import logging

    logger = logging.getLogger("ray.data")
    level = logger.level
    if enabled:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def check_resources(ray, workers: int, gpus_per_worker: float = 0.0) -> None:
    """The cluster must hold ``workers`` actors at once (Ray would wait for them forever)."""
    have = ray.cluster_resources()
    need, kind = ((workers * gpus_per_worker, "GPU") if gpus_per_worker
                  else (float(workers), "CPU"))
    if have.get(kind, 0.0) + 1e-9 < need:
        raise GaflowError(
            f"{workers} workers need {need:g} {kind}s but the Ray cluster has "
            f"{have.get(kind, 0.0):g}; use fewer --workers" + (
                " or --gpus-per-worker" if gpus_per_worker else ""))


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """A ``host:port`` address must accept a connection (``ray.init`` would wait for minutes);
    other forms (``auto``, ``ray://...``) are left to Ray."""
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "/" in address:
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise GaflowError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start "
                          "one with 'ray start --head' or leave --address out to run locally"
                          ) from None


def data_context(ray, workers: int):
    """Ray Data settings: no order preserved (rows carry ids), quiet progress bars (gaflow
    draws its own)."""
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = False
    for name in ("enable_progress_bars", "enable_operator_progress_bars"):
        if hasattr(ctx, name):
            setattr(ctx, name, False)
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = False
    return ctx
