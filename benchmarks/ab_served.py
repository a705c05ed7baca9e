"""A/B of the served path between two checkouts, as a page waits: `python -m benchmarks.ab_served OLD NEW`.

Starts `python app.py --model offline` from each checkout (e.g. `git worktree add /tmp/old <commit>` for OLD), then
times `/generate` on each in turn, alternating, and prints the medians of (first output, final image shown, end to
end). Both servers idle while the other works, so the comparison shares the machine's state.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import processes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkouts", nargs=2, type=Path, help="two project folders: before, after")
    parser.add_argument("--steps", type=int, nargs="+", default=[2, 25])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args(argv)
    apps = {}
    try:
        for folder in args.checkouts:
            processes.ROOT = folder.resolve()  # RunningApp starts app.py from ROOT
            apps[folder] = processes.RunningApp("offline", 300, "--device", "cpu", "--max-image-side",
                                                str(args.size)).__enter__()
        clients, page = {folder: processes.page_client(app.url) for folder, app in apps.items()}, processes.PageFetch()
        for steps in args.steps:
            request = ("a red fox", "", 1, False, steps, 0.0, "model default", args.size, args.size, False)
            times = processes.alternate_timed({
                folder: lambda client=client, request=request: processes.timed_stream(
                    client.submit(*request, api_name="/generate"), page=page)
                for folder, client in clients.items()}, args.reps)
            for folder, (first, image, total) in times.items():
                print(f"{folder}: {steps} steps: first output {first:.2f} s, final image {image:.2f} s, "
                      f"end to end {total:.2f} s (medians of {args.reps})")
    finally:
        for app in apps.values():
            app.__exit__()


if __name__ == "__main__":
    main()
