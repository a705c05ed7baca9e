"""Many visitors at once, mixing every endpoint and seed: each answer equals the one-visitor answer; queue limits hold.

Bounded: a fixed number of requests, loopback only, and a deadline.
"""

import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import free_port
from gradio_client import Client, handle_file
from PIL import Image

from latent_demo.config import Settings
from latent_demo.ui.app import build_app, launch
from latent_demo.ui.examples import asset

# The suite runs 12 visitors; the full load: LATENT_DEMO_LOAD_VISITORS=32 pytest tests/reliability/test_load.py
VISITORS = int(os.environ.get("LATENT_DEMO_LOAD_VISITORS", "12"))
REQUESTS_EACH, DEADLINE_S = 2, 600
REPORT = Path(__file__).resolve().parents[2] / "artifacts" / "reliability-load.json"


@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
    """Small copies of the examples (and a mask to match): the load test is about isolation, not pixels."""
    folder = tmp_path_factory.mktemp("load")
    photo = Image.open(asset("astronaut.png")).convert("RGB").resize((96, 96))
    photo.save(folder / "photo.png")
    mask = Image.new("RGBA", (96, 96), (0, 0, 0, 0))
    mask.paste((255, 255, 255, 255), (24, 24, 72, 72))
    mask.save(folder / "mask.png")
    return str(folder / "photo.png"), str(folder / "mask.png")


def requests_for(visitor: int, photo: str, mask: str) -> list[tuple[str, tuple, int]]:
    """(endpoint, args, index of the image output) — schedulers with state (multistep, ancestral) included."""
    seed = 100 + visitor
    scheduler = ["model default", "Euler a", "DPM++ 2M", "UniPC"][visitor % 4]
    mix = [
        ("/generate_page", ("a fox", "", seed, False, 3, 4.0, scheduler, 64, 64, False), 3),
        ("/img2img_page", ("the uploaded image", handle_file(photo), "a tiger", "", seed, False, 4, 0.0, 0.5,
                           scheduler,
                      False), 4),
        ("/inpaint_page", ({"background": handle_file(photo), "layers": [handle_file(mask)], "composite": None},
                      "a flower", "", seed, False, 2, 0.0, 1.0, 0, scheduler, False), 3),
        ("/add_noise", (handle_file(photo), seed % 1000, seed), 1),
        ("/encode_page", (handle_file(photo), False), 3),
        ("/seed_walk_page", ("a fox", seed, seed + 1, 2, 2, 0.0, scheduler, 64, 64), 0),
    ]
    return [mix[(visitor + k) % len(mix)] for k in range(REQUESTS_EACH)]


def image_of(output, index) -> np.ndarray:
    value = output[index]
    path = value[-1]["image"] if isinstance(value, list) else value
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def busy_app(models):
    settings = Settings(fast_decoder="none", offline=True, max_image_side=512, concurrency_limit=2,
                        queue_max_size=VISITORS * REQUESTS_EACH, api_lists_page_events=True, port=free_port())
    demo = build_app(models, settings)
    launch(demo, settings, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{settings.port}/"
    demo.close()


def test_concurrent_visitors_get_exactly_their_single_visitor_answers(busy_app, small_files):
    references = {}
    alone = Client(busy_app, verbose=False)
    for visitor in range(VISITORS):
        for endpoint, args, index in requests_for(visitor, *small_files):
            key = (endpoint, repr(args))
            if key not in references:
                references[key] = image_of(alone.predict(*args, api_name=endpoint), index)

    def visit(visitor):
        client, results = Client(busy_app, verbose=False), []
        for endpoint, args, index in requests_for(visitor, *small_files):
            started = time.perf_counter()
            try:
                image = image_of(client.predict(*args, api_name=endpoint), index)
            except Exception as err:  # noqa: BLE001  (counted and reported: the test requires none)
                image = err
            results.append((endpoint, repr(args), image, time.perf_counter() - started))
        return results

    started = time.monotonic()
    with ThreadPoolExecutor(VISITORS) as pool:
        answers = [result for visitor_results in pool.map(visit, range(VISITORS), timeout=DEADLINE_S)
                   for result in visitor_results]
    errors = [(endpoint, str(image)[:200]) for endpoint, _, image, _ in answers if isinstance(image, Exception)]
    mismatches = [(endpoint, args[:80]) for endpoint, args, image, _ in answers
                  if not isinstance(image, Exception) and not np.array_equal(image, references[(endpoint, args)])]
    latencies = sorted(seconds for *_, seconds in answers)
    report = {"visitors": VISITORS, "requests": len(answers), "mismatches": len(mismatches), "errors": len(errors),
              "p50_s": round(statistics.median(latencies), 3),
              "p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
              "wall_s": round(time.monotonic() - started, 1), "first_errors": errors[:3]}
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=1))
    print(report)
    assert len(answers) == VISITORS * REQUESTS_EACH
    assert not errors, errors[:5]
    assert not mismatches, mismatches[:5]


def test_past_max_size_visitors_are_told_the_queue_is_full(models):
    settings = Settings(fast_decoder="none", offline=True, concurrency_limit=1, queue_max_size=2,
                        api_lists_page_events=True, port=free_port())
    demo = build_app(models, settings)
    launch(demo, settings, prevent_thread_lock=True, quiet=True)
    try:
        url = f"http://127.0.0.1:{settings.port}/"
        jobs = [Client(url, verbose=False).submit("a fox", "", i, False, 30, 5.0, "model default", 256, 256, False,
                                                  api_name="/generate_page") for i in range(8)]
        outcomes = []
        for job in jobs:
            try:
                job.result(timeout=120)
                outcomes.append("ok")
            except Exception as err:  # noqa: BLE001  (each job's outcome is what the test counts)
                outcomes.append(str(err))
        full = [o for o in outcomes if "Queue is full" in o]
        assert full and outcomes.count("ok") >= 1, outcomes
        assert all(o == "ok" or "Queue is full" in o for o in outcomes), outcomes
    finally:
        demo.close()
