"""A CPU test double of Hugging Face's `spaces` package in ZeroGPU mode (SPACES_ZERO_GPU=true).

Put this folder first on PYTHONPATH and `import spaces` gets this module. It reproduces the execution model of
`spaces` 0.51.3 (read from spaces/config.py, spaces/zero/decorator.py, wrappers.py and client.py), which on a CPU
cannot run for real (it needs CUDA):
- `spaces.GPU` returns the function unchanged unless SPACES_ZERO_GPU=true.
- Each call states its `duration` (an int, or a callable given the call's own arguments); a duration over the
  quota left is refused before anything runs, with ZeroGPU's message ("Space app has reached its GPU limit").
- The function runs in a forked worker process, reused for the next call while it is alive; the worker closes the
  server's sockets it inherited (spaces closes the server port's connections). Its arguments, every
  yielded value and its result are pickled across (multiprocessing queues), in a thread of the worker.
- A gr.Error raised in the worker reaches the visitor intact; any other exception becomes
  gr.Error(<exception class name>, title="ZeroGPU worker error"); a dead worker gives "GPU task aborted".
- A value that fails to pickle on its way back: spaces' queue turns an error whose message says "pickle" into a
  PicklingError, which crosses as above. Any other error there escapes the worker's thread: a generator's call then
  just ends (its executor drops the error), a regular function's kills the worker ("GPU task aborted").
- Cancel: when the visitor's generator is closed, the parent sets a stop event; the worker closes the task's
  generator only after its next yield.
- `aoti_compile` returns the exported program, not AOTInductor's compiled one (see its docstring).
- Importing it after torch, diffusers or transformers fails, as ZeroGPU's start-up does once CUDA was touched.
It also writes one JSON line per call (requested and held seconds, yields, how it ended) to ZEROGPU_DOUBLE_LOG, in
the format of scripts/zerogpu/device_api.py's log ("released" and "refused" events),
and charges the seconds really held against the quota in the file ZEROGPU_DOUBLE_QUOTA_FILE (none without it).
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import json
import multiprocessing
import os
import pickle
import queue
import stat
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import wraps
from typing import Any

ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")
TOUCHES_CUDA = ("torch", "diffusers", "transformers")

if ZERO_GPU and (early := [name for name in TOUCHES_CUDA if name in sys.modules]):
    raise RuntimeError(f"CUDA has been initialized before importing the spaces package ({', '.join(early)} "
                       "imported first)")

_fork = multiprocessing.get_context("fork")
_forked = False  # True inside a worker: a decorated function called there runs directly
_quota_lock = threading.Lock()
_quota_used_s = 0.0
_day: int | None = None  # the quota file's mtime when today's quota was set


@dataclass
class _Ok:
    value: Any


@dataclass
class _Failed:
    error_cls: str
    traceback: str
    gradio_error: Exception | None


class _End:
    pass


def GPU(task=None, *, duration=None, size=None, **kwargs):  # noqa: N802  (the real name)
    if not callable(task):
        return lambda fn: _decorate(fn, duration)
    return _decorate(task, duration)


def _decorate(task, duration, regular: bool = False):
    if not ZERO_GPU:
        return task
    if not inspect.isgeneratorfunction(task):
        return _regular(task, duration)
    worker: list[_Worker] = []  # at most one warm worker, reused while it is alive

    @wraps(task)
    def gradio_handler(*args, **kwargs):
        if _forked:
            yield from task(*args, **kwargs)
            return
        requested = duration(*args, **kwargs) if callable(duration) else (duration or 60)
        _check_quota(requested)
        current = worker.pop() if worker else None  # as spaces: take the warm worker, start one if it died
        if current is None or not current.process.is_alive():
            current = _Worker(task, regular)
        current.stop.clear()
        _put(current.args, (args, kwargs))  # pickled here: an unpicklable argument fails the call
        arrived: queue.Queue = queue.Queue()
        record = {"function": task.__name__, "args": _describe(args), "requested_s": requested}
        reader = threading.Thread(target=_read_results, args=(current, worker, arrived, record), daemon=True)
        reader.start()
        while True:
            result = arrived.get()
            if result is None:
                raise _gr().Error("GPU task aborted", title="ZeroGPU worker error")
            if isinstance(result, _Failed):
                print(result.traceback, file=sys.stderr)
                if result.gradio_error is not None:
                    raise result.gradio_error
                raise _gr().Error(result.error_cls, title="ZeroGPU worker error")
            if isinstance(result, _End):
                return
            try:
                yield result.value
            except GeneratorExit:
                # As spaces does: stop the worker, then wait (in the thread closing this generator) for the reader,
                # which ends once the worker has yielded once more and stopped.
                current.stop.set()
                reader.join()
                raise

    return gradio_handler


def _regular(task, duration):
    """spaces' regular_function_wrapper: the same worker, quota and error mapping; the result is pickled back."""
    def single_result(*args, **kwargs):
        yield task(*args, **kwargs)

    single_result.__name__ = task.__name__
    as_generator = _decorate(single_result, duration, regular=True)

    @wraps(task)
    def gradio_handler(*args, **kwargs):
        if _forked:
            return task(*args, **kwargs)
        results = list(as_generator(*args, **kwargs))
        return results[0]

    return gradio_handler


