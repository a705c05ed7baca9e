"""Benchmarks of the real app process: `python app.py` until the page is served, then its peak memory at work."""

from __future__ import annotations

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


def saved_sd15(folder: Path) -> Path:
    """A diffusers folder of the SD 1.5 architecture with random float32 weights (written once, reused)."""
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


def peak_rss(pid: int) -> int:
    """The process's high-water mark of resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc status")


def wait_until_served(url: str, app: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "config", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
        if app.poll() is not None:
            raise RuntimeError(f"app.py exited with {app.returncode}")
    raise TimeoutError(f"{url} not served within {timeout_s} s")


def use_the_app(url: str, size: int) -> None:
    """What a visitor does: the Encode tab, then a guided generation with previews."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    client.predict(handle_file(str(ROOT / "assets" / "astronaut.png")), False, api_name="/encode")
    client.predict("a red fox", "", 1, False, 2, 7.5, "model default", size, size, False, api_name="/generate")


def bench_app_process(quick: bool, timeout_s: float = 900) -> list[Row]:
    """Start-up time with the weights on disk, loads counted, then peak RSS while encoding and generating."""
    if quick:
        model, weights, size = "offline", None, 64
    else:
        folder = saved_sd15(Path(tempfile.gettempdir()) / "latent-demo-bench-sd15")
        model, size = str(folder), 512
        weights = sum(f.stat().st_size for f in folder.rglob("*.safetensors"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryFile(mode="w+") as log:
        started = time.perf_counter()
        app = subprocess.Popen([sys.executable, "app.py", "--model", model, "--fast-decoder", "none", "--dtype",
                                "float32", "--port", str(port)], cwd=ROOT, env=ENV, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until_served(url, app, timeout_s)  # a time-out raises: no figure is made up
            startup_s = time.perf_counter() - started
            use_the_app(url, size)
            peak = peak_rss(app.pid)
        finally:
            app.terminate()
            app.wait(timeout=30)
        log.seek(0)
        loads = sum(1 for line in log if "latent_demo.models: loaded " in line)
    name = "offline model" if quick else "SD 1.5 size, fp32 safetensors on disk"
    rows = [Row(f"`python app.py` → page served ({name})", f"{startup_s:.1f} s"),
            Row("model loads in that process (every tab shares one copy)", str(loads), target="= 1", ok=loads == 1)]
    if weights is None:
        rows.append(Row("peak RSS of the app (offline model, Encode tab + generate)", f"{peak / GB:.2f} GB"))
    else:
        limit = weights + 1.5 * GB
        rows.append(Row(f"peak RSS of the app, fp32 (Encode tab + generate {size}px, guidance)",
                        f"{peak / GB:.2f} GB", f"weights {weights / GB:.2f} GB + 1.5 GB", peak / limit, "≤ 1.00",
                        peak <= limit))
    return rows
