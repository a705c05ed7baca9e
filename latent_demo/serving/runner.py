"""Where model work runs: a thread beside Gradio, or a ZeroGPU worker process. The one module that decides which.

Tabs say what to run (a named job and its arguments) and what to show; this module runs the job where the GPU is,
streams its steps, honours Cancel and hands back plain CPU data. Everything else a visitor sees (channel images,
galleries, GIFs, PNG encoding) is made by the tab afterwards, off the GPU's clock: on ZeroGPU every second a call
holds counts against the visitor's daily quota.

On ZeroGPU (`spaces` imported by app.py before torch, and SPACES_ZERO_GPU=true) `spaces.GPU` runs `_run_job` in a
forked worker: its arguments, every yielded update and the result are pickled across, a gr.Error crosses intact
while any other exception becomes "ZeroGPU worker error", and Cancel stops the worker's generator after its next
yield. So jobs take and return picklable CPU values only, and user errors become gr.Error inside the job.
Elsewhere `spaces.GPU` is a no-op (or `spaces` is not installed) and the same code runs in this process.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr
import torch
from PIL import Image

from latent_demo import zerogpu
from latent_demo.config import Settings
from latent_demo.models import Models
from latent_demo.serving.previews import attach_trajectory_previews, preview_image, preview_size
from latent_demo.serving.streaming import stream_task

log = logging.getLogger(__name__)

# job(models, settings, *args, updates) -> result: runs where the GPU is.
Job = Callable[..., Any]
# estimate(models, settings, *args) -> seconds of GPU the call will hold (ZeroGPU's `duration`), read from configs
# and arguments only: on ZeroGPU it runs in the main process, where the weights are not usable.
Estimate = Callable[..., int]


@dataclass(frozen=True)
class Step:
    """One denoising step as the tab receives it: CPU float32 latents x_t and x̂₀, and previews when they need a
    model."""

    index: int
    timestep: int
    latents: torch.Tensor
    denoised: torch.Tensor  # x̂₀: the clean latents the UNet's prediction implies at this step
    preview: Image.Image | None = None  # made in the job when previews need a model (fast decoder, safety checker)
    denoised_preview: Image.Image | None = None  # ... the same for x̂₀


ZEROGPU_REFUSALS = ("ZeroGPU quota exceeded", "ZeroGPU illegal duration", "ZeroGPU queue timeout",
                    "ZeroGPU client error", "ZeroGPU pending credits exceeded")  # spaces' titles (zero/client.py)


def is_zerogpu_refusal(err: gr.Error) -> bool:
    """ZeroGPU said no before anything ran (quota, duration, no GPU): not a failure of the job."""
    return err.title in ZEROGPU_REFUSALS


def refusal_advice(err: gr.Error, requested_s: int) -> str:
    """What the visitor can do about a refusal, added to ZeroGPU's own words (which say what happened)."""
    smaller = "fewer steps or frames, a smaller image, or guidance off (one UNet call a step instead of two)"
    if err.title == "ZeroGPU illegal duration":
        return f"This request needs about {requested_s} s of GPU, more than one call may hold: try {smaller}."
    if "No GPU was available" in err.message:
        return "Every GPU is busy at the moment: try again in a minute."
    if "reached its GPU limit" in err.message:  # not logged in: a quota per address
        return (f"This request asks for {requested_s} s of GPU. Log in to Hugging Face for a larger daily quota, "
                f"try a smaller request ({smaller}), or come back later.")
    return f"This request asks for {requested_s} s of GPU; a smaller one ({smaller}) asks for less."


class ModelRunner:
    """Runs named jobs on the shared models, at most `concurrency_limit` at once, and streams their updates."""

    def __init__(self, models: Models, settings: Settings):
        self.models, self.settings = models, settings
        self.slots = threading.BoundedSemaphore(settings.concurrency_limit)  # held while the models compute
        self._jobs: dict[str, tuple[Job, Estimate]] = {}
        decorator = zerogpu.gpu_decorator()
        self._call = decorator(self._run_job, duration=self.gpu_seconds) if decorator else self._run_job

    @property
    def previews_need_models(self) -> bool:
        """The fast decoder and the safety checker run on the GPU: their previews are made inside the job."""
        return self.settings.preview == "fast" or self.models.safety_filter is not None

    def register(self, name: str, job: Job, estimate: Estimate) -> None:
        self._jobs[name] = (job, estimate)

    def gpu_seconds(self, name: str, *args) -> int:
        """ZeroGPU's `duration` for this call, from the same arguments the job gets."""
        return self._jobs[name][1](self.models, self.settings, *args)

    def stream(self, name: str, *args) -> Iterator[tuple[str, Any]]:
        """("step", Step) per denoising step, ("frame", (i, result)) per finished frame, then ("done", result).

        The result is handed on only once the call has ended: the tab then makes its pictures and files while no
        GPU is held for it."""
        result = None
        try:
            for kind, value in self._call(name, *args):
                if kind == "done":
                    result = value
                else:
                    yield kind, value
        except gr.Error as err:
            if not is_zerogpu_refusal(err):
                raise
            raise gr.Error(f"{err.message.strip()} {refusal_advice(err, self.gpu_seconds(name, *args))}",
                           title=err.title, print_exception=False) from None
        if result is None:  # a ZeroGPU call can end without one (a worker that failed to send it)
            raise gr.Error("The model worker ended without a result; please try again.")
        yield "done", result

    def run(self, name: str, *args) -> Any:
        """A job without steps to show (Encode, the noise explorer): its result."""
        results = [value for kind, value in self.stream(name, *args) if kind == "done"]
        return results[0]

    def _run_job(self, name: str, *args) -> Iterator[tuple[str, Any]]:
        """Runs where the GPU is (this process, or a ZeroGPU worker): only CPU values leave it."""
        job, _ = self._jobs[name]
        try:
            def task(updates):
                return job(self.models, self.settings, *args, updates)

            noisy_pictures, denoised_pictures = {}, {}  # step index -> its screened previews (steps shown only)
            for kind, value in stream_task(task, self.slots, self.settings.preview_interval_ms / 1000):
                if kind == "step":
                    value = self._step(*value)
                    noisy_pictures[value.index] = value.preview
                    denoised_pictures[value.index] = value.denoised_preview
                elif kind == "done" and self.models.safety_filter is not None:
                    reuse = self.settings.preview == "approx"  # the live previews are those pictures, screened
                    attach_trajectory_previews(self.models, value, noisy_pictures if reuse else None,
                                               denoised_pictures if reuse else None)
                yield kind, value
        except gr.Error:
            raise
        except ValueError as err:  # a user error: the message crosses ZeroGPU's process boundary only as gr.Error
            raise gr.Error(str(err)) from None
        except Exception as err:  # noqa: BLE001  (logged where it happened, reported briefly)
            log.exception("job %s failed with %s", name, type(err).__name__)
            raise gr.Error(f"The server hit an unexpected {type(err).__name__}; it was logged. Please try again."
                           ) from None

    def _step(self, index: int, timestep: int, latents: torch.Tensor, denoised: torch.Tensor) -> Step:
        if not self.previews_need_models or self.settings.preview == "none":
            return Step(index, timestep, latents, denoised)
        size, fast = preview_size(latents), self.settings.preview == "fast"
        return Step(index, timestep, latents, denoised, preview_image(self.models, latents, size, fast),
                    preview_image(self.models, denoised, size, fast))