def aoti_compile(exported_program, inductor_configs=None):
    """Stands in for spaces.aoti_compile (AOTInductor: minutes of C++ compiling, and its weights cross in pinned
    CUDA memory): the exported program itself, saved with its own copy of the weights and run as it is. Loaded as
    spaces' compiled model loads (ZeroGPUCompiledModel): on a call that finds nothing in its ContextVar, kept there,
    each load logged ("aoti_load"). So the route is the real one (export in the worker, the program pickled back,
    called by later workers, loaded per context); the compiler is not. The real `aoti_compile` runs on a CPU in
    scripts/aot_check.py and on a GPU in scripts/zerogpu_check.sh."""
    import io

    import torch

    archive = io.BytesIO()
    torch.export.save(exported_program, archive)
    return _ExportedModel(archive.getvalue())


class _ExportedModel:
    def __init__(self, archive: bytes):
        self.archive = archive
        self.loaded = contextvars.ContextVar("compiled_model", default=None)

    def __call__(self, *args, **kwargs):
        if (module := self.loaded.get()) is None:
            import io

            import torch

            module = torch.export.load(io.BytesIO(self.archive)).module()
            self.loaded.set(module)
            _log({"event": "aoti_load", "pid": os.getpid()})
        return module(*args, **kwargs)

    def __reduce__(self):
        return _ExportedModel, (self.archive,)


def _read_results(current, warm: list, arrived: queue.Queue, record: dict) -> None:
    """spaces' fill_yield_queue: hands the worker's results on as they come and releases the GPU (charging the
    seconds held) as soon as the worker ends, whether or not the visitor's side has read everything yet."""
    started, yields = time.monotonic(), 0
    while True:
        result = current.results.get()
        if isinstance(result, _Ok):
            yields += 1
            arrived.put(result)
            continue
        held = time.monotonic() - started
        _charge(held)
        if isinstance(result, _End):
            ended = "cancelled" if current.stop.is_set() else "done"
            warm.append(current)  # reused by the next call
        else:
            ended = "error"
        _log({"event": "released", **record, "held_s": round(held, 3), "yields": yields, "ended": ended})
        arrived.put(result)
        return


class _Worker:
    def __init__(self, task, regular: bool = False):
        self.args, self.results = _fork.SimpleQueue(), _fork.SimpleQueue()
        self.stop = _fork.Event()
        self.process = _fork.Process(target=_worker_loop, args=(task, self.args, self.results, self.stop, regular),
                                     daemon=True)
        self.process.start()
        threading.Thread(target=self._report_death, daemon=True).start()

    def _report_death(self):
        self.process.join()
        self.results.put(None)


def _worker_loop(task, args_queue, results, stop, regular=False):
    global _forked
    _forked = True
    _close_inherited_sockets()
    while True:
        args, kwargs = args_queue.get()

        def iterate(args=args, kwargs=kwargs):
            generator = task(*args, **kwargs)
            while True:
                try:
                    value = next(generator)
                except StopIteration:
                    break
                except Exception as err:  # noqa: BLE001  (crosses as ZeroGPU does)
                    results.put(_failure(err))
                    break
                if stop.is_set():  # Cancel is seen only after the task's next yield
                    generator.close()
                    break
                try:
                    _put(results, _Ok(value))  # pickled here
                except pickle.PicklingError as err:
                    results.put(_failure(err))
                    break

        with ThreadPoolExecutor() as executor:
            done = executor.submit(iterate)
        if regular:
            done.result()  # as spaces' regular worker: an error that escaped the thread ends the worker
        results.put(_End())


def _put(to_queue, value) -> None:
    """spaces.utils.SimpleQueue.put: a failure whose message says "pickle" is raised as a PicklingError (CPython
    raises TypeError or AttributeError for many of them), any other as it is."""
    try:
        to_queue.put(value)
    except pickle.PicklingError:
        raise
    except Exception as err:
        if "pickle" not in str(err):
            raise
        raise pickle.PicklingError(str(err)) from err


def _close_inherited_sockets() -> None:
    """As spaces' worker_init does for the server's connections: a forked worker holding copies of the server's
    sockets would keep visitors' HTTP connections open after the server closed them (requests then hang)."""
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError, ValueError):
            fd = int(name)
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.close(fd)


def _failure(err: Exception) -> _Failed:
    gradio_error = err if isinstance(err, _gr().Error) else None
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return _Failed(type(err).__name__, text, gradio_error)


def _quota_left() -> float | None:
    """Seconds left today, or None without a quota. The quota file (ZEROGPU_DOUBLE_QUOTA_FILE) holds the day's
    quota in seconds; writing it starts a new day, deleting it lifts the quota."""
    global _day, _quota_used_s
    path = os.environ.get("ZEROGPU_DOUBLE_QUOTA_FILE")
    if not path or not os.path.exists(path):
        return None
    with _quota_lock, open(path) as quota_file:
        stamp = os.stat(path).st_mtime_ns
        if stamp != _day:
            _day, _quota_used_s = stamp, 0.0
        return float(quota_file.read()) - _quota_used_s


def _check_quota(requested: float) -> None:
    left = _quota_left()
    if left is not None and requested > left:
        _log({"event": "refused", "requested_s": requested, "left_s": round(left, 3)})
        raise _gr().Error("Space app has reached its GPU limit. Try again later.", title="ZeroGPU quota exceeded")


def _charge(held_s: float) -> None:
    global _quota_used_s
    with _quota_lock:
        _quota_used_s += held_s


def _log(entry: dict) -> None:
    path = os.environ.get("ZEROGPU_DOUBLE_LOG")
    if path:
        with open(path, "a") as log:
            log.write(json.dumps(entry) + "\n")


def _describe(args: tuple) -> list:
    return [arg if isinstance(arg, str | int | float | bool) else type(arg).__name__ for arg in args]


def _gr():
    import gradio

    return gradio
