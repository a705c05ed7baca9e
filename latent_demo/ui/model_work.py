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
    """One denoising step as the tab receives it: CPU float32 latents x_t and x̂₀, and previews when they need a
    model."""

    index: int
    timestep: int
    latents: torch.Tensor
    denoised: torch.Tensor  # x̂₀: the clean latents the UNet's prediction implies at this step
    preview: Image.Image | None = None  # made in the job when previews need a model (fast decoder, safety checker)
    denoised_preview: Image.Image | None = None  # ... the same for x̂₀


# What the live preview, the trajectory gallery and the GIF show of each step (label, value).
VIEWS = [("x_t and x̂₀ side by side", "both"), ("x̂₀: the clean image the UNet predicts", "denoised"),
         ("x_t: the noisy latents", "noisy")]
DEFAULT_VIEW = "both"


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


def linear_picture(latents: torch.Tensor, size: tuple[int, int]) -> Image.Image:
    """Latents seen through the linear latent->RGB map (no model call), enlarged to `size` with hard edges."""
    return latents_to_rgb_preview(latents).resize(size, Image.Resampling.NEAREST)


PREVIEW_CELL_PX = 4  # a step's picture shows each latent cell as 4×4 px (the page enlarges it with hard edges)


def preview_size(latents: torch.Tensor) -> tuple[int, int]:
    """(width, height) of a step's picture: PREVIEW_CELL_PX per latent cell, half a 512-px image's side. Every cell
    stays visible, and each streamed picture costs a quarter of a full-size one to make and encode (PNG)."""
    return latents.shape[3] * PREVIEW_CELL_PX, latents.shape[2] * PREVIEW_CELL_PX


def preview_image(models: Models, latents: torch.Tensor, size: tuple[int, int], fast: bool = False) -> Image.Image:
    """A per-step picture: the linear latent->RGB approximation (free) or the fast decoder, at display size."""
    if fast and models.fast_decoder is not None:
        preview = pixels_to_pil(latents_to_pixels(models.fast_decoder, latents)).resize(size)
    else:
        preview = linear_picture(latents, size)
    if models.safety_filter is not None:  # previews show what is being generated: screened like the result
        preview, _ = models.safety_filter.screen(preview)
    return preview


def attach_trajectory_previews(models: Models, result: Any, screened: dict | None = None,
                               screened_denoised: dict | None = None) -> None:
    """With the safety checker on, the trajectory's pictures (x_t and x̂₀) are screened in the job, where the checker
    runs (`screened...`: step index -> the live previews, when they are those same pictures; the steps the stream
    dropped are made here)."""
    if not getattr(result, "trajectory", None):
        return
    size = preview_size(result.trajectory[0])
    result.trajectory_previews = _screened(models, result.trajectory, size, screened)
    result.denoised_previews = _screened(models, result.denoised_trajectory, size, screened_denoised)


def _screened(models: Models, steps: list, size: tuple[int, int], made: dict | None) -> list[Image.Image]:
    made = made or {}
    return [made.get(index) or preview_image(models, latents, size) for index, latents in enumerate(steps)]


def trajectory_pictures(models: Models, result: Any, view: str = DEFAULT_VIEW, shown: dict | None = None
                        ) -> list[Image.Image]:
    """The trajectory as pictures in the chosen view: made in the job (screened) when they need a model, else here
    (linear). `shown`: step index -> the live picture of that step in this view, when live pictures are the
    trajectory's own (linear previews: see `reusable_live_pictures`); those are reused as they are."""
    if not result.trajectory:
        return []
    size, shown = preview_size(result.trajectory[0]), shown or {}

    def noisy(index: int) -> Image.Image:
        made = result.trajectory_previews
        return made[index] if made else linear_picture(result.trajectory[index], size)

    def denoised(index: int) -> Image.Image:
        made = result.denoised_previews
        return made[index] if made else linear_picture(result.denoised_trajectory[index], size)

    def picture(index: int) -> Image.Image:
        if isinstance(shown.get(index), Image.Image):
            return shown[index]
        if view == "noisy":
            return noisy(index)
        return denoised(index) if view == "denoised" else side_by_side(noisy(index), denoised(index))

    return [picture(index) for index in range(len(result.trajectory))]


def reusable_live_pictures(runner: ModelRunner) -> bool:
    """Live pictures are the trajectory's own (linear previews, screened the same way) unless previews use the fast
    decoder or are off."""
    return runner.settings.preview == "approx"


def live_picture(runner: ModelRunner, step: Step, view: str = DEFAULT_VIEW) -> Image.Image | dict:
    """The live view of one step: the job's previews or the linear ones made here, or gr.skip() with previews off."""
    if runner.settings.preview == "none":
        return gr.skip()
    size = preview_size(step.latents)

    def picture(made: Image.Image | None, latents: torch.Tensor) -> Image.Image:
        return made if made is not None else linear_picture(latents, size)

    if view == "noisy":
        return picture(step.preview, step.latents)
    if view == "denoised":
        return picture(step.denoised_preview, step.denoised)
    return side_by_side(picture(step.preview, step.latents), picture(step.denoised_preview, step.denoised))


SIDE_BY_SIDE_GAP = 8  # px of white between x_t and x̂₀


def side_by_side(noisy: Image.Image, denoised: Image.Image) -> Image.Image:
    """x_t on the left, x̂₀ on the right."""
    width, height = noisy.size
    both = Image.new("RGB", (2 * width + SIDE_BY_SIDE_GAP, height), "white")
    both.paste(noisy.convert("RGB"), (0, 0))
    both.paste(denoised.convert("RGB").resize(noisy.size), (width + SIDE_BY_SIDE_GAP, 0))
    return both


def on_canvas(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` scaled to fit `size` and centred on a white canvas of that size (a GIF's frames share one size)."""
    if image.size == size:
        return image
    fitted = image.convert("RGB")
    fitted.thumbnail(size, Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", size, "white")
    canvas.paste(fitted, ((size[0] - fitted.width) // 2, (size[1] - fitted.height) // 2))
    return canvas


def check_view(view: str) -> str:
    """The view an API caller asked for, or a ValueError naming the allowed ones."""
    allowed = [value for _, value in VIEWS]
    if view not in allowed:
        raise ValueError(f"view {view!r} is unknown; choose one of: {', '.join(allowed)}")
    return view
