"""Picture work started before an update is handed to Gradio, so it runs while Gradio encodes and sends that update.

A handler's generator is suspended at each `yield` until Gradio has postprocessed the update (the final image's PNG,
the file checks) and sent it; only then does the handler make the next pictures. Started here first, the next
pictures (Generate's trajectory and GIF) are made on another core meanwhile: at 2 steps on the offline model the two
ran one after the other for ~50 ms at the end of every request.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from latent_demo import openmp

T = TypeVar("T")
_PICTURE_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="latent-demo-pictures")


def start(make: Callable[..., T], *args) -> Future[T]:
    """`make(*args)` on a picture thread; `.result()` gives its value or raises its error. The thread gives its
    OpenMP team back after each piece of work (torch's picture conversions made one; see openmp.py)."""
    def made() -> T:
        try:
            return make(*args)
        finally:
            openmp.release_threads()
    return _PICTURE_THREADS.submit(made)
