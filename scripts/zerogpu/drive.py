"""Drive a running app the way visitors do and report what ZeroGPU charged for it.

Calls every endpoint, a streamed /generate cancelled after its first steps, and the Encode -> img2img and
Encode -> inpainting hand-offs; then reads the device API's log (one JSON line per "released"/"refused" event,
as scripts/zerogpu/device_api.py and the CPU test double write it) and prints the GPU seconds held per endpoint.
With --until-refused it then calls the default /generate until the quota refuses one and prints how many fit.

    python scripts/zerogpu/drive.py http://127.0.0.1:7860/ schedule.jsonl [--until-refused]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

ROOT = Path(__file__).resolve().parents[2]
ASSET = str(ROOT / "assets")
EDITOR = {"background": handle_file(f"{ASSET}/astronaut.png"), "layers": [handle_file(f"{ASSET}/astronaut-mask.png")],
          "composite": None}


def released(log: Path) -> list[dict]:
    if not log.exists():
        return []
    events = [json.loads(line) for line in log.read_text().splitlines()]
    return [event for event in events if event.get("event") == "released"]


def timed_call(client: Client, log: Path, name: str, **kwargs) -> tuple[float, float, object]:
    """(wall seconds, GPU seconds held, result) of one call."""
    before = len(released(log))
    started = time.perf_counter()
    result = client.predict(**kwargs)
    wall = time.perf_counter() - started
    time.sleep(0.2)  # the release is logged just after the answer
    held = sum(event["held_s"] for event in released(log)[before:])
    status = str(result[-1]) if isinstance(result, tuple | list) else ""
    task = re.search(r"· total (\d+\.\d+) s", status)  # the task's own time, as the status line reports it
    target = f"   task {float(task[1]):5.2f} s, held/(1.2·task+0.3) {held / (1.2 * float(task[1]) + 0.3):.2f}" \
        if task else ""
    print(f"{name:<28} wall {wall:6.2f} s   GPU held {held:6.2f} s{target}")
    return wall, held, result


def every_endpoint(client: Client, log: Path) -> None:
    timed_call(client, log, "/generate (defaults)", prompt="a red fox in the snow", api_name="/generate")
    timed_call(client, log, "/encode", image=handle_file(f"{ASSET}/astronaut.png"), api_name="/encode")
    _, _, result = timed_call(client, log, "/img2img from Encode", source="the latents from the Encode tab",
                              image=None, api_name="/img2img")
    assert "Started at step" in result[-1], result[-1]
    timed_call(client, log, "/img2img upload", source="the uploaded image",
               image=handle_file(f"{ASSET}/chelsea.png"), prompt="a tiger", api_name="/img2img")
    _, _, result = timed_call(client, log, "/inpaint (Encode's image)", editor=EDITOR, prompt="sunflowers",
                              api_name="/inpaint")
    assert "Method" in result[-1], result[-1]
    timed_call(client, log, "/add_noise", image=handle_file(f"{ASSET}/astronaut.png"), timestep=500,
               api_name="/add_noise")
    timed_call(client, log, "/add_noise (cached latents)", image=handle_file(f"{ASSET}/astronaut.png"),
               timestep=900, api_name="/add_noise")
    timed_call(client, log, "/seed_walk (5 frames)", api_name="/seed_walk")
    timed_call(client, log, "/compress (7 squeezes)", image=handle_file(f"{ASSET}/astronaut.png"),
               api_name="/compress")
    timed_call(client, log, "/why_latents", api_name="/why_latents")


def cancel_a_stream(client: Client, log: Path) -> None:
    before = len(released(log))
    job = client.submit(prompt="a lighthouse", steps=50, api_name="/generate")
    deadline = time.monotonic() + 120
    while not job.outputs() and time.monotonic() < deadline:
        time.sleep(0.02)
    job.cancel()
    time.sleep(2)
    held = [event["held_s"] for event in released(log)[before:]]
    print(f"{'/generate 50 steps, Cancel':<28} streamed {len(job.outputs())} updates, GPU released after "
          f"{held[0] if held else float('nan'):.2f} s")
    timed_call(client, log, "/generate after Cancel", prompt="a fox", api_name="/generate")


def until_refused(client: Client, log: Path) -> int:
    count = 0
    while True:
        try:
            client.predict(prompt="a red fox in the snow", seed=count, api_name="/generate")
        except AppError as err:
            print(f"refused after {count} default /generate calls: {err}")
            return count
        count += 1
        if count > 500:
            print("no refusal after 500 calls: is a quota set?")
            return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("log", type=Path)
    parser.add_argument("--until-refused", action="store_true")
    args = parser.parse_args()
    client = Client(args.url, verbose=False)
    if args.until_refused:
        until_refused(client, args.log)
        return
    every_endpoint(client, args.log)
    cancel_a_stream(client, args.log)


if __name__ == "__main__":
    sys.exit(main())
