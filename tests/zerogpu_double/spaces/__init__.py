"""A CPU test double of Hugging Face's `spaces` package in ZeroGPU mode (SPACES_ZERO_GPU=true).

Put this folder first on PYTHONPATH and `import spaces` gets this module. It reproduces the execution model of
`spaces` 0.51.3 (read from spaces/config.py, spaces/zero/decorator.py, wrappers.py and client.py), which on a CPU
cannot run for real (it needs CUDA):
- `spaces.GPU` returns the function unchanged unless SPACES_ZERO_GPU=true.
- Each call states its `duration` (an int, or a callable given the call's own arguments), multiplied by the node's
  duration factor; a duration over the quota left is refused before anything runs, in ZeroGPU's words.
- The function runs in a forked worker process, one per GPU index, reused for the next call while it is alive and
  the scheduler says the slot is idle (else a new one is forked, and pays its start in the billed time); the worker
  first closes its copies of the Gradio server port's sockets, as spaces does, and only those. Its arguments, every
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
- A call still running after its duration gets ZeroGPU's warning ("GPU task is exceeding its requested duration and
  might be aborted", a gr.Warning), and an "overran" line in the log.
It also writes one JSON line per call (requested and held seconds, yields, how it ended, whether its worker was
cold) to ZEROGPU_DOUBLE_LOG, in the format of scripts/zerogpu/device_api.py's log ("released" and "refused"
events), and charges the seconds really held against the quota (device.py).

The runtime around those calls is in two modules of its own: `offload.py` (the main process: torch.cuda answers as
if a GPU were there; from launch on, every model weight there raises on use, as packed weights do; a worker gets
working copies before its first call) and `device.py` (the device API: whether the warm worker may be reused or a
cold one is forked, on a schedule a test sets; the quota and ZeroGPU's refusals word for word; the duration factor;
the warning of a call that runs past its duration).
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import multiprocessing
import os
import pickle
import queue
import socket
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

from . import device, offload  # noqa: E402  (after the check above: they import torch)

_fork = multiprocessing.get_context("fork")
_forked = False  # True inside a worker: a decorated function called there runs directly


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
    workers: dict[int, _Worker] = {}  # GPU index -> its warm worker, reused while alive and the slot is idle

    @wraps(task)
    def gradio_handler(*args, **kwargs):
        if _forked:
            yield from task(*args, **kwargs)
            return
        asked = duration(*args, **kwargs) if callable(duration) else (duration or 60)
        answer, requested = device.schedule(asked)
        current = workers.pop(answer.gpu, None)
        cold = current is None or not current.process.is_alive() or not answer.idle
        if cold:
            if current is not None:  # not idle: the node gives this call a fresh worker (the old one is dropped)
                current.process.kill()
            current = _Worker(task, regular)
        current.stop.clear()
        _put(current.args, (args, kwargs))  # pickled here: an unpicklable argument fails the call
        arrived: queue.Queue = queue.Queue()
        record = {"function": task.__name__, "args": _describe(args), "requested_s": requested, "gpu": answer.gpu,
                  "cold": cold}
        reader = threading.Thread(target=_read_results, args=(current, workers, answer.gpu, arrived, record),
                                  daemon=True)
        reader.start()
        _warn_past(requested, reader, record)
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


def _warn_past(requested_s: float, reader: threading.Thread, record: dict) -> None:
    """spaces' warn_duration: once the call has held its duration (scaled to this CPU), a warning in the page."""
    context = contextvars.copy_context()  # the event's context: gr.Warning reaches the visitor's page from it

    def warn():
        reader.join(requested_s * device.time_scale())
        if reader.is_alive():
            device.log({"event": "overran", "function": record["function"], "args": record["args"],
                        "requested_s": requested_s})
            _gr().Warning(device.DURATION_WARNING, title="ZeroGPU duration")

    threading.Thread(target=context.run, args=(warn,), daemon=True).start()


