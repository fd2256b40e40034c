"""Independent tasks on every local core, or as Ray tasks on an existing cluster.

One function `fn(shared, task) -> result` is applied to every task. `shared` (models, artefact
bytes, anything every task needs) goes to each worker once: to a local process when it starts,
to Ray through its object store (`ray.put`, one copy per node). Results come back as they finish,
with their task's index, so callers gather them in task order and get the same figures whatever
the number of workers.

- 1 worker: in this process (nothing is pickled; what `fn` caches stays warm);
- N local workers: N spawned processes (spawn, not fork: torch and the runtimes keep threads
  that a fork would copy in an unknown state); they ignore Ctrl-C, which this process handles,
  and are ended when it stops;
- `ray`: `ray.init(address)` joins the cluster, each task is a Ray task of one CPU. Ray is the
  optional extra `mvit[ray]`; every worker node needs mvit (and the extras its tasks use).

At most `window` tasks are in flight, so a dataset of any size is held a window at a time.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import resource
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import MvitError

RAY_EXTRA = "pip install 'mvit[ray]'"
Files = dict[str, bytes]  # relative path ("" for a single file) -> bytes


class WorkError(MvitError):
    """Bad --workers / --ray (exit 2)."""


def local_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity call
        return os.cpu_count() or 1


def peak_rss_mb() -> float:
    """This process's peak resident set so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if os.uname().sysname == "Darwin" else 2**10), 1)


def pack_files(path: Path) -> Files:
    """A file or a folder (an .mlpackage, a Hugging Face checkpoint) as bytes, to travel with a Ray task."""
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def unpack_files(files: Files, dest: Path) -> Path:
    """`pack_files`' bytes written back at `dest`, each file atomically."""
    from .files import write_bytes_atomic

    for rel, data in files.items():
        target = dest / rel if rel else dest
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, data)
    return dest


@dataclass(frozen=True)
class Workers:
    """Where tasks run: `count` local processes, or the Ray cluster at `ray_address`."""

    count: int = 1
    ray_address: str | None = None

    @classmethod
    def choose(cls, workers: int | None, ray_address: str | None) -> Workers:
        """--workers N (default: every local core) or --ray ADDRESS (default: $RAY_ADDRESS, unless --workers is given)."""
        if ray_address and workers is not None:
            raise WorkError("--workers and --ray exclude each other: Ray decides where its tasks run")
        address = ray_address or (os.environ.get("RAY_ADDRESS") if workers is None else None) or None
        if address is not None:
            import importlib.util

            if importlib.util.find_spec("ray") is None:
                raise WorkError(f"--ray needs Ray on this machine: {RAY_EXTRA}")
            _check_reachable(address)
            return cls(count=0, ray_address=address)
        if workers is not None and workers < 1:
            raise WorkError(f"--workers {workers}: use 1 or more local processes")
        return cls(count=workers or local_cores())

    @property
    def ships_files(self) -> bool:
        """A Ray worker may be another machine: files it needs travel with the tasks."""
        return self.ray_address is not None

    def describe(self) -> str:
        if self.ray_address is not None:
            return f"on the Ray cluster at {self.ray_address}"
        return "in this process" if self.count == 1 else f"on {self.count} local worker processes"

    def as_dict(self) -> dict[str, Any]:
        return {"backend": "ray" if self.ray_address else "local", "workers": self.count or None, "ray_address": self.ray_address}


def run_tasks(fn: Callable[[Any, Any], Any], shared: Any, tasks: Sequence[Any], workers: Workers, window: int | None = None) -> Iterator[tuple[int, Any]]:
    """(index, fn(shared, tasks[index])) for every task, in the order they finish."""
    if workers.ray_address is not None:
        yield from _on_ray(fn, shared, tasks, workers.ray_address, window)
    elif workers.count <= 1 or len(tasks) <= 1:
        for index, task in enumerate(tasks):
            yield index, fn(shared, task)
    else:
        yield from _on_local_processes(fn, shared, tasks, min(workers.count, len(tasks)), window)


_SHARED: Any = None


def _start_worker(shared: Any) -> None:
    global _SHARED
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent handles it
    from .cli_support import quiet_third_party

    quiet_third_party()
    _SHARED = shared


def _call_in_worker(fn: Callable[[Any, Any], Any], task: Any) -> Any:
    return fn(_SHARED, task)


def _on_local_processes(fn, shared, tasks, count: int, window: int | None) -> Iterator[tuple[int, Any]]:
    pool = cf.ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker, initargs=(shared,))
    finished = False
    try:
        pending: dict[cf.Future, int] = {}
        upcoming = iter(enumerate(tasks))
        limit = window or 2 * count
        for index, task in upcoming:
            pending[pool.submit(_call_in_worker, fn, task)] = index
            if len(pending) < limit:
                continue
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()
        while pending:
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()
        finished = True
    finally:
        if not finished:  # interrupted or failed: the workers' current tasks are of no use any more
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
        pool.shutdown(wait=finished, cancel_futures=True)


def _check_reachable(address: str) -> None:
    """A HOST:PORT nobody answers on fails in seconds here; Ray itself retries for minutes."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return  # `local`, `auto`, ray://: Ray's own words
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise WorkError(
            f"--ray {address}: no Ray cluster answers there ({exc.strerror or exc.__class__.__name__}); "
            "give the address `ray start --head` printed, or `local` to start one here"
        ) from None


def _ray_call(fn: Callable[[Any, Any], Any], shared: Any, task: Any) -> Any:
    return fn(shared, task)


def _on_ray(fn, shared, tasks, address: str, window: int | None) -> Iterator[tuple[int, Any]]:
    try:
        import ray
    except ImportError:
        raise WorkError(f"--ray needs Ray on this machine: {RAY_EXTRA}") from None
    import logging

    joined = not ray.is_initialized()
    if joined:
        # Ray's core installs C++ handlers that print a stack dump and kill the process on SIGTERM;
        # the caller's handlers (Ctrl-C and SIGTERM as one `interrupted` line) are put back.
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise WorkError(
                f"--ray {address}: cannot join the Ray cluster ({str(exc).splitlines()[0][:160]}); "
                "give the address `ray start --head` printed, or `local` to start one here"
            ) from None
        finally:
            for sig, handler in handlers.items():
                if handler is not None:
                    try:
                        signal.signal(sig, handler)
                    except ValueError:  # not the main thread: nothing was ours to restore
                        pass
    remote = ray.remote(num_cpus=1, max_retries=1)(_ray_call)
    pending: dict[Any, int] = {}
    try:
        shared_ref = ray.put(shared)
        limit = window or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))

        def gather(refs: list) -> Iterator[tuple[int, Any]]:
            done, _ = ray.wait(refs, num_returns=1)
            for ref in done:
                index = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # its message is Ray's traceback; the task's own error says what was wrong
                    if isinstance(exc.cause, MvitError):
                        raise exc.cause from None
                    raise
                yield index, result

        for index, task in enumerate(tasks):
            pending[remote.remote(fn, shared_ref, task)] = index
            if len(pending) >= limit:
                yield from gather(list(pending))
        while pending:
            yield from gather(list(pending))
    finally:
        # No ray.cancel: on an interrupt, Ray 2.60's core aborts the process on a reply for a
        # cancelled task. The tasks this driver owns end when it leaves the cluster anyway.
        if joined:
            ray.shutdown()  # leaves the cluster; a cluster this call started ends with it
