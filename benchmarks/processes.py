"""Benchmarks that need a fresh process: peak memory, and `python app.py` until the page is served."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch

from benchmarks import components
from benchmarks.harness import Row

ROOT = Path(__file__).resolve().parents[1]
GB = 1024**3
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


def bench_memory(quick: bool) -> list[Row]:
    """Peak RSS of build + Encode tab + generate with the SD 1.5 size in float32, against weights + 1.5 GB."""
    preset, size = ("tiny", 64) if quick else ("sd15", 512)
    out = subprocess.run([sys.executable, "-m", "benchmarks.memory_probe", "--preset", preset, "--size", str(size)],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, check=True).stdout
    numbers = json.loads(out.strip().splitlines()[-1])
    limit = numbers["weights"] + 1.5 * GB
    return [Row(f"peak RSS, {preset} fp32 (load, Encode tab, generate {size}px)",
                f"{numbers['peak_rss'] / GB:.2f} GB", f"weights {numbers['weights'] / GB:.2f} GB + 1.5 GB",
                numbers["peak_rss"] / limit, "≤ 1.00", None if quick else numbers["peak_rss"] <= limit)]


def saved_sd15(folder: Path) -> Path:
    """A diffusers folder of the SD 1.5 architecture with random weights (written once, reused)."""
    if (folder / "model_index.json").exists():
        return folder
    from diffusers import StableDiffusionPipeline

    from latent_demo.schedulers import make_scheduler

    models = components.build("sd15", torch.float32, fast_decoder=False)
    StableDiffusionPipeline(vae=models.vae, text_encoder=models.text_encoder, tokenizer=models.tokenizer,
                            unet=models.unet, scheduler=make_scheduler(models.scheduler_config), safety_checker=None,
                            feature_extractor=None, requires_safety_checker=False).save_pretrained(folder)
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_startup(quick: bool, timeout_s: float = 600) -> list[Row]:
    """Seconds from `python app.py` to GET /config answering 200, weights already on disk; loads counted."""
    model = "offline" if quick else str(saved_sd15(Path(tempfile.gettempdir()) / "latent-demo-bench-sd15"))
    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")
    started = time.perf_counter()
    app = subprocess.Popen([sys.executable, "app.py", "--model", model, "--fast-decoder", "none", "--port", str(port)],
                           cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while time.perf_counter() - started < timeout_s:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
            if app.poll() is not None:
                raise RuntimeError(f"app.py exited with {app.returncode}")
        elapsed = time.perf_counter() - started
    finally:
        app.terminate()
        app.wait(timeout=30)
    log.seek(0)
    loads = sum(1 for line in log if "latent_demo.models: loaded " in line)
    name = "offline model" if quick else "SD 1.5 size, fp32 safetensors on disk"
    return [Row(f"`python app.py` → page served ({name})", f"{elapsed:.1f} s"),
            Row("model loads in that start-up (every tab shares one copy)", str(loads), target="= 1",
                ok=loads == 1)]
