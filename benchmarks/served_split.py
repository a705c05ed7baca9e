"""Where the served path's extra time goes: `python -m benchmarks.served_split [--steps 25] [-- APP FLAGS]`.

Starts `python app.py --model offline` (flags after `--` go to the app, e.g. `-- --preview none`) and alternates a
`/generate` through the server, waited for as a page waits (`page_wait.PageWait`), with `tasks.generate` in this
process. It prints the medians of the task's own timings (the status line's: UNet, decode, task total) beside the
engine's, and the request's end to end and final-image times. What the task loses inside the server is contention
with the server's work; what the request adds beyond the task is the server's own work before and after it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks import processes
from benchmarks.page_wait import PageWait
from benchmarks.served_engine import generate_params, offline_engine


def main(argv: list[str] | None = None) -> None:
    from latent_demo.tasks import generate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("app_flags", nargs="*", help="after --: more flags for app.py")
    args = parser.parse_args(argv)
    models, settings = offline_engine(args.size, torch.device(args.device))
    params = generate_params(args.steps, 0.0, args.size)
    request = ("a red fox", "", 1, False, args.steps, 0.0, "model default", args.size, args.size, False)
    served, engine = [], []
    with processes.RunningApp("offline", 300, "--device", args.device, "--max-image-side", str(args.size),
                              *args.app_flags) as app:
        page = PageWait(app.url)
        for rep in range(args.reps + 1):  # the first of each is a warm-up
            answer = page.call("/generate_page", *request)
            image, total = answer.image, answer.total
            timings = processes.status_timings(processes.page_status(answer.outputs))
            started = time.perf_counter()
            result = generate(models, params, settings)
            wall = time.perf_counter() - started
            if rep:
                served.append({**timings, "image": image, "end to end": total})
                engine.append({**result.timings, "image": wall, "end to end": wall})
    print(f"offline model, {args.size} px, {args.steps} steps, guidance 0, {args.device}, app flags "
          f"{' '.join(args.app_flags) or '(none)'}; medians of {args.reps}, alternating")
    print(f"{'':22s} {'served':>8s} {'engine':>8s} {'ratio':>6s}")
    for key in ("unet", "decode", "total", "image", "end to end"):
        a, b = (statistics.median(row[key] for row in rows) for rows in (served, engine))
        name = {"total": "task total", "image": "final image shown"}.get(key, key)
        print(f"{name:22s} {a:8.3f} {b:8.3f} {a / b:6.3f}")


if __name__ == "__main__":
    main()
