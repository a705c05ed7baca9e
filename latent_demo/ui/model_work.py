"""Where model work runs: a thread beside Gradio, or a ZeroGPU worker process. The one module that knows which.

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
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr
import torch
from PIL import Image

from latent_demo.config import Settings
from latent_demo.images import pixels_to_pil
from latent_demo.latents import latents_to_pixels, latents_to_rgb_preview
from latent_demo.models import Models
from latent_demo.ui.streaming import stream_task

log = logging.getLogger(__name__)

# job(models, settings, *args, updates) -> result: runs where the GPU is.
Job = Callable[..., Any]
# estimate(settings, *args) -> seconds of GPU the call will hold (ZeroGPU's `duration`).
Estimate = Callable[..., int]


@dataclass(frozen=True)
class Step:
    """One denoising step as the tab receives it: CPU float32 latents, and a preview when one needs a model."""

    index: int
    timestep: int
    latents: torch.Tensor
    preview: Image.Image | None = None  # made in the job when previews need a model (fast decoder, safety checker)


def zerogpu_decorator() -> Callable | None:
    """spaces.GPU when the `spaces` package was imported (app.py does it first, where it is installed)."""
    spaces = sys.modules.get("spaces")
    return getattr(spaces, "GPU", None)


class ModelRunner:
    """Runs named jobs on the shared models, at most `concurrency_limit` at once, and streams their updates."""

    def __init__(self, models: Models, settings: Settings):
        self.models, self.settings = models, settings
        self.slots = threading.BoundedSemaphore(settings.concurrency_limit)  # held while the models compute
        self._jobs: dict[str, tuple[Job, Estimate]] = {}
        decorator = zerogpu_decorator()
        self._call = decorator(self._run_job, duration=self.gpu_seconds) if decorator else self._run_job

    @property
    def previews_need_models(self) -> bool:
        """The fast decoder and the safety checker run on the GPU: their previews are made inside the job."""
        return self.settings.preview == "fast" or self.models.safety_filter is not None

    def register(self, name: str, job: Job, estimate: Estimate) -> None:
        self._jobs[name] = (job, estimate)

    def gpu_seconds(self, name: str, *args) -> int:
        """ZeroGPU's `duration` for this call, from the same arguments the job gets."""
        return self._jobs[name][1](self.settings, *args)

    def stream(self, name: str, *args) -> Iterator[tuple[str, Any]]:
        """("step", Step) per denoising step, ("frame", (i, result)) per finished frame, then ("done", result).

        The result is handed on only once the call has ended: the tab then makes its pictures and files while no
        GPU is held for it."""
        result = None
        for kind, value in self._call(name, *args):
            if kind == "done":
                result = value
            else:
                yield kind, value
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

            step_pictures = []
            for kind, value in stream_task(task, self.slots):
                if kind == "step":
                    value = self._step(*value)
                    step_pictures.append(value.preview)
                elif kind == "done" and self.models.safety_filter is not None:
                    reuse = step_pictures if self.settings.preview == "approx" else None  # already screened
                    attach_trajectory_previews(self.models, value, reuse)
                yield kind, value
        except gr.Error:
            raise
        except ValueError as err:  # a user error: the message crosses ZeroGPU's process boundary only as gr.Error
            raise gr.Error(str(err)) from None
        except Exception as err:  # noqa: BLE001  (logged where it happened, reported briefly)
            log.exception("job %s failed with %s", name, type(err).__name__)
            raise gr.Error(f"The server hit an unexpected {type(err).__name__}; it was logged. Please try again."
                           ) from None

    def _step(self, index: int, timestep: int, latents: torch.Tensor) -> Step:
        preview = None
        if self.previews_need_models and self.settings.preview != "none":
            preview = preview_image(self.models, latents, preview_size(self.models, latents),
                                    fast=self.settings.preview == "fast")
        return Step(index, timestep, latents, preview)


def linear_picture(latents: torch.Tensor, size: tuple[int, int]) -> Image.Image:
    """Latents seen through the linear latent->RGB map (no model call), enlarged to `size` with hard edges."""
    return latents_to_rgb_preview(latents).resize(size, Image.Resampling.NEAREST)


def preview_size(models: Models, latents: torch.Tensor) -> tuple[int, int]:
    """(width, height) in pixels of the image these latents decode to."""
    factor = models.vae_scale_factor
    return latents.shape[3] * factor, latents.shape[2] * factor


def preview_image(models: Models, latents: torch.Tensor, size: tuple[int, int], fast: bool = False) -> Image.Image:
    """A per-step picture: the linear latent->RGB approximation (free) or the fast decoder, at display size."""
    if fast and models.fast_decoder is not None:
        preview = pixels_to_pil(latents_to_pixels(models.fast_decoder, latents)).resize(size)
    else:
        preview = linear_picture(latents, size)
    if models.safety_filter is not None:  # previews show what is being generated: screened like the result
        preview, _ = models.safety_filter.screen(preview)
    return preview


def attach_trajectory_previews(models: Models, result: Any, screened: list | None = None) -> None:
    """With the safety checker on, the trajectory's pictures are screened in the job, where the checker runs
    (`screened`: the live previews, when they are those same pictures)."""
    trajectory = getattr(result, "trajectory", None)
    if not trajectory:
        return
    if screened is not None and len(screened) == len(trajectory) and all(p is not None for p in screened):
        result.trajectory_previews = list(screened)
    else:
        result.trajectory_previews = [preview_image(models, latents, result.image.size) for latents in trajectory]


def trajectory_pictures(models: Models, result: Any) -> list[Image.Image]:
    """The trajectory as pictures: made in the job (screened) when they need a model, else here (linear)."""
    if result.trajectory_previews is not None:
        return result.trajectory_previews
    return [linear_picture(latents, result.image.size) for latents in result.trajectory]


def live_picture(runner: ModelRunner, step: Step) -> Image.Image | dict:
    """The live view of one step: the job's preview, the linear one made here, or gr.skip() with previews off."""
    if runner.settings.preview == "none":
        return gr.skip()
    if step.preview is not None:
        return step.preview
    return linear_picture(step.latents, preview_size(runner.models, step.latents))
