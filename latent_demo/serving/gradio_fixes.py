"""Workarounds for Gradio 6.31, installed at launch by serving/gradio_compat.py: a race, and two costs per streamed
update.

Gradio caches every output image under a hash of its bytes and rewrites that file on every request
(`processing_utils.save_pil_to_cache`: truncate, then write). When two visitors get the same image at the same time
(the Encode tab on the same example, the same seed), one request can serve the file while the other is rewriting
it: the download breaks ("peer closed connection without sending complete message body"). Writing to a temporary
file and renaming it over the cached one is atomic, so a reader always gets a whole file.

An image handed to Gradio again (the final image in two outputs and in two updates, a step picture shown live and
then in the trajectory) is encoded once: its cached file is remembered for as long as the image object lives. This
relies on the app never changing a picture after handing it to Gradio; none of its code does.

PNGs are written with zlib's run-length strategy instead of PIL's default (level 6): on a 2-core EPYC, a 512×512
image in 12 ms instead of 59 ms and in fewer bytes (360 KB against 366 KB for an offline-model image; the
astronaut photo 17 ms and 414 KB against 69 ms and 417 KB). zlib level 1, used before, took 17 ms for 413 KB. The
served path encodes a picture per denoising step and the final image at the end, on the event loop.

Before a file is served, Gradio checks where it lies (`utils.is_in_or_equal`: against the static files, the
blocked, allowed and upload folders, the working folder, the cache), about ten checks a file, each resolving both
paths through the file system (`Path.resolve`, a `stat` per path component), on the event loop: 0.4 ms a file, and
a 25-step Generate shows about a hundred files (live pictures, the trajectory twice), ~37 ms a request, most of it
after the final image. The second path is always one of those configured folders: it is resolved once and
remembered. The file's own path is still resolved at every check.

`gr.skip()` is the update `{"__type__": "update"}` with no properties, and Gradio handles it like any property
update: it rebuilds the component and regenerates its config and API schema (pydantic), on the event loop. A
streamed step skips four of Generate's seven outputs, so 25 steps rebuilt 100 components (about 0.4 s of the event
loop per request, measured with py-spy). A bare skip changes nothing, so it is passed through as it is.
"""

from __future__ import annotations

import copy
import functools
import io
import os
import tempfile
import weakref
import zlib
from pathlib import Path

from gradio import processing_utils, utils
from PIL import Image

PNG_OPTIONS = {"compress_level": 1, "compress_type": zlib.Z_RLE}  # any level but 0 (stored) runs the same RLE


def save_pil_to_cache_atomically(img: Image.Image, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    how = (cache_dir, name, format)
    known = _cached.get(id(img))
    if known is not None and known[0]() is img and known[1] == how and os.path.exists(known[2]):
        return known[2]
    data = fast_png(img) if format.lower() == "png" else processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    target = (folder / f"{name}.{format}").resolve()
    handle, temporary = tempfile.mkstemp(dir=folder, suffix=".part")
    with os.fdopen(handle, "wb") as file:
        file.write(data)
    os.replace(temporary, target)
    key = id(img)
    _cached[key] = (weakref.ref(img, lambda _, key=key: _cached.pop(key, None)), how, str(target))
    return str(target)


# id(image) -> (the image, how it was saved, its cached file): a picture handed to Gradio again is not encoded again
_cached: dict[int, tuple[weakref.ref, tuple[str, str, str], str]] = {}


def fast_png(img: Image.Image) -> bytes:
    """Gradio's PNG (with its metadata), written with PNG_OPTIONS."""
    with io.BytesIO() as output:
        img.save(output, "png", pnginfo=processing_utils.get_pil_metadata(img), **PNG_OPTIONS)
        return output.getvalue()


GRADIO_IS_IN_OR_EQUAL = utils.is_in_or_equal  # the check replaced at launch (its answers are the reference)


def is_in_or_equal(path_1: str | Path, path_2: str | Path) -> bool:
    """Gradio's check (is `path_1` `path_2` or inside it, both with links resolved), with `path_2`, a configured
    folder, resolved once."""
    try:
        utils.abspath(path_1).resolve().relative_to(_resolved_folder(str(path_2)))
        return True
    except ValueError:
        return False



@functools.lru_cache(maxsize=64)
def _resolved_folder(path: str) -> Path:
    return utils.abspath(path).resolve()


SKIP = {"__type__": "update"}  # what gr.skip() returns


def passing_skips_through(postprocess_data):
    """Blocks.postprocess_data that hands bare skips back untouched and postprocesses only the other outputs."""

    @functools.wraps(postprocess_data)
    async def wrapper(self, block_fn, predictions, state):
        if block_fn.batch or not isinstance(predictions, list | tuple) or len(predictions) != len(block_fn.outputs):
            return await postprocess_data(self, block_fn, predictions, state)
        skipped = {i for i, value in enumerate(predictions) if isinstance(value, dict) and value == SKIP}
        if not skipped or len(predictions) == 1:
            return await postprocess_data(self, block_fn, predictions, state)
        kept = [value for i, value in enumerate(predictions) if i not in skipped]
        if not kept:
            return [dict(SKIP) for _ in predictions]
        rest = copy.copy(block_fn)
        rest.outputs = [block for i, block in enumerate(block_fn.outputs) if i not in skipped]
        # Gradio wraps the value of a single output itself
        done = iter(await postprocess_data(self, rest, kept[0] if len(kept) == 1 else kept, state))
        return [dict(SKIP) if i in skipped else next(done) for i in range(len(predictions))]

    return wrapper
