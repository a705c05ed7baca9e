"""What every tab shares: error translation, streaming a task with Cancel, image and file conversions."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from PIL import Image
from safetensors.torch import save_file

from latent_demo.config import Settings
from latent_demo.images import open_image, pixels_to_pil
from latent_demo.latents import latents_to_pixels, latents_to_rgb_preview
from latent_demo.models import Models

log = logging.getLogger("latent_demo.ui")
MODEL_JOBS = "models"  # the one concurrency_id of every event that runs the models
SCRATCH_DIR = Path(tempfile.gettempdir()) / f"latent-demo-{os.getpid()}"
SCRATCH_MAX_AGE_S = 600  # Gradio copied each file into its own cache long before this
SCRATCH_MAX_FOLDERS = 64  # and at most this many are kept, whatever their age

try:  # ZeroGPU on Hugging Face Spaces: GPU functions must be wrapped; elsewhere this is a no-op
    import spaces

    gpu = spaces.GPU
except ImportError:
    def gpu(fn):
        return fn


@dataclass(frozen=True)
class TabContext:
    """What app.py hands to every tab: the shared read-only models, the settings and cross-tab components."""

    models: Models
    settings: Settings
    encoded: gr.State  # per visitor: {"latents": tensor, "image": PIL} from the Encode tab

    def model_job(self, **kwargs) -> dict:
        """Event options for anything that runs the models: one shared queue slot and a stable API name."""
        return {"concurrency_id": MODEL_JOBS, "concurrency_limit": self.settings.concurrency_limit, **kwargs}

    def examples(self, rows: list[list], fill: list, fn: Callable, inputs: list, outputs: list, label: str) -> None:
        """Examples that fill `fill` and run `fn` with one click, queued with the other model jobs.

        (Gradio's own run_on_click event would bypass the shared concurrency_id.)
        """
        shown = gr.Examples(rows, inputs=fill, label=label, cache_examples=False)
        shown.load_input_event.then(fn, inputs, outputs, **self.model_job(api_visibility="private"))


UNREADABLE = "the file is not an image this app can read (PNG, JPEG, WEBP, GIF, BMP, TIFF)"


def readable_upload_errors(component: gr.Image | gr.ImageEditor) -> gr.Image | gr.ImageEditor:
    """Gradio opens uploads before our handler; an unreadable file would give a generic error. Say what it is.

    (Wrapping the instance, not subclassing: Gradio writes a .pyi file next to any component subclass.)
    """
    preprocess = component.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            raise gr.Error(UNREADABLE) from None

    component.preprocess = checked
    return component


def image_upload(**kwargs) -> gr.Image:
    """An image input handed to the handler as a file path, so the handler's own checks open it."""
    return readable_upload_errors(gr.Image(type="filepath", sources=["upload", "clipboard"], **kwargs))


class Cancelled(Exception):
    """Raised inside the denoising loop when the visitor's job was cancelled."""


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
            except (gr.Error, Cancelled, GeneratorExit):
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


def stream_task(task: Callable[[Callable], Any]) -> Iterator[tuple[str, Any]]:
    """Run `task(callback)` in a worker thread; yield ("step", (i, t, latents)) per step, then ("done", result).

    Gradio closes this generator when the visitor presses Cancel (or leaves): the `finally` then stops the loop at
    its next step and waits for it, so the queue slot is only freed once the models are idle again.
    """
    updates: queue.Queue = queue.Queue()
    stop = threading.Event()

    def callback(i, t, latents):
        if stop.is_set():
            raise Cancelled()
        updates.put(("step", (i, int(t), latents.detach().float().cpu())))

    def work():
        try:
            updates.put(("done", task(callback)))
        except BaseException as err:  # noqa: BLE001  (handed to the consuming thread)
            updates.put(("error", err))

    worker = threading.Thread(target=work, name="latent-demo-task", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = updates.get()
            if kind == "error":
                raise value
            yield kind, value
            if kind == "done":
                return
    finally:
        stop.set()
        worker.join()


def load_upload(path: str | None, settings: Settings, what: str = "an image") -> Image.Image:
    if not path:
        raise ValueError(f"please upload {what} first (or click an example)")
    return open_image(Path(path), settings.max_image_pixels)


def preview_image(models: Models, latents: torch.Tensor, size: tuple[int, int], mode: str) -> Image.Image:
    """A per-step picture: the linear latent->RGB approximation (free) or the fast decoder, at display size."""
    if mode == "none":
        return gr.skip()
    if mode == "fast" and models.fast_decoder is not None and not models.is_untrained:
        preview = pixels_to_pil(latents_to_pixels(models.fast_decoder, latents)).resize(size)
    else:
        preview = latents_to_rgb_preview(latents).resize(size, Image.Resampling.NEAREST)
    if models.safety_filter is not None:  # previews show what is being generated: screened like the result
        preview, _ = models.safety_filter.screen(preview)
    return preview


def upscale(image: Image.Image, factor: int) -> Image.Image:
    """Latent-grid pictures, enlarged with hard edges so each latent cell stays visible."""
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def scratch_path(filename: str) -> Path:
    """A fresh path for a file we hand to Gradio (which copies it into its own cache); old ones are pruned."""
    SCRATCH_DIR.mkdir(parents=True, exist_ok=True)
    folders = sorted(((_mtime(folder), folder) for folder in SCRATCH_DIR.iterdir()), reverse=True)
    cutoff = time.time() - SCRATCH_MAX_AGE_S
    for index, (mtime, folder) in enumerate(folders):
        if index >= SCRATCH_MAX_FOLDERS or mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=SCRATCH_DIR)) / filename


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # pruned meanwhile by another request
        return 0.0


def to_gif(frames: list[Image.Image], seconds_per_frame: float = 0.25) -> str:
    path = scratch_path("trajectory.gif")
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(seconds_per_frame * 1000), loop=0)
    return str(path)


def latents_file(latents: torch.Tensor, models: Models, name: str = "latents") -> str:
    """The latents as a .safetensors file (tensor 'latents', already x scaling_factor) with what made them."""
    path = scratch_path(f"{name}.safetensors")
    metadata = {"scaling_factor": str(models.vae.config.scaling_factor), "model": models.source,
                "shape": "x".join(map(str, latents.shape))}
    save_file({"latents": latents.contiguous().float().cpu()}, str(path), metadata=metadata)
    return str(path)


def format_timings(timings: dict[str, float]) -> str:
    labels = [("text", "text encoder"), ("encode", "VAE encode"), ("unet_per_step", "UNet per step"),
              ("unet", "UNet total"), ("decode", "decode"), ("total", "total")]
    return " · ".join(f"{label} {timings[key]:.2f} s" for key, label in labels if key in timings)


