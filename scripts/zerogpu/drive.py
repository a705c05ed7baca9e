"""Drive a running app the way visitors do and report what ZeroGPU charged for it.

Calls every endpoint, a streamed /generate cancelled after its first steps, and the Encode -> img2img and
Encode -> inpainting hand-offs; then reads the device API's log (one JSON line per "released"/"refused" event,
as scripts/zerogpu/device_api.py and the CPU test double write it) and prints the GPU seconds held per endpoint.
With --until-refused it then calls the default /generate until the quota refuses one and prints how many fit.
With --cold-and-warm URL it calls each endpoint twice, first on a cold worker (it asks the device API at URL, our
scripts/zerogpu/device_api.py, to answer "not idle"), then on the warm one, and prints both GPU holds beside what
the call asked for (latent_demo/gpu_budget.py): the cold start is what gpu_budget's cold_start_s stands for.

    python scripts/zerogpu/drive.py http://127.0.0.1:7860/ schedule.jsonl [--until-refused | --cold-and-warm API]
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
    timed_call(client, log, "/generate (defaults)", prompt="a red fox in the snow", api_name="/generate_page")
    timed_call(client, log, "/encode_page", image=handle_file(f"{ASSET}/astronaut.png"), api_name="/encode_page")
    _, _, result = timed_call(client, log, "/img2img from Encode", source="the latents from the Encode tab",
                              image=None, api_name="/img2img_page")
    assert "Started at step" in result[-1], result[-1]
    timed_call(client, log, "/img2img upload", source="the uploaded image",
               image=handle_file(f"{ASSET}/chelsea.png"), prompt="a tiger", api_name="/img2img_page")
    _, _, result = timed_call(client, log, "/inpaint (Encode's image)", editor=EDITOR, prompt="sunflowers",
                              api_name="/inpaint_page")
    assert "Method" in result[-1], result[-1]
    timed_call(client, log, "/add_noise", image=handle_file(f"{ASSET}/astronaut.png"), timestep=500,
               api_name="/add_noise")
    timed_call(client, log, "/add_noise (cached latents)", image=handle_file(f"{ASSET}/astronaut.png"),
               timestep=900, api_name="/add_noise")
    timed_call(client, log, "/seed_walk (5 frames)", api_name="/seed_walk_page")
    timed_call(client, log, "/compress (7 squeezes)", image=handle_file(f"{ASSET}/astronaut.png"),
               api_name="/compress_page")
    timed_call(client, log, "/why_latents", api_name="/why_latents")


def cancel_a_stream(client: Client, log: Path) -> None:
    before = len(released(log))
    job = client.submit(prompt="a lighthouse", steps=50, api_name="/generate_page")
    deadline = time.monotonic() + 120
    while not job.outputs() and time.monotonic() < deadline:
        time.sleep(0.02)
    job.cancel()
    time.sleep(2)
    held = [event["held_s"] for event in released(log)[before:]]
    print(f"{'/generate 50 steps, Cancel':<28} streamed {len(job.outputs())} updates, GPU released after "
          f"{held[0] if held else float('nan'):.2f} s")
    timed_call(client, log, "/generate after Cancel", prompt="a fox", api_name="/generate_page")


COLD_AND_WARM = [  # (label, keyword arguments): the forms for scripts, at the defaults a visitor gets
    ("/generate", {"prompt": "a red fox in the snow", "api_name": "/generate"}),
    ("/img2img", {"source": "the uploaded image", "image": handle_file(f"{ASSET}/chelsea.png"), "prompt": "a tiger",
                  "api_name": "/img2img"}),
    ("/inpaint", {"image": handle_file(f"{ASSET}/astronaut.png"), "mask": handle_file(f"{ASSET}/astronaut-mask.png"),
                  "prompt": "sunflowers", "api_name": "/inpaint"}),
    ("/encode", {"image": handle_file(f"{ASSET}/astronaut.png"), "api_name": "/encode"}),
    ("/predict_noise_page", {"image": handle_file(f"{ASSET}/astronaut.png"), "api_name": "/predict_noise_page"}),
    ("/seed_walk_page", {"api_name": "/seed_walk_page"}),
]


def cold_and_warm(client: Client, log: Path, device_api: str) -> bool:
    """Each endpoint on a cold worker, then on the warm one; False if a cold call held more than it asked for."""
    import httpx

    within = True
    print(f"{'endpoint':<16} {'asked':>7} {'cold held':>10} {'warm held':>10}  cold - warm")
    for label, kwargs in COLD_AND_WARM:
        holds = []
        for cold in (True, False):
            if cold:
                httpx.post(f"{device_api.rstrip('/')}/next-not-idle").raise_for_status()
            before = len(released(log))
            client.predict(**kwargs)
            time.sleep(0.2)
            holds.append(released(log)[before:])
        asked = holds[0][0]["requested_s"] if holds[0] else float("nan")
        cold_s, warm_s = (sum(event["held_s"] for event in events) for events in holds)
        within &= cold_s <= asked
        print(f"{label:<16} {asked:>6} s {cold_s:>8.2f} s {warm_s:>8.2f} s  {cold_s - warm_s:6.2f} s"
              f"{'' if cold_s <= asked else '   OVER what it asked for'}")
    return within


def until_refused(client: Client, log: Path) -> int:
    count = 0
    while True:
        try:
            client.predict(prompt="a red fox in the snow", seed=count, api_name="/generate_page")
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
    parser.add_argument("--cold-and-warm", metavar="DEVICE_API_URL")
    args = parser.parse_args()
    client = Client(args.url, verbose=False)
    if args.until_refused:
        until_refused(client, args.log)
        return None
    if args.cold_and_warm:
        return 0 if cold_and_warm(client, args.log, args.cold_and_warm) else 1
    every_endpoint(client, args.log)
    cancel_a_stream(client, args.log)
    return None


if __name__ == "__main__":
    sys.exit(main())
