"""300 requests from 60 short visits: memory stays flat, sessions and files are bounded by the settings."""

import gc
import json
import os
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from conftest import free_port
from gradio_client import Client, handle_file
from PIL import Image

from latent_demo.config import Settings
from latent_demo.ui import common
from latent_demo.ui.app import build_app, launch_options

REQUESTS, PER_VISIT, WARMUP = 300, 5, 50
REPORT = Path(__file__).resolve().parents[2] / "artifacts" / "reliability-soak.json"


@pytest.fixture(scope="module")
def soak_app(models, tmp_path_factory):
    small = tmp_path_factory.mktemp("soak") / "small.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(small)
    settings = Settings(fast_decoder="none", offline=True, max_sessions=10, cache_max_age_s=2, state_ttl_s=30,
                        port=free_port())
    demo = build_app(models, settings)
    demo.launch(prevent_thread_lock=True, quiet=True, **launch_options(settings))
    yield demo, f"http://127.0.0.1:{settings.port}/", str(small)
    demo.close()


def visit(url, image, first_request):
    """One visitor: encode (kept in their session), then img2img from those latents, then generates."""
    client = Client(url, verbose=False)
    for k in range(PER_VISIT):
        n = first_request + k
        if k == 0:
            client.predict(handle_file(image), False, api_name="/encode")
        elif k == 1:
            client.predict("the latents from the Encode tab", None, "a tiger", "", n, False, 2, 0.0, 0.5,
                           "model default", False, api_name="/img2img")
        else:
            client.predict("a fox", "", n, False, 2, 0.0, "model default", 64, 64, False, api_name="/generate")


def existing_cache_files(demo) -> list[str]:
    return [f for files in demo.temp_file_sets for f in files if os.path.exists(f)]


def test_soak_memory_sessions_and_files_stay_bounded(soak_app):
    demo, url, image = soak_app
    process = psutil.Process()
    served = 0
    while served < WARMUP:
        visit(url, image, served)
        served += PER_VISIT
    gc.collect()
    rss_after_warmup = process.memory_info().rss
    while served < REQUESTS:
        visit(url, image, served)
        served += PER_VISIT
    gc.collect()
    growth = process.memory_info().rss / rss_after_warmup - 1
    sessions = len(demo.state_holder.session_data)
    time.sleep(5)  # two clean-up cycles of Gradio's cache (every 2 s, files older than 2 s)
    leftovers = existing_cache_files(demo)
    scratch = len(list(common.SCRATCH_DIR.iterdir())) if common.SCRATCH_DIR.exists() else 0
    report = {"requests": served, "visits": served // PER_VISIT, "rss_growth_after_warmup": round(growth, 4),
              "sessions_kept": sessions, "cache_files_left": len(leftovers), "scratch_folders": scratch}
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=1))
    print(report)
    assert growth < 0.05, report
    assert sessions <= 10, report  # max_sessions: the least recently used visitors' data was dropped
    assert not leftovers, leftovers[:5]
    assert scratch <= common.SCRATCH_MAX_FOLDERS