def _read_results(current, warm: dict, gpu: int, arrived: queue.Queue, record: dict) -> None:
    """spaces' fill_yield_queue: hands the worker's results on as they come and releases the GPU (charging the
    seconds held) as soon as the worker ends, whether or not the visitor's side has read everything yet."""
    started, yields = time.monotonic(), 0
    while True:
        try:
            result = current.results.get()
        except Exception as err:  # noqa: BLE001  (a worker that died mid-message)
            # spaces' reader would die here and leave the visitor waiting for 20 minutes (GENERATOR_GLOBAL_TIMEOUT);
            # the double ends the call as aborted instead, so a test fails at once
            print(f"ZeroGPU double: reading the worker's result failed: {err!r}", file=sys.stderr)
            result = None
        if isinstance(result, _Ok):
            yields += 1
            arrived.put(result)
            continue
        held = time.monotonic() - started
        device.charge(held)
        if isinstance(result, _End):
            ended = "cancelled" if current.stop.is_set() else "done"
            warm[gpu] = current  # reused by the next call on this GPU, if the slot is idle
        else:
            ended = "error"
        device.log({"event": "released", **record, "held_s": round(held, 3), "yields": yields, "ended": ended,
                    "worker": current.process.pid})
        arrived.put(result)
        return


class _Worker:
    def __init__(self, task, regular: bool = False):
        self.args, self.results = _fork.SimpleQueue(), _fork.SimpleQueue()
        self.stop = _fork.Event()
        fds = _server_connections()
        self.process = _fork.Process(target=_worker_loop,
                                     args=(task, self.args, self.results, self.stop, regular, fds), daemon=True)
        self.process.start()
        threading.Thread(target=self._report_death, daemon=True).start()

    def _report_death(self):
        self.process.join()
        self.results.put(None)


def _worker_loop(task, args_queue, results, stop, regular=False, fds=()):
    global _forked
    _forked = True
    for fd in fds:  # as spaces' worker_init: the server's connections, and only those
        with contextlib.suppress(OSError):
            os.close(fd)
    initialized = False
    while True:
        args, kwargs = args_queue.get()
        if not initialized:  # as spaces' worker_init, on the first call: inside the billed time
            # in a thread of its own, as spaces' torch.move: torch's thread pool is not usable from the forked
            # thread itself once the parent has used it (the copy deadlocks)
            with ThreadPoolExecutor(1) as executor:
                started_s = executor.submit(offload.unpack_in_worker, device.init_seconds()).result()
            device.log({"event": "worker_started", "pid": os.getpid(), "init_s": round(started_s, 3)})
            initialized = True

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


def _server_connections() -> list[int]:
    """spaces' Worker: this process's sockets on the Gradio server's port (its listener and visitors' connections),
    which the worker closes first: a forked worker holding copies would keep visitors' HTTP connections open after
    the server closed them (requests then hang). Other sockets (multiprocessing's, which pass tensors between the
    processes) stay open, as in spaces."""
    from gradio.context import Context, LocalContext

    blocks = LocalContext.blocks.get(None) or Context.root_block
    server = getattr(blocks, "server", None)
    port = server.config.port if server is not None else None
    fds = []
    for name in os.listdir("/proc/self/fd") if port is not None else ():
        with contextlib.suppress(OSError, ValueError):
            fd = int(name)
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            probe = socket.socket(fileno=os.dup(fd))
            try:
                local = probe.getsockname()
            finally:
                probe.close()
            if isinstance(local, tuple) and local[1] == port:
                fds.append(fd)
    return fds


def _failure(err: Exception) -> _Failed:
    gradio_error = err if isinstance(err, _gr().Error) else None
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return _Failed(type(err).__name__, text, gradio_error)


def _log(entry: dict) -> None:
    device.log(entry)


def _pack_at_launch() -> None:
    """spaces' one_launch(startup): the first gr.Blocks.launch packs the weights first, then launches."""
    import gradio

    launch = gradio.Blocks.launch

    def packing_launch(*args, **kwargs):
        gradio.Blocks.launch = launch
        count, packed_bytes = offload.packed_count(), offload.pack()
        print(f"ZeroGPU tensors packing: {offload.packed_count() - count} tensors, {packed_bytes / 2**20:.1f} MiB",
              file=sys.stderr)
        return launch(*args, **kwargs)

    gradio.Blocks.launch = packing_launch


if ZERO_GPU:
    offload.patch_main_process()
    _pack_at_launch()


def _describe(args: tuple) -> list:
    return [arg if isinstance(arg, str | int | float | bool) else type(arg).__name__ for arg in args]


def _gr():
    import gradio

    return gradio
