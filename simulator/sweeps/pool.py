"""Many simulations on any `concurrent.futures.Executor`: a local process pool, a Dask cluster.

`map_unordered(fn, items, executor=...)` yields `(index, result)` as each finishes; an item whose
`fn` raised (or whose worker died) yields the exception as its result, so one bad item never
loses the others. `executor_for("process" | "local-dask" | "dask://HOST:PORT", workers)` makes
the executor (a context manager that shuts it down). The local pool spawns its workers (no
fork: numba and threads do not survive one) and warms numba's cache once in each.

The one pool the sweep, `replicast compare` and the policy-quality benchmark use.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any, TypeVar

from simulator.sweeps.cell import warm

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = "process | local-dask | dask://HOST:PORT"


class ExecutorError(ValueError):
    """An --executor value that names no executor, or a cluster that cannot be reached."""


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def executor_for(kind: str = "process", workers: int | None = None) -> Iterator[Executor | None]:
    """The executor `kind` names, with `workers` workers (default one per core); None for
    `process` with one worker (run in this process: no spawn, nothing to pickle)."""
    n = default_workers() if workers is None else workers
    if n < 1:
        raise ExecutorError(f"--workers {n}: must be >= 1")
    if kind == "process":
        if n == 1:
            yield None
            return
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=n, mp_context=spawn, initializer=warm) as pool:
            yield pool
        return
    if kind == "local-dask" or kind.startswith("dask://"):
        with _dask(kind, n) as executor:
            yield executor
        return
    raise ExecutorError(f"--executor {kind}: use {EXECUTORS}")


@contextmanager
def _dask(kind: str, workers: int) -> Iterator[Executor]:
    try:
        from distributed import Client, LocalCluster  # noqa: PLC0415 - the optional extra
    except ImportError:
        raise ExecutorError(
            f"--executor {kind}: needs Dask's distributed; pip install 'replicast[dask]'"
        ) from None
    if kind == "local-dask":
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
        try:
            client.run(warm)
            yield client.get_executor()
        finally:
            client.close()
            cluster.close()
        return
    address = "tcp://" + kind.removeprefix("dask://")
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as error:
        raise ExecutorError(f"--executor {kind}: cannot reach the scheduler: {error}") from None
    try:
        client.run(warm)
        yield client.get_executor()
    finally:
        client.close()


def map_unordered(
    fn: Callable[[T], R], items: Sequence[T], executor: Executor | None = None
) -> Iterator[tuple[int, R | BaseException]]:
    """`(index, fn(item))` as each finishes (the exception instead, when it raised); in order,
    in this process, when `executor` is None."""
    if executor is None:
        for i, item in enumerate(items):
            try:
                yield i, fn(item)
            except Exception as error:
                yield i, error
        return
    futures: dict[Future[R], int] = {executor.submit(fn, item): i for i, item in enumerate(items)}
    try:
        for future in as_completed(futures):
            error = future.exception()
            yield futures[future], (error if error is not None else future.result())
    finally:
        for future in futures:
            future.cancel()


def map_ordered(
    fn: Callable[[T], R],
    items: Sequence[T],
    executor: Executor | None = None,
    on_done: Callable[[int, int, Any], None] | None = None,
) -> list[R]:
    """Every `fn(item)`, in item order; the first exception is raised once all have run.
    `on_done(done, total, result)` after each."""
    out: list[Any] = [None] * len(items)
    failed: BaseException | None = None
    for done, (i, result) in enumerate(map_unordered(fn, items, executor), start=1):
        if isinstance(result, BaseException):
            failed = failed or result
        out[i] = result
        if on_done is not None:
            on_done(done, len(items), result)
    if failed is not None:
        raise failed
    return out
