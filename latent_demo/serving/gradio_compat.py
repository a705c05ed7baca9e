"""The one wall around Gradio's internals: every private function, method or attribute the app patches or reads.

Gradio does not promise to keep these: two functions of `processing_utils` (atomic cache writes, no URL downloads),
`is_in_or_equal` (the folder check, in `utils` and `processing_utils`), `Blocks.postprocess_data` (bare skips passed
through), the components' `preprocess` (readable errors for bad uploads and values), the Blocks' cache bookkeeping
(`temp_file_sets`, each block's `keep_in_cache`, `is_running`: our own clean-up thread), an example set's
`load_input_event` (examples queued with the model jobs), the queue's loop (`Queue.start_processing`: Gradio's own,
waiting for a sign instead of polling; `push` and `process_events` sign work) and PIL's global pixel limit. A renamed
one would make a patch silently do nothing, or, read with a default, make the clean-up delete files Gradio keeps. So
every one of them is listed here, read through the accessors below (never `getattr(..., default)`), and checked at
start-up: `check()` refuses to start with a message naming what changed. tests/test_gradio_compat.py greps the
source and fails on an internal used outside this list. Nothing here runs at import or in `build_app`: only
`launch` (ui/app.py) calls `apply()`.
"""

from __future__ import annotations

import logging

import gradio as gr
from gradio import processing_utils, queueing, utils
from PIL import Image

from latent_demo.config import Settings
from latent_demo.images import UNREADABLE
from latent_demo.serving import gradio_fixes, no_url_fetch

log = logging.getLogger(__name__)

TESTED_GRADIO = "6.31.0"  # the version these patches were read against (requirements.txt pins it)
# (owner, attribute, our replacement): Gradio functions this app replaces
PATCHES = [
    (processing_utils, "save_pil_to_cache", gradio_fixes.save_pil_to_cache_atomically),
    (processing_utils, "async_ssrf_protected_download", no_url_fetch.refuse_download),
    (gr.Blocks, "postprocess_data", gradio_fixes.passing_skips_through(gr.Blocks.postprocess_data)),
    (utils, "is_in_or_equal", gradio_fixes.is_in_or_equal),  # looked up in both modules, so replaced in both
    (processing_utils, "is_in_or_equal", gradio_fixes.is_in_or_equal),
    (queueing.Queue, "start_processing", gradio_fixes.start_processing_when_there_is_work),  # waits, never polls
    (queueing.Queue, "push", gradio_fixes.signalling_work(queueing.Queue.push)),  # signs of work to the loop
    (queueing.Queue, "process_events", gradio_fixes.signalling_work(queueing.Queue.process_events)),
]
# (owner, attribute): Gradio functions this app calls or wraps
USED = [
    (processing_utils, "encode_pil_to_bytes"),  # by the atomic cache writer
    (processing_utils, "hash_bytes"),
    (processing_utils, "get_pil_metadata"),
    (utils, "abspath"),  # by the folder check
    (gr.components.Component, "preprocess"),  # wrapped per component for readable errors
    (queueing, "run_coro_in_background"),  # by the queue's loop (Gradio's own, waiting instead of polling)
    (queueing, "set_task_name"),
    (queueing.Queue, "get_events"),
    (queueing.Queue, "broadcast_estimations"),
    (queueing.Queue, "_cancel_asyncio_tasks"),
]
BLOCKS_ATTRIBUTES = ["temp_file_sets", "is_running", "blocks"]  # of the app's Blocks (the cache clean-up)
BLOCK_ATTRIBUTES = ["keep_in_cache"]  # of every block: files Gradio must keep (cached examples)
EXAMPLES_ATTRIBUTES = ["load_input_event"]  # of a gr.Examples: the event that fills the inputs
QUEUE_ATTRIBUTES = ["stopped", "active_jobs", "delete_lock", "event_queue_per_concurrency_id", "event_analytics",
                    "_asyncio_tasks", "live_updates"]  # of the Blocks' `_queue`: read by the queue's loop
VALUE_COMPONENTS = (gr.Number, gr.Slider, gr.Checkbox, gr.Textbox, gr.Dropdown, gr.Radio)


class GradioIncompatible(RuntimeError):
    """The installed Gradio is not the one the patches were written for."""


