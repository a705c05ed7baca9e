"""Running a task beside Gradio's worker: per-step updates out, Cancel in, the models held until really idle."""

from __future__ import annotations

import queue
import threading
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


def stream_task(task: Callable[[TaskUpdates], Any], model_slots: threading.Semaphore
                ) -> Iterator[tuple[str, Any]]:
    """Run `task(updates)` in a worker thread; yield ("step", (i, t, latents, denoised)) per step,
    ("frame", (i, result)) per finished frame, then ("done", result).

    Steps the consumer had no time for are dropped: when several are waiting, only the newest is yielded. A fast GPU
    finishes steps quicker than a preview can be made, sent and shown, and a backlog of stale previews would delay
    the final image by as much; the trajectory in the result still holds every step. Frames are never dropped.

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
        waiting = None
        while True:
            kind, value = waiting or updates.get()
            waiting = None
            while kind == "step" and waiting is None:  # skip to the newest step already there
                try:
                    waiting = updates.get_nowait()
                except queue.Empty:
                    break
                if waiting[0] == "step":
                    kind, value, waiting = *waiting, None
            if kind == "error":
                raise value
            yield kind, value
            if kind == "done":
                return
    finally:
        stop.set()
