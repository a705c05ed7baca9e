"""Where one page request's time goes inside the server: `python -m benchmarks.request_timeline [--steps 2]`.

Launches the app in this process (offline model, 512 px), times the stages of a Generate request by wrapping them
(the model job, each update's postprocessing by Gradio, the trajectory pictures and GIF, the PNG writes, Gradio's
folder checks), sends `--reps` requests as the page does (`page_wait.PageWait`, after warm-ups), and prints each
request's timeline (ms from the request's start: stage@start+duration) and the stages' sums per request. The client
shares this process: it waits on sockets, so it costs the server little, but absolute times run a little higher
than with `served_split`, which keeps them apart.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import statistics
import time
from collections import defaultdict

import torch


class Stages:
    """Wraps functions so every call is timed: (name, start, end) per call, since `reset()`."""

    def __init__(self):
        self.calls: list[tuple[str, float, float]] = []

    def reset(self) -> float:
        self.calls = []
        return time.perf_counter()

    def wrap(self, owner, attribute: str, name: str | None = None) -> None:
        original, name = getattr(owner, attribute), name or attribute

        if inspect.iscoroutinefunction(original):
            @functools.wraps(original)
            async def timed(*args, **kwargs):
                started = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    self.calls.append((name, started, time.perf_counter()))
        else:
            @functools.wraps(original)
            def timed(*args, **kwargs):
                started = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    self.calls.append((name, started, time.perf_counter()))
        setattr(owner, attribute, timed)


SHOWN = ("model job", "postprocess", "trajectory and GIF", "GIF")  # in the timeline; the others only in the sums


def main(argv: list[str] | None = None) -> None:
    import gradio as gr
    from gradio import processing_utils, utils

    from benchmarks.page_wait import PageWait
    from benchmarks.processes import free_port
    from latent_demo.config import Settings
    from latent_demo.models import load_offline_models
    from latent_demo.presets import choose_dtypes
    from latent_demo.ui.app import build_app, launch
    from latent_demo.ui.tabs import generate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    settings = Settings(fast_decoder="none", offline=True, max_image_side=512, api_lists_page_events=True,
                        port=free_port())
    device = torch.device("cpu")
    demo = build_app(load_offline_models(device, *choose_dtypes(device, "auto")), settings)
    launch(demo, settings, prevent_thread_lock=True, quiet=True)
    stages = Stages()  # wrapped after launch: launch installs the app's own Gradio patches
    stages.wrap(generate, "generate", "model job")
    stages.wrap(generate, "trajectory_and_gif", "trajectory and GIF")
    stages.wrap(generate, "to_gif", "GIF")
    stages.wrap(gr.Blocks, "postprocess_data", "postprocess")
    stages.wrap(processing_utils, "save_pil_to_cache", "PNG writes (cached ones ~0)")
    stages.wrap(utils, "is_in_or_equal", "folder checks")
    stages.wrap(processing_utils, "is_in_or_equal", "folder checks")
    page = PageWait(f"http://127.0.0.1:{settings.port}/")
    request = ("a red fox", "", 1, False, args.steps, 0.0, "model default", 512, 512, False)
    try:
        for _ in range(2):
            page.call("/generate_page", *request)
        sums: dict[str, list[float]] = defaultdict(list)
        for _ in range(args.reps):
            started = stages.reset()
            answer = page.call("/generate_page", *request)
            timeline = " ".join(f"{name}@{(start - started) * 1e3:.0f}+{(end - start) * 1e3:.0f}"
                                for name, start, end in stages.calls if name in SHOWN)
            print(f"end to end {answer.total * 1e3:.0f} ms, final image shown at {answer.image * 1e3:.0f}: {timeline}")
            per_stage = defaultdict(float)
            for name, start, end in stages.calls:
                per_stage[name] += end - start
            for name, seconds in per_stage.items():
                sums[name].append(seconds)
        print(f"\noffline model, 512 px, {args.steps} steps; per request, medians of {args.reps}:")
        for name, seconds in sums.items():
            print(f"  {name:30s} {statistics.median(seconds) * 1e3:7.1f} ms")
    finally:
        page.close()
        demo.close()


if __name__ == "__main__":
    main()
