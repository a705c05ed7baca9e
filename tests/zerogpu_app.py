"""Running the app under the ZeroGPU double (tests/zerogpu_double): its environment, start and stop, its log, the
measured CPU time scale; the session's shared app is the `zerogpu_app` fixture in conftest.py."""

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
import torch
from conftest import free_port

from latent_demo.gpu_budget import COSTS

ROOT = Path(__file__).resolve().parents[1]
DOUBLE = Path(__file__).resolve().parent / "zerogpu_double"
SIDE = 256
LONG_RUN_STEPS = 150  # a run the test cancels: long enough (~20 s here) that Cancel always arrives before its end
# Every step crosses (no preview interval): the tests count the yields that crossed to check what ran. The thinning
# itself is the same code on every runtime (tests/test_cancel.py).
# --device cpu: the double answers torch.cuda.is_available() with True in the main process, as ZeroGPU does, but
# cannot make .to("cuda") work on a CPU-only torch (tests/zerogpu_double/spaces/offload.py)
APP_FLAGS = ["--device", "cpu", "--fast-decoder", "none", "--offline", "--api-lists-page-events",
             "--max-image-side", str(SIDE),
             "--max-steps", str(LONG_RUN_STEPS), "--preview-interval-ms", "0"]
DEFAULT = "model default"


def zerogpu_environment(tmp: Path) -> dict:
    """The double's files all live in `tmp` (see ZeroGPUApp); the double reads them at each call."""
    return {**os.environ, "SPACES_ZERO_GPU": "true", "PYTHONPATH": os.pathsep.join([str(DOUBLE), str(ROOT)]),
            "ZEROGPU_DOUBLE_LOG": str(tmp / "zerogpu.jsonl"), "ZEROGPU_DOUBLE_QUOTA_FILE": str(tmp / "quota"),
            "ZEROGPU_DOUBLE_SCHEDULE_FILE": str(tmp / "schedule.json"),
            "ZEROGPU_DOUBLE_SETTINGS_FILE": str(tmp / "settings.json"), "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class ZeroGPUApp:
    """An app running under the double, and the files through which a test plays ZeroGPU's side."""

    url: str
    tmp: Path
    process: subprocess.Popen

    @property
    def log(self) -> Path:
        return self.tmp / "zerogpu.jsonl"

    @property
    def quota(self) -> Path:  # the day's quota: absent = none
        return self.tmp / "quota"

    def plan(self, answers: list[dict]) -> None:
        """The scheduler's next answers, one a call (tests/zerogpu_double/spaces/device.py)."""
        (self.tmp / "schedule.json").write_text(json.dumps(answers))

    def configure(self, **settings) -> None:
        """duration_factor, time_scale, init_s, max_duration_s (device.py)."""
        path = self.tmp / "settings.json"
        current = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**current, **settings}))

    def server_log(self) -> str:
        return (self.tmp / "server.log").read_text()


def start_app(tmp: Path, *flags: str, model: str = "offline") -> ZeroGPUApp:
    """`python app.py` in ZeroGPU mode under the double, as Spaces starts it."""
    port = free_port()
    output = open(tmp / "server.log", "w")  # noqa: SIM115  (closed with the process)
    process = subprocess.Popen([sys.executable, "app.py", *APP_FLAGS, "--model", model, *flags, "--port", str(port)],
                               cwd=ROOT,
                               env=zerogpu_environment(tmp), stdout=output, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the app exited at start-up:\n{(tmp / 'server.log').read_text()[-3000:]}")
        try:
            if requests.get(url + "config", timeout=2).ok:
                return ZeroGPUApp(url, tmp, process)
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    process.kill()
    raise AssertionError("the app did not start within 90 s")


def stop_app(app: ZeroGPUApp) -> None:
    """The app and its forked ZeroGPU workers: the whole process group started for it."""
    process = app.process
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=20)
    except ProcessLookupError:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # a worker the app's own exit left behind


def events(log: Path) -> list[dict]:
    """The double's log: every event (calls, refusals, workers started, overruns, compiled programs loaded)."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def calls(log: Path) -> list[dict]:
    """One entry per call that ran ("released") or was refused."""
    return [event for event in events(log) if event["event"] in ("released", "refused")]




def cpu_time_scale(models) -> float:
    """CPU seconds per GPU second, for calls of `models` on this machine: one UNet evaluation and one VAE decode at
    512 px timed here (medians of 3), each against the GPU cost gpu_budget counts for it; the larger ratio. A call
    under the double may hold the CPU for its estimate times this before the double warns that it ran past it."""
    latents = torch.randn(1, models.latent_channels, 64, 64)
    text = torch.zeros(1, 77, models.unet.config.cross_attention_dim, dtype=models.dtype)

    def median_seconds(call) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    with torch.inference_mode():
        unet_s = median_seconds(lambda: models.unet(latents.to(models.dtype), 500, encoder_hidden_states=text))
        vae_s = median_seconds(lambda: models.vae.decode(latents.to(models.vae_dtype)))
    return max(unet_s / COSTS.unet_eval_s, vae_s / COSTS.vae_pass_s)
