"""What every tab shares: the context, named outputs, error translation, the streaming skeleton, uploads."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
from collections import namedtuple
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from latent_demo import openmp
from latent_demo.config import Settings
from latent_demo.images import open_image
from latent_demo.models import Models
from latent_demo.serving import gradio_compat
from latent_demo.serving.example_cache import RememberingRunner
from latent_demo.serving.runner import ModelRunner, Step

log = logging.getLogger("latent_demo.ui")
MODEL_JOBS = "models"  # the one concurrency_id of every event that runs the models
KEEP = gr.skip()  # an output an update leaves as it is


def named_outputs(name: str, fields: str) -> type[tuple]:
    """An event's outputs as a named tuple, in the public API's order, every field defaulting to KEEP: an update
    names only what it changes (a misspelt name is a TypeError), and the same class filled with the components is
    the event's outputs list."""
    names = fields.split()
    return namedtuple(name, names, defaults=[KEEP] * len(names))


@dataclass(frozen=True)
class TabContext:
    """What app.py hands to every tab: the shared read-only models, the settings, cross-tab state, the runner."""

    models: Models
    settings: Settings
    encoded: gr.State  # per visitor: state.EncodedImage, the latents handed to img2img (Encode, Generate, a file)
    runner: ModelRunner  # runs model work where the GPU is (this process or a ZeroGPU worker)
    lesson: gr.State  # per visitor: state.LessonFigures, the figures the tabs showed them, for the quiz
    example_runner: RememberingRunner | None = None  # in front of `runner`, for examples computed once (see there)

    def remembering(self) -> TabContext:
        """This context with the runner that remembers results, for examples: an example's second click, by any
        visitor, skips the model (serving/example_cache.py says why that is safe and why not Gradio's own cache)."""
        return dataclasses.replace(self, runner=self.example_runner or RememberingRunner(self.runner))

    def model_job(self, **kwargs) -> dict:
        """Event options for anything that runs the models: one shared queue slot and a stable API name."""
        return {"concurrency_id": MODEL_JOBS, "concurrency_limit": self.settings.concurrency_limit, **kwargs}

    def page_event(self, name: str) -> dict:
        """Event options for a page event whose view has a form for scripts under `name`: it is `{name}_page`, and
        off the API page unless --api-lists-page-events (gradio_client fills in defaults only for listed ones)."""
        listed = "public" if self.settings.api_lists_page_events else "undocumented"
        return self.model_job(api_name=f"{name}_page", api_visibility=listed)

    def examples(self, rows: list[list], fill: list, fn: Callable, inputs: list, outputs: list,
                 label: str) -> gr.events.Dependency:
        """Examples that fill `fill` and run `fn` with one click, queued with the other model jobs; returns the run.

        (Gradio's own run_on_click event would bypass the shared concurrency_id.)
        """
        shown = gr.Examples(rows, inputs=fill, label=label, cache_examples=False)
        return gradio_compat.examples_load_event(shown).then(fn, inputs, outputs,
                                                             **self.model_job(api_visibility="private"))


def image_upload(settings: Settings, **kwargs) -> gr.Image:
    """An image input handed to the handler as the uploaded file itself (image_mode=None: Gradio neither decodes
    nor converts it), so our own checks open it: pixel limit before decoding, alpha over white, 16-bit scaled."""
    return gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"], **kwargs)


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
            updates = fn(*args, **kwargs)
            try:
                while True:
                    try:  # each update may be made in another of Gradio's worker threads
                        update = next(updates)
                    except StopIteration:
                        return
                    finally:
                        openmp.release_threads()
                    yield update
            except gr.Error:
                raise
            except Exception as err:  # noqa: BLE001  (translated for the visitor, logged for us)
                raise translate(err, args) from err
            finally:
                updates.close()  # Cancel: Gradio closes this generator, and this one closes the handler's
        return generator_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as err:  # noqa: BLE001
            raise translate(err, args) from err
        finally:
            openmp.release_threads()
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


def format_timings(timings: dict[str, float]) -> str:
    labels = [("text", "text encoder"), ("encode", "VAE encode"), ("unet_per_step", "UNet per step"),
              ("unet", "UNet total"), ("decode", "decode"), ("total", "total")]
    return " · ".join(f"{label} {timings[key]:.2f} s" for key, label in labels if key in timings)


def sampling_updates(runner: ModelRunner, job: str, args: tuple, total: int, progress: gr.Progress
                     ) -> Iterator[Step | Any]:
    """The streaming skeleton of every sampling tab: each Step (with the progress bar moved), then the result."""
    for kind, value in runner.stream(job, *args):
        if kind == "step":
            progress((value.index + 1, total), desc=f"UNet step {value.index + 1} of {total} (t={value.timestep})")
            yield value
        elif kind == "done":
            yield value


def step_status(step: Step, total: int) -> str:
    return f"step {step.index + 1} of {total}, t = {step.timestep}"


def used_seed_output(prefix: str) -> gr.Number:
    """The seed a run used, shown apart from the Seed input (which a failed run would mark with an error)."""
    return gr.Number(label="Seed used", precision=0, interactive=False, elem_id=f"{prefix}-used-seed")


def bound(handler: Callable, ctx: TabContext) -> Callable:
    """A module-level handler given its tab's context: what Gradio calls (its signature loses `ctx`)."""
    call = functools.partial(handler, ctx)
    call.__name__ = handler.__name__  # Gradio names unnamed events after the function
    return call
