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
remembered. The file's own path is resolved at every check unless it is an image written here (the newest
WRITTEN_REMEMBERED): those paths were resolved when written, under the cache folder, whose folders only Gradio and
this module make.

Gradio's queue looks for an event to start by polling: every 1 ms, on the event loop, for as long as the server runs
(`Queue.start_processing`). With its 10 ms look for progress to send, that is ~1,100 wake-ups a second, 6 % of a core
on an idle 2-core EPYC, and during a job each one pre-empts one of the two threads torch runs the UNet on: the UNet
ran 4.5 % slower inside the server for it (benchmarks/README.md, "Gradio's queue polls the event loop"). The loop
here is Gradio's, waiting instead for a sign of work: an event joined the queue, or a job ended (which may let a
waiting event start). A missed sign would cost at most QUEUE_LOOK_S. (Gradio's progress loop is kept: replaced by
one waiting the same way, a browser test of Cancel failed in full suite runs.)

`gr.skip()` is the update `{"__type__": "update"}` with no properties, and Gradio handles it like any property
update: it rebuilds the component and regenerates its config and API schema (pydantic), on the event loop. A
streamed step skips four of Generate's seven outputs, so 25 steps rebuilt 100 components (about 0.4 s of the event
loop per request, measured with py-spy). A bare skip changes nothing, so it is passed through as it is.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import io
import os
import tempfile
import threading
import time
import weakref
import zlib
from pathlib import Path

from gradio import processing_utils, queueing, utils
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
    _remember_written(str(target))
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
    folder, resolved once, and `path_1` not resolved again when it is a file this module wrote (its path was
    resolved when it was written)."""
    text, folder = str(path_1), _resolved_folder(str(path_2))
    if text in _written:  # both resolved: a comparison of strings
        folder_text = str(folder)
        return text == folder_text or text.startswith(folder_text.rstrip(os.sep) + os.sep)
    try:
        utils.abspath(path_1).resolve().relative_to(folder)
        return True
    except ValueError:
        return False


WRITTEN_REMEMBERED = 4096  # the newest files written, by their resolved paths (a 25-step Generate writes ~35)
_written: dict[str, None] = {}  # insertion-ordered: the oldest is forgotten first
_written_lock = threading.Lock()  # written from Gradio's worker threads and the event loop


def _remember_written(resolved_path: str) -> None:
    with _written_lock:
        _written.pop(resolved_path, None)
        _written[resolved_path] = None
        while len(_written) > WRITTEN_REMEMBERED:
            del _written[next(iter(_written))]


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


QUEUE_LOOK_S = 0.05  # with no sign of work, the queue's loop looks anyway this often (Gradio: every 0.001 s)
# queue -> (the event loop serving it, its sign of work); a relaunched app keeps its queue but runs a new event loop
_signs: weakref.WeakKeyDictionary[queueing.Queue, tuple[asyncio.AbstractEventLoop, asyncio.Event]] = \
    weakref.WeakKeyDictionary()


def _sign(queue: queueing.Queue) -> asyncio.Event:
    loop = asyncio.get_running_loop()
    known = _signs.get(queue)
    if known is None or known[0] is not loop:
        known = _signs[queue] = (loop, asyncio.Event())
    return known[1]


async def _wait_for_work(queue: queueing.Queue) -> None:
    sign = _sign(queue)
    try:
        await asyncio.wait_for(sign.wait(), QUEUE_LOOK_S)
    except TimeoutError:
        pass
    sign.clear()  # before the loop looks at the queue: a sign given after this wakes the next wait


async def start_processing_when_there_is_work(self: queueing.Queue) -> None:
    """Gradio 6.31's Queue.start_processing, its three 1-ms sleeps replaced by waiting for a sign of work."""
    try:
        while not self.stopped:
            if len(self) == 0 or None not in self.active_jobs:
                await _wait_for_work(self)
                continue

            # Using mutex to avoid editing a list in use
            async with self.delete_lock:
                event_batch = self.get_events()

            if event_batch:
                events, batch, concurrency_id = event_batch
                self.active_jobs[self.active_jobs.index(None)] = events
                event_queue = self.event_queue_per_concurrency_id[concurrency_id]
                event_queue.current_concurrency += 1
                start_time = time.time()
                fn = events[0].fn
                event_queue.start_times_per_fn[fn].add(start_time)
                for event in events:
                    if (a := self.event_analytics.get(event._id)) is not None:
                        a["status"] = "processing"
                process_event_task = queueing.run_coro_in_background(
                    self.process_events, events, batch, start_time, fn
                )
                queueing.set_task_name(process_event_task, events[0].session_hash, fn._id, events[0]._id, batch)

                self._asyncio_tasks.add(process_event_task)
                process_event_task.add_done_callback(self._asyncio_tasks.discard)
                if self.live_updates:
                    self.broadcast_estimations(concurrency_id)
            else:
                await _wait_for_work(self)
    finally:
        self.stopped = True
        self._cancel_asyncio_tasks()


def signalling_work(method):
    """A Queue coroutine (`push`, `process_events`) that signs work to the queue's loop when it returns: an event
    joined, or a job ended and its slot is free."""

    @functools.wraps(method)
    async def wrapper(self, *args, **kwargs):
        try:
            return await method(self, *args, **kwargs)
        finally:
            _sign(self).set()

    return wrapper
