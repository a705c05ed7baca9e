"""Files handed to Gradio (GIFs, latents): written to a scratch folder that stays bounded in count and age."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from latent_demo.models import Models
from latent_demo.serving import gradio_compat

log = logging.getLogger(__name__)
SCRATCH_DIR = Path(tempfile.gettempdir()) / f"latent-demo-{os.getpid()}"
SCRATCH_MAX_AGE_S = 600  # Gradio copied each file into its own cache long before this
SCRATCH_MAX_FOLDERS = 64  # and at most this many are kept, whatever their age


def remove_scratch_at_exit() -> None:
    """At launch: the scratch folder goes when the server process ends."""
    atexit.register(shutil.rmtree, SCRATCH_DIR, ignore_errors=True)


def scratch_path(filename: str) -> Path:
    """A fresh path for a file we hand to Gradio (which copies it into its own cache); old ones are pruned."""
    SCRATCH_DIR.mkdir(parents=True, exist_ok=True)
    folders = sorted(((_mtime(folder), folder) for folder in SCRATCH_DIR.iterdir()), reverse=True)
    cutoff = time.time() - SCRATCH_MAX_AGE_S
    for index, (mtime, folder) in enumerate(folders):
        if index >= SCRATCH_MAX_FOLDERS - 1 or mtime < cutoff:  # - 1: room for the one made below
            shutil.rmtree(folder, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=SCRATCH_DIR)) / filename


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # pruned meanwhile by another request
        return 0.0


GIF_SAMPLE_SHRINK = 4  # the palette is taken from every frame at a quarter of its side
GIF_UNCHANGED = 255  # the palette index kept free: "this pixel is as in the previous frame" (GIF transparency)


def to_gif(frames: list[Image.Image], seconds_per_frame: float = 0.25) -> str:
    """An animated GIF of `frames` (one size), with one palette for all of them, no dithering, and each frame after
    the first storing only the pixels that changed.

    PIL would choose a palette per frame, which took 0.64 s for a 26-frame trajectory on a 2-core EPYC, a third of the
    served path's own cost. One palette from a small sample of every frame, applied without dithering, takes a fifth
    of that, and the latent cells (4×4 px each in the step pictures, so a quarter-size sample keeps every cell's
    colour) stay flat instead of speckled. The frames share that palette, so a pixel is unchanged exactly when its
    index is: marked with the free index (transparent, over the previous frame), which is what PIL's own
    optimisation finds by comparing the frames in RGB, in 66 of the 81 ms the 26-frame GIF took (now 36 ms, the
    same 273 KB)."""
    path = scratch_path("trajectory.gif")
    palette = palette_of(frames, colours=GIF_UNCHANGED)  # indices 0-254: 255 is never a colour
    indices = [np.asarray(frame.convert("RGB").quantize(palette=palette, dither=Image.Dither.NONE))
               for frame in frames]
    changes = [indices[0]]
    for previous, current in zip(indices, indices[1:], strict=False):
        changed = current.copy()
        changed[current == previous] = GIF_UNCHANGED
        changes.append(changed)
    pictures = [Image.fromarray(change, mode="P") for change in changes]
    for picture in pictures:
        picture.putpalette(palette.getpalette())
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=int(seconds_per_frame * 1000), loop=0,
                     transparency=GIF_UNCHANGED, disposal=1, optimize=False)  # 1: each frame stays under the next
    return str(path)


def palette_of(frames: list[Image.Image], colours: int = 256) -> Image.Image:
    """A palette image of at most `colours` colours for `frames`: every frame shrunk (nearest pixels, so only their
    own colours) side by side, quantized once."""
    width, height = (max(1, side // GIF_SAMPLE_SHRINK) for side in frames[0].size)
    sample = Image.new("RGB", (width * len(frames), height))
    for index, frame in enumerate(frames):
        sample.paste(frame.convert("RGB").resize((width, height), Image.Resampling.NEAREST), (index * width, 0))
    return sample.quantize(colours, method=Image.Quantize.FASTOCTREE)


def latents_file(latents: torch.Tensor, models: Models, name: str = "latents", **more: str) -> str:
    """The latents as a .safetensors file (tensor 'latents', already x scaling_factor) with what made them (and
    `more` metadata, e.g. the settings of a generation)."""
    path = scratch_path(f"{name}.safetensors")
    metadata = {"scaling_factor": str(models.vae.config.scaling_factor), "model": models.source,
                "shape": "x".join(map(str, latents.shape)), **more}
    save_file({"latents": latents.contiguous().float().cpu()}, str(path), metadata=metadata)
    return str(path)


def start_cache_cleanup(demo, max_age_s: int, interval_s: float | None = None) -> threading.Thread:
    """Every max_age_s / 2 seconds (or interval_s), delete the files Gradio cached for this app that are older than
    max_age_s.

    This replaces Blocks(delete_cache=...), whose clean-up task iterates the live sets of cached files while
    requests add to them; under load it dies on "Set changed size during iteration" and never runs again. This one
    logs whatever goes wrong in a round and carries on with the next.
    """
    interval_s = max(1.0, max_age_s / 2) if interval_s is None else interval_s

    def clean_forever():
        while not gradio_compat.is_running(demo):  # built, not launched yet
            time.sleep(min(1.0, interval_s))
        while gradio_compat.is_running(demo):
            time.sleep(interval_s)
            try:
                delete_old_cache_files(demo, max_age_s)
            except Exception:  # noqa: BLE001  (a failed round must not end the clean-up for good)
                log.exception("cleaning Gradio's cache failed; trying again in %.0f s", interval_s)

    thread = threading.Thread(target=clean_forever, name="latent-demo-cache-cleanup", daemon=True)
    thread.start()
    return thread


def delete_old_cache_files(demo, max_age_s: float) -> int:
    """Delete (and stop tracking) this app's cached files older than max_age_s; returns how many."""
    keep = gradio_compat.files_kept_in_cache(demo)
    cutoff, deleted = time.time() - max_age_s, 0
    for tracked in gradio_compat.cached_file_sets(demo):
        for path in list(tracked):  # snapshots: requests keep adding files meanwhile
            if path in keep or _ctime(path) >= cutoff:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            tracked.discard(path)
            deleted += 1
    return deleted


def _ctime(path: str) -> float:
    try:
        return os.stat(path).st_ctime
    except FileNotFoundError:  # already gone: stop tracking it
        return 0.0
