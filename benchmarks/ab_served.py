"""A/B of the served path between two checkouts, as a page waits: `python -m benchmarks.ab_served OLD NEW`.

Starts `python app.py --model offline` from each checkout (e.g. `git worktree add /tmp/old <commit>` for OLD), then
times `/generate` on each in turn, alternating, and prints the medians of (first output, final image shown, end to
end, the UNet's own time inside the server). The servers idle while another works, so the comparison shares the
machine's state (an idle server takes ~3 % of a core; before its queue stopped polling, 6 %). `--env` gives
each checkout's app its own variable (the same checkout may be named more than once; two identical apps measure the
comparison's own noise):
`python -m benchmarks.ab_served . . . --env LATENT_DEMO_PREVIEW_INTERVAL_MS=0 LATENT_DEMO_PREVIEW_INTERVAL_MS=100 ...`
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import processes
from benchmarks.page_wait import PageWait


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs="+", type=Path, help="project folders: before, after (two or more)")
    parser.add_argument("--env", nargs="+", default=[], help="VAR=VALUE for each checkout's app, in order")
    parser.add_argument("--steps", type=int, nargs="+", default=[2, 25])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args(argv)
    if args.env and (len(args.env) != len(args.checkouts) or not all("=" in pair for pair in args.env)):
        parser.error("--env takes one VAR=VALUE per checkout")
    apps = {}
    try:
        for i, folder in enumerate(args.checkouts):
            env = dict([args.env[i].split("=", 1)]) if args.env else {}
            processes.ROOT = folder.resolve()  # RunningApp starts app.py from ROOT
            label = f"{folder}" + (f" {args.env[i]}" if args.env else "")
            if label in apps:
                parser.error(f"{label} is named twice: give each its own --env")
            apps[label] = processes.RunningApp("offline", 300, "--device", "cpu", "--max-image-side",
                                               str(args.size), env=env).__enter__()
        pages = {label: PageWait(app.url) for label, app in apps.items()}
        for steps in args.steps:
            request = ("a red fox", "", 1, False, steps, 0.0, "model default", args.size, args.size, False)
            times = processes.alternate_timed({
                label: lambda page=page, request=request: with_unet_seconds(page, request)
                for label, page in pages.items()}, args.reps)
            for label, (first, image, total, unet) in times.items():
                print(f"{label}: {steps} steps: first output {first:.2f} s, final image {image:.2f} s, "
                      f"end to end {total:.2f} s, the UNet inside the server {unet:.2f} s (medians of {args.reps})")
    finally:
        for app in apps.values():
            app.__exit__()


def with_unet_seconds(page: PageWait, request: tuple) -> tuple[float, float, float, float]:
    """(first output, final image shown, end to end, the UNet's total from the status line) of one request."""
    answer = page.call("/generate_page", *request)
    unet = processes.status_timings(processes.page_status(answer.outputs))["unet"]
    return answer.first, answer.image, answer.total, unet


if __name__ == "__main__":
    main()
