"""What every tab shares: error translation, streaming a task with Cancel, image and file conversions."""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from PIL import Image

from latent_demo.config import Settings
from latent_demo.images import open_image, pixels_to_pil
from latent_demo.latents import latents_to_pixels, latents_to_rgb_preview
from latent_demo.models import Models
from latent_demo.ui.streaming import stream_task

log = logging.getLogger("latent_demo.ui")
MODEL_JOBS = "models"  # the one concurrency_id of every event that runs the models

GPU_SECONDS = 300  # ZeroGPU's per-call budget: enough for max_steps at 768 px or a long seed walk

try:  # ZeroGPU on Hugging Face Spaces: GPU functions must be wrapped; elsewhere this is a no-op
    import spaces

    gpu = spaces.GPU(duration=GPU_SECONDS)
except ImportError:
    def gpu(fn):
        return fn


@dataclass(frozen=True)
class TabContext:
    """What app.py hands to every tab: the shared read-only models, the settings and cross-tab components."""

    models: Models
    settings: Settings
    encoded: gr.State  # per visitor: {"latents": tensor, "image": PIL} from the Encode tab
    model_slots: threading.Semaphore  # held while the models compute (concurrency_limit of them)

    def model_job(self, **kwargs) -> dict:
        """Event options for anything that runs the models: one shared queue slot and a stable API name."""
        return {"concurrency_id": MODEL_JOBS, "concurrency_limit": self.settings.concurrency_limit, **kwargs}

    def examples(self, rows: list[list], fill: list, fn: Callable, inputs: list, outputs: list,
                 label: str) -> gr.events.Dependency:
        """Examples that fill `fill` and run `fn` with one click, queued with the other model jobs; returns the run.

        (Gradio's own run_on_click event would bypass the shared concurrency_id.)
        """
        shown = gr.Examples(rows, inputs=fill, label=label, cache_examples=False)
        return shown.load_input_event.then(fn, inputs, outputs, **self.model_job(api_visibility="private"))

    def stream(self, task: Callable[[Callable], Any]) -> Iterator[tuple[str, Any]]:
        return stream_task(task, self.model_slots)

    def live_preview(self, latents: torch.Tensor) -> Image.Image | dict:
        """The per-step picture for the live view at the image's size, or gr.skip() when previews are off."""
        if self.settings.preview == "none":
            return gr.skip()
        factor = self.models.vae_scale_factor
        size = (latents.shape[3] * factor, latents.shape[2] * factor)
        return preview_image(self.models, latents, size, fast=self.settings.preview == "fast")


UNREADABLE = "the file is not an image this app can read (PNG, JPEG, WEBP, GIF, BMP, TIFF)"


def readable_upload_errors(component: gr.Image | gr.ImageEditor, max_pixels: int) -> gr.Image | gr.ImageEditor:
    """Gradio opens uploads before our handler; an unreadable file would give a generic error. Say what it is.

    (Wrapping the instance, not subclassing: Gradio writes a .pyi file next to any component subclass.)
    """
    preprocess = component.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except Image.DecompressionBombError:
            raise gr.Error(f"the image is too large: the limit is {max_pixels:,} pixels") from None
        except (OSError, ValueError, SyntaxError):
            raise gr.Error(UNREADABLE) from None

    component.preprocess = checked
    return component


def readable_value_errors(component: gr.components.Component) -> None:
    """A missing or malformed value (None, NaN in a whole-number field) gets a readable gr.Error from Gradio's own
    preprocessing, which would otherwise fail with a generic error."""
    preprocess = component.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except (TypeError, ValueError, OverflowError):
            raise gr.Error(f"“{component.label}”: {str(payload)[:40]!r} is not a valid value") from None

    component.preprocess = checked


def image_upload(settings: Settings, **kwargs) -> gr.Image:
    """An image input handed to the handler as the uploaded file itself (image_mode=None: Gradio neither decodes
    nor converts it), so our own checks open it: pixel limit before decoding, alpha over white, 16-bit scaled."""
    image = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"], **kwargs)
    return readable_upload_errors(image, settings.max_image_pixels)


def user_errors(fn: Callable) -> Callable:
    """ValueError -> gr.Error with the message; anything else is logged (no image data) and reported briefly."""
    def translate(err: Exception, args: tuple) -> gr.Error:
        if isinstance(err, ValueError):
            return gr.Error(str(err))
        log.exception("%s failed with %s; arguments: %s", fn.__name__, type(err).__name__, describe_arguments(args))
        return gr.Error(f"The server hit an unexpected {type(err).__name__}; it was logged. Please try again.")

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as err:  # noqa: BLE001  (translated for the visitor, logged for us)
                raise translate(err, args) from err
        return generator_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:  # noqa: BLE001
            raise translate(err, args) from err
    return wrapper


def describe_arguments(args: tuple) -> str:
    """Enough to reproduce a failure (numbers, flags, sizes) without logging what visitors sent (text, images)."""
    def describe(value) -> str:
        if value is None or isinstance(value, bool | int | float):
            return repr(value)
        if isinstance(value, str):
            return f"<text, {len(value)} chars>"
        if isinstance(value, Image.Image):
            return f"<image {value.width}x{value.height} {value.mode}>"
        return f"<{type(value).__name__}>"
    return ", ".join(describe(value) for value in args)


def load_upload(path: str | None, settings: Settings, what: str = "an image") -> Image.Image:
    if not path:
        raise ValueError(f"please upload {what} first (or click an example)")
    return open_image(Path(path), settings.max_image_pixels)


def preview_image(models: Models, latents: torch.Tensor, size: tuple[int, int], fast: bool = False) -> Image.Image:
    """A per-step picture: the linear latent->RGB approximation (free) or the fast decoder, at display size."""
    if fast and models.fast_decoder is not None:
        preview = pixels_to_pil(latents_to_pixels(models.fast_decoder, latents)).resize(size)
    else:
        preview = latents_to_rgb_preview(latents).resize(size, Image.Resampling.NEAREST)
    if models.safety_filter is not None:  # previews show what is being generated: screened like the result
        preview, _ = models.safety_filter.screen(preview)
    return preview


def upscale(image: Image.Image, factor: int) -> Image.Image:
    """Latent-grid pictures, enlarged with hard edges so each latent cell stays visible."""
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def format_timings(timings: dict[str, float]) -> str:
    labels = [("text", "text encoder"), ("encode", "VAE encode"), ("unet_per_step", "UNet per step"),
              ("unet", "UNet total"), ("decode", "decode"), ("total", "total")]
    return " · ".join(f"{label} {timings[key]:.2f} s" for key, label in labels if key in timings)


