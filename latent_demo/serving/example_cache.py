"""Example clicks, computed once: the runner the examples use remembers each request's result for every visitor.

The models are fixed at start-up, and an example's request fixes its seed (unless the visitor ticks "random seed"),
so the same example gives the same result to everyone: the first click (by anyone) runs it, with its live steps;
later clicks skip the model and only make the pictures. This is our version of Gradio's lazy example caching
(`cache_examples="lazy"`), which does not fit these tabs: it caches the handler's outputs, and ours include per-visitor
state (the latents handed to img2img, the figures the quiz quotes) that would be written to a CSV as text and handed
to every later visitor; its first click would show no live steps and no progress; and its event runs outside the
shared model queue. Remembering the model job's result instead keeps all three. Nothing is cached on disk, so the
cache clean-up of Gradio's files (serving/files.py) has nothing of ours to delete: the pictures and files of a
replayed example are made again, like any other result's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import gradio as gr
import torch
from PIL import Image

from latent_demo.serving.runner import ModelRunner

REMEMBERED_RESULTS = 16  # requests kept, oldest forgotten first: the tabs' examples at their default settings fit
REPLAYED_NOTE = ("This example ran before (for you or another visitor) with exactly these settings: its result is "
                 "shown again without running the model, and its timings are that first run's.")


class RememberingRunner:
    """A ModelRunner in front of another: a request it has seen finish (same job, same arguments) returns the
    remembered result at once; any other runs as usual and is remembered when it ends (not when it fails or is
    cancelled)."""

    def __init__(self, runner: ModelRunner, capacity: int = REMEMBERED_RESULTS):
        self.runner, self.capacity = runner, capacity
        self._results: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.replays = 0  # how many requests were answered from memory (tests and benchmarks read it)

    def __getattr__(self, name: str) -> Any:  # models, settings, previews_need_models...: the runner's own
        return getattr(self.runner, name)

    def stream(self, name: str, *args) -> Iterator[tuple[str, Any]]:
        key = request_key(name, args)
        with self._lock:
            remembered = self._results.get(key)
            if remembered is not None:
                self._results.move_to_end(key)
                self.replays += 1
        if remembered is not None:
            gr.Info(REPLAYED_NOTE)
            yield "done", remembered
            return
        for kind, value in self.runner.stream(name, *args):
            if kind == "done":
                self._remember(key, value)
            yield kind, value

    def run(self, name: str, *args) -> Any:
        return [value for kind, value in self.stream(name, *args) if kind == "done"][0]

    def _remember(self, key: str, result: Any) -> None:
        with self._lock:
            self._results[key] = result
            while len(self._results) > self.capacity:
                self._results.popitem(last=False)


def request_key(name: str, args: tuple) -> str:
    """The job and every argument it gets, by value: settings dataclasses field by field, PIL images and tensors by
    their bytes (with their size, mode, shape and dtype), everything else by its repr."""
    digest = hashlib.sha256(name.encode())
    _feed(digest, args)
    return digest.hexdigest()


def _feed(digest, value) -> None:
    digest.update(type(value).__name__.encode())
    if isinstance(value, tuple | list):
        for item in value:
            _feed(digest, item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        _feed(digest, [getattr(value, field.name) for field in dataclasses.fields(value)])
    elif isinstance(value, Image.Image):
        digest.update(f"{value.mode} {value.size}".encode())
        digest.update(value.tobytes())
    elif isinstance(value, torch.Tensor):
        digest.update(f"{value.dtype} {tuple(value.shape)}".encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        digest.update(repr(value).encode())
