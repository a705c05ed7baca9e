"""Running a task beside Gradio's worker: per-step updates out, Cancel in, the models held until really idle."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any


class Cancelled(Exception):
    """Raised inside the denoising loop, at its next step, once the visitor's job was cancelled."""


class TaskUpdates:
    """What a running task reports through: call it after each denoising step (it is a StepCallback), and call
    .frame() when one of several results is finished (seed walk). Raises Cancelled once the job was cancelled."""

    def __init__(self, updates: queue.Queue, stop: threading.Event):
        self._updates, self._stop = updates, stop

    def __call__(self, i, t, latents, denoised) -> None:
        if self._stop.is_set():
            raise Cancelled()
        self._updates.put(("step", (i, int(t), latents.detach().float().cpu(), denoised.detach().float().cpu())))

    def frame(self, index: int, result: Any) -> None:
        self._updates.put(("frame", (index, result)))


PREVIEW_CPU_SHARE = 0.1  # the live pictures' share of the wall time, at most: the rest is the model's


def stream_task(task: Callable[[TaskUpdates], Any], model_slots: threading.Semaphore,
                min_step_interval_s: float = 0.0, cpu_share: float = PREVIEW_CPU_SHARE) -> Iterator[tuple[str, Any]]:
    """Run `task(updates)` in a worker thread; yield ("step", (i, t, latents, denoised)) per step,
    ("frame", (i, result)) per finished frame, then ("done", result).

    Steps are thinned: at most one per `min_step_interval_s` (a step that comes sooner is held until then, and
    replaced by any newer one), and when several are waiting only the newest is yielded. A fast GPU finishes steps
    quicker than a preview can be made, sent and shown; every preview also costs the server work that slows the
    steps after it, and a backlog of stale previews would delay the final image. A step still waiting when the task
    ends (or fails) is dropped: the result follows at once. The trajectory in the result holds every step. Frames
    are never dropped.

    The interval also adapts to what a step's picture costs: the time from yielding a step until the consumer asks
    for the next update (the tab makes its picture, Gradio encodes and sends it) is work on the cores the model
    runs on, so the next step is shown no sooner than that time / `cpu_share` later (measured on 2 cores: a small
    gain; the pictures are not what slows the UNet inside the server, benchmarks/README.md, "The page's own
    wait").

    Gradio closes this generator on its event loop when the visitor presses Cancel (or leaves), so the `finally`
    must not block: it only asks the loop to stop at its next step. The worker holds one of the model slots until it
    has really stopped, so the next job waits for the models in its own worker thread, never on the event loop.
    """
    updates: queue.Queue = queue.Queue()
    stop = threading.Event()

    def work():
        with model_slots:
            try:
                if stop.is_set():
                    raise Cancelled()
                updates.put(("done", task(TaskUpdates(updates, stop))))
            except BaseException as err:  # noqa: BLE001  (handed to the consuming thread)
                updates.put(("error", err))

    threading.Thread(target=work, name="latent-demo-task", daemon=True).start()
    try:
        waiting, shown_at = None, -float("inf")  # shown_at: when the last step was yielded
        interval_s = min_step_interval_s
        while True:
            kind, value = waiting or updates.get()
            waiting = None
            while kind == "step" and waiting is None:  # the newest step, once the interval since the last is over
                try:
                    wait_s = shown_at + interval_s - time.monotonic()
                    waiting = updates.get(timeout=wait_s) if wait_s > 0 else updates.get_nowait()
                except queue.Empty:
                    break
                if waiting[0] == "step":
                    kind, value, waiting = *waiting, None
            if kind == "step" and waiting is not None and waiting[0] in ("done", "error"):
                continue  # a step older than the result (or the error): that instead
            if kind == "error":
                raise value
            if kind == "step":
                shown_at = time.monotonic()  # the interval counts the consumer's own time with this step
            yield kind, value
            if kind == "done":
                return
            if kind == "step" and min_step_interval_s > 0:  # (0: every step, as tests and the ZeroGPU worker ask)
                interval_s = max(min_step_interval_s, (time.monotonic() - shown_at) / cpu_share)
    finally:
        stop.set()