def check(version: str = gr.__version__, demo: gr.Blocks | None = None) -> None:
    """Raise GradioIncompatible unless Gradio is the tested version and every patched or read internal exists."""
    if version != TESTED_GRADIO:
        raise GradioIncompatible(
            f"latent-demo patches Gradio internals checked against gradio {TESTED_GRADIO}, but {version} is "
            f"installed. Install gradio=={TESTED_GRADIO} (requirements.txt), or re-check "
            "latent_demo/serving/gradio_compat.py against the new version and update TESTED_GRADIO.")
    missing = [f"{_name(owner)}.{attribute}" for owner, attribute, *_ in (*PATCHES, *USED)
               if not callable(getattr(owner, attribute, None))]
    with gr.Blocks() as probe:  # a throwaway app: instance attributes exist only on instances
        examples = gr.Examples([["x"]], inputs=[gr.Textbox()])
    app = demo or probe
    missing += [f"Blocks().{name}" for name in BLOCKS_ATTRIBUTES if not hasattr(app, name)]
    missing += [f"Examples().{name}" for name in EXAMPLES_ATTRIBUTES if not hasattr(examples, name)]
    queue = app._queue if hasattr(app, "_queue") else None  # the queue's loop reads these
    missing += [f"Blocks()._queue.{name}" for name in QUEUE_ATTRIBUTES if not hasattr(queue, name)]
    blocks = app.blocks.values() if hasattr(app, "blocks") else []
    missing += sorted({f"Block().{name}" for block in blocks for name in BLOCK_ATTRIBUTES if not hasattr(block, name)})
    if missing:
        raise GradioIncompatible(f"gradio {version} no longer has {', '.join(missing)}, which latent-demo patches "
                                 "or reads (latent_demo/serving/gradio_compat.py)")


# The accessors: the only places the attributes above are read (a missing one raises AttributeError by name).
def is_running(demo: gr.Blocks) -> bool:
    return demo.is_running


def blocks_of(demo: gr.Blocks) -> list:
    return list(demo.blocks.values())


def cached_file_sets(demo: gr.Blocks) -> list[set]:
    """The live sets of files Gradio cached for this app (requests keep adding to them)."""
    return list(demo.temp_file_sets)


def files_kept_in_cache(demo: gr.Blocks) -> set[str]:
    """Files Gradio must keep whatever their age (cached examples): never deleted by our clean-up."""
    return set().union(*(block.keep_in_cache for block in blocks_of(demo)))


def examples_load_event(examples: gr.Examples) -> gr.events.Dependency:
    """The event that fills an example's inputs when it is clicked."""
    return examples.load_input_event


def apply(demo: gr.Blocks, settings: Settings) -> None:
    """Check, then install every patch and wrapper on `demo` (at launch only)."""
    check(demo=demo)
    for owner, attribute, replacement in PATCHES:
        setattr(owner, attribute, replacement)
    # PIL refuses images over twice this: Gradio's own decoding (the inpainting editor) then refuses what we do.
    Image.MAX_IMAGE_PIXELS = settings.max_image_pixels // 2
    for block in blocks_of(demo):
        if isinstance(block, gr.Image | gr.ImageEditor):
            readable_upload_errors(block, settings.max_image_pixels)
        elif isinstance(block, VALUE_COMPONENTS):
            readable_value_errors(block)


def readable_upload_errors(component: gr.Image | gr.ImageEditor, max_pixels: int) -> None:
    """Gradio opens uploads before our handler; an unreadable file would give a generic error. Say what it is.

    Only decoding failures become that message: an OSError with an errno (disk full, permissions) is the server's
    problem, logged and reported as such. (Wrapping the instance, not subclassing: Gradio writes a .pyi file next
    to any component subclass.)
    """
    preprocess = component.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except Image.DecompressionBombError:
            raise gr.Error(f"the image is too large: the limit is {max_pixels:,} pixels") from None
        except OSError as err:
            if err.errno is not None:  # the file system, not the file's contents
                log.exception("reading an upload failed on the server")
                raise gr.Error("The server could not read the upload (a problem on our side, logged). "
                               "Please try again.") from None
            raise gr.Error(UNREADABLE) from None
        except (ValueError, SyntaxError):
            raise gr.Error(UNREADABLE) from None

    component.preprocess = checked


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


def _name(owner) -> str:
    return getattr(owner, "__name__", type(owner).__name__)
