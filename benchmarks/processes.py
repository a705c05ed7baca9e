"""Benchmarks of the real app process: `python app.py` until the page is served, then its peak memory at work."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch

from benchmarks import components
from benchmarks.harness import Row, seconds
from benchmarks.page_wait import PageWait
from benchmarks.served_engine import ENGINE_ANSWER, generate_params, offline_engine

ROOT = Path(__file__).resolve().parents[1]
GB = 1024**3
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


def saved_sd15(folder: Path, preset: str = "sd15") -> Path:
    """A diffusers folder of the SD 1.5 architecture (or `preset`'s) with random float32 weights (written once,
    reused)."""
    if (folder / "model_index.json").exists():
        return folder
    from diffusers import StableDiffusionPipeline

    from latent_demo.schedulers import make_scheduler

    models = components.build(preset, torch.float32, fast_decoder=False)
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
    client.predict(handle_file(str(ROOT / "assets" / "astronaut.png")), False, api_name="/encode_page")
    client.predict("a red fox", "", 1, False, 2, 7.5, "model default", size, size, False, api_name="/generate_page")


def bench_app_process(timeout_s: float = 900) -> list[Row]:
    """Start-up time with the weights on disk, loads counted, then peak RSS while encoding and generating. (In
    --quick the served-path section measures these on its own app instead: one app start less in the suite.)"""
    folder = saved_sd15(Path(tempfile.gettempdir()) / "latent-demo-bench-sd15")
    weights = sum(f.stat().st_size for f in folder.rglob("*.safetensors"))
    started = time.perf_counter()
    with RunningApp(str(folder), timeout_s, "--dtype", "float32") as app:  # a time-out raises: no figure made up
        return app_process_rows(app, time.perf_counter() - started, 512, weights)


def app_process_rows(app: RunningApp, startup_s: float, size: int, weights: int | None) -> list[Row]:
    """The start-up time, then a visitor's Encode and guided Generate, then the model loads the app's log counts
    and its peak RSS (against the weights on disk plus 1.5 GB when they are given)."""
    use_the_app(app.url, size)
    peak = peak_rss(app.app.pid)
    log = os.pread(app.log.fileno(), os.fstat(app.log.fileno()).st_size, 0).decode(errors="replace")  # offset kept
    loads = sum(1 for line in log.splitlines() if "latent_demo.models: loaded " in line)
    name = "offline model" if weights is None else "SD 1.5 size, fp32 safetensors on disk"
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


def download_bytes(preset: str) -> tuple[int, int]:
    """(bytes of the fp32 files, bytes with the fp16 variant) of the weights `python app.py` loads for a default
    preset: the UNet and text encoder at 4 or 2 bytes a parameter (models._load_folder_or_repo takes the `fp16`
    files in half precision), the VAE and the fast decoder (TAESD) from their fp32 files in both cases. Counted on
    the same architectures built on the meta device: a safetensors file holds exactly these tensors plus a header of
    a few kB, so this is the download to within 0.1 % without reading the Hub's file lists (no network here)."""
    from diffusers import AutoencoderTiny

    with torch.device("meta"):
        if preset == "sd15":
            halved = [components.sd15_unet(), components.clip_text(768, 12, 12)]
        else:
            halved = [components.turbo_unet(), components.clip_text(1024, 23, 16, "gelu")]
        full_only = [components.sd_vae(), AutoencoderTiny()]

    def count(modules) -> int:
        return sum(t.numel() for module in modules for t in module.state_dict().values())

    return 4 * (count(halved) + count(full_only)), 2 * count(halved) + 4 * count(full_only)


def with_half_files(folder: Path) -> Path:
    """A copy of the fp32 folder (files linked, not copied) that also holds the `fp16` variant of the UNet and the
    text encoder, as the Hub's repos do (written once, reused)."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    half = folder.with_name(folder.name + "-with-fp16")
    if (half / "unet" / "diffusion_pytorch_model.fp16.safetensors").exists():
        return half
    for source in folder.rglob("*"):
        target = half / source.relative_to(folder)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=torch.float16)
    unet.save_pretrained(half / "unet", variant="fp16")
    text = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", dtype=torch.float16)
    text.save_pretrained(half / "text_encoder", variant="fp16")
    return half


def bench_cold_start(quick: bool, timeout_s: float = 900) -> list[Row]:
    """The download of each default model (fp32 files against the fp16 variant), then, on an SD 1.5-size folder,
    `python app.py --dtype bfloat16` from fp32 files against fp16 files: time to the page and peak RSS."""
    rows = []
    for preset, where in (("sd-turbo", "the CPU default"), ("sd15", "the GPU default")):
        full, half = download_bytes(preset)
        rows.append(Row(f"cold start: weights {preset} downloads ({where}), fp32 files → with the fp16 variant",
                        f"{full / GB:.2f} GB → {half / GB:.2f} GB", "", half / full))
    if quick:
        return rows
    folder = saved_sd15(Path(tempfile.gettempdir()) / "latent-demo-bench-sd15")
    started = {}
    for name, model in (("fp32 files", folder), ("fp16 files", with_half_files(folder))):
        began = time.perf_counter()
        with RunningApp(str(model), timeout_s, "--dtype", "bfloat16") as app:
            started[name] = (time.perf_counter() - began, peak_rss(app.app.pid))
    (full_s, full_rss), (half_s, half_rss) = started["fp32 files"], started["fp16 files"]
    rows += [Row("cold start: `python app.py --dtype bfloat16` → page served (SD 1.5 size), from fp16 files",
                 f"{half_s:.1f} s", f"from fp32 files {full_s:.1f} s", half_s / full_s),
             Row("… its peak RSS, from fp16 files", f"{half_rss / GB:.2f} GB",
                 f"from fp32 files {full_rss / GB:.2f} GB", half_rss / full_rss)]
    return rows


class RunningApp:
    """`python app.py --model MODEL` on a free port, as a context manager; .url once the page is served. With
    `engine=True` the same app served by `benchmarks.served_engine`, whose process also times the engine on request
    (.engine_seconds)."""

    def __init__(self, model: str, timeout_s: float = 900, *flags: str, env: dict | None = None,
                 engine: bool = False):
        self.model, self.timeout_s, self.flags, self.env = model, timeout_s, flags, {**ENV, **(env or {})}
        self.engine = engine
        self.url = ""

    def __enter__(self) -> RunningApp:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/"
        self.log = tempfile.TemporaryFile(mode="w+")
        entry = ["-m", "benchmarks.served_engine"] if self.engine else ["app.py"]
        channel = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": self.log, "text": True} \
            if self.engine else {"stdout": self.log, "stderr": subprocess.STDOUT}
        self.app = subprocess.Popen([sys.executable, *entry, "--model", self.model, "--fast-decoder", "none",
                                     "--api-lists-page-events", "--port", str(port), *self.flags], cwd=ROOT,
                                    env=self.env, start_new_session=True, **channel)
        try:
            wait_until_served(self.url, self.app, self.timeout_s)
        except BaseException:
            self.__exit__()
            raise
        return self

    def engine_seconds(self, steps: int, guidance: float, size: int) -> float:
        """One Generate ("a red fox", seed 1) run by the engine in the app's process, between requests."""
        self.app.stdin.write(f"{steps} {guidance} {size}\n")
        self.app.stdin.flush()
        for line in self.app.stdout:
            if line.startswith(ENGINE_ANSWER):
                return float(line.removeprefix(ENGINE_ANSWER))
        raise RuntimeError(f"the app's process ended (exit code {self.app.wait(timeout=30)})")

    def __exit__(self, *exc) -> None:
        self.app.terminate()
        self.app.wait(timeout=30)
        for pipe in (self.app.stdin, self.app.stdout):
            if pipe is not None:
                pipe.close()
        self.log.close()


def timed_stream(job, image_index: int = 3) -> tuple[float, float, float]:
    """(seconds to the first streamed output, to the first output holding the final image (`image_index`), to the
    last) of a submitted gradio_client job: a script's wait (gradio_client downloads every file of every update)."""
    started, first, image = time.perf_counter(), None, None
    for output in job:
        now = time.perf_counter() - started
        first = first if first is not None else now
        if image is None and _is_file(output[image_index]):  # gr.skip() arrives as a bare update
            image = now
    job.result()
    nan = float("nan")
    return (nan if first is None else first), (nan if image is None else image), time.perf_counter() - started


def _is_file(value) -> bool:
    return isinstance(value, str) or (isinstance(value, dict) and "url" in value)


def as_page(page: PageWait, *args, api_name: str = "/generate_page") -> tuple[float, float, float]:
    """(first output, final image shown, last update shown) of a request waited for as the page waits."""
    answer = page.call(api_name, *args)
    return answer.first, answer.image, answer.total


def page_status(outputs: list) -> str:
    """The status line among the outputs of the page's /generate_page."""
    from latent_demo.ui.tabs.generate import Outputs

    return outputs[Outputs._fields.index("status")]


def bench_served_path(quick: bool, reps: int, device: str = "cpu") -> list[Row]:
    """What a visitor waits for, through the server, against diffusers on the same weights in one process
    (alternating): /generate end to end and to its first streamed output, /encode, /img2img; then the server's own
    cost on the light offline model (API against tasks.generate)."""
    from gradio_client import Client, handle_file

    from latent_demo.presets import choose_dtypes

    dtype = choose_dtypes(torch.device(device), "auto")[0]
    size = 128 if quick else 512
    # (steps, guidance): the 25-step guided run takes minutes a call at SD 1.5 size on a CPU, so only on a GPU
    cases = [(2, 0.0)] + ([(25, 7.5)] if device == "cuda" else [])
    model = "offline" if quick else str(saved_sd15(Path(tempfile.gettempdir()) / "latent-demo-bench-sd15"))
    raw = RawDiffusers(model, dtype, device)
    photo = str(ROOT / "assets" / "astronaut.png")
    rows = []
    started = time.perf_counter()
    with RunningApp(model, 900, "--device", device, "--max-image-side", str(size), engine=quick) as app:
        if quick:  # the app-process rows on this app (the full run starts an SD 1.5-size app for them)
            rows += app_process_rows(app, time.perf_counter() - started, 64, None)
        client, page = Client(app.url, verbose=False), PageWait(app.url)
        for steps, guidance in cases:
            generate_args = ("a red fox", "", 1, False, steps, guidance, "model default", size, size, False)
            times = alternate_timed({
                "served": lambda args=generate_args: as_page(page, *args),
                "raw": lambda steps=steps, guidance=guidance: (0, 0, seconds(
                    lambda: raw.generate(steps, size, guidance)))}, reps)
            first, image, total = times["served"]
            raw_s = times["raw"][2]
            limit = 1.00 if device == "cpu" else 1.15
            rows += [Row(f"/generate end to end ({size}px, {steps} steps, guidance {guidance:g}, "
                         f"{dtype_name(dtype)})", f"{total:.2f} s", f"diffusers pipeline {raw_s:.2f} s",
                         total / raw_s, f"≤ {limit:.2f}", None if quick else total / raw_s <= limit),
                     Row("… until its final image is shown", f"{image:.2f} s", f"diffusers pipeline {raw_s:.2f} s",
                         image / raw_s),
                     Row("… its first streamed output", f"{first:.2f} s")]
        encode = alternate_timed({
            "served": lambda: (0, 0, seconds(lambda: client.predict(handle_file(photo), False,
                                                                    api_name="/encode_page"))),
            "raw": lambda: (0, 0, seconds(lambda: raw.encode_decode(photo, size)))}, reps)
        rows.append(Row(f"/encode end to end ({size}px)", f"{encode['served'][2]:.2f} s",
                        f"vae encode + decode {encode['raw'][2]:.2f} s", encode["served"][2] / encode["raw"][2]))
        img2img = alternate_timed({
            "served": lambda: (0, 0, seconds(lambda: client.predict(
                "the uploaded image", handle_file(photo), "a tiger", "", 1, False, 4, 0.0, 0.5, "model default",
                False, api_name="/img2img_page"))),
            "raw": lambda: (0, 0, seconds(lambda: raw.img2img(photo, size)))}, reps)
        served_s, raw_s = img2img["served"][2], img2img["raw"][2]
        rows.append(Row(f"/img2img end to end ({size}px, strength 0.5 of 4 steps)", f"{served_s:.2f} s",
                        f"diffusers img2img {raw_s:.2f} s", served_s / raw_s))
        if quick:  # that app already serves the offline model at the overhead row's size
            return rows + serving_overhead(quick, reps, device, app)
    return rows + serving_overhead(quick, reps, device)


OVERHEAD_REPS = 9  # at least: ~0.6 s calls on a host whose speed drifts ±15 % between runs; medians of 3 misled


def serving_overhead(quick: bool, reps: int, device: str, app: RunningApp | None = None) -> list[Row]:
    """The offline model at 512 px computes little: what the server adds shows on any machine. Timed as a page waits
    (files fetched once each), and as a gradio_client script waits (every file of every update downloaded again),
    against the engine in the server's own process, between requests (benchmarks/served_engine.py says why), and
    beside it the engine in this process: what two processes differ by. `app`: one already serving the offline model
    at that size, with engine=True."""
    reps = reps if quick else max(reps, OVERHEAD_REPS)
    from gradio_client import Client

    from latent_demo.tasks import generate

    size = 128 if quick else 512
    models, settings = offline_engine(size, torch.device(device))
    rows = []
    running = contextlib.nullcontext(app) if app else RunningApp("offline", 300, "--device", device,
                                                                 "--max-image-side", str(size), engine=True)
    with running as app:
        script, page = Client(app.url, verbose=False), PageWait(app.url)
        for steps in (2,) if quick else (2, 25):
            args = ("a red fox", "", 1, False, steps, 0.0, "model default", size, size, False)
            params = generate_params(steps, 0.0, size)
            step_s = []

            def served(args=args, step_s=step_s):
                answer = page.call("/generate_page", *args)
                step_s.append(unet_step_seconds(page_status(answer.outputs)))
                return answer.first, answer.image, answer.total

            times = alternate_timed({
                "served": served,
                "script": lambda args=args: timed_stream(script.submit(*args, api_name="/generate_page")),
                "engine": lambda steps=steps: (0, 0, app.engine_seconds(steps, 0.0, size)),
                "engine here": lambda params=params: (0, 0, seconds(lambda: generate(models, params, settings)))},
                reps)
            first, image, total = times["served"]
            engine, here, script_total = times["engine"][2], times["engine here"][2], times["script"][2]
            rows += [Row(f"serving overhead: /generate vs tasks.generate (offline model, {size}px, {steps} steps)",
                         f"{total:.2f} s (final image {image:.2f} s)", f"engine {engine:.2f} s", total / engine,
                         "≤ 1.15", None if quick else total / engine <= 1.15),
                     Row("… as a gradio_client script waits (downloads every file of every update)",
                         f"{script_total:.2f} s", f"engine {engine:.2f} s", script_total / engine),
                     Row(f"… what two processes differ by: the engine in the server's process against this "
                         f"process's ({steps} steps)", f"{engine:.2f} s", f"engine here {here:.2f} s",
                         engine / here)]
            if steps > 2:
                step, trip = statistics.median(step_s), page_round_trip_seconds(page)
                wait = first - step - trip
                rows.append(Row("… first preview, less one UNet step (its own, in the server) and a request's "
                                "round trip",
                                f"{wait:.2f} s", f"first output {first:.2f} s, UNet step {step:.2f} s, a request's "
                                f"round trip {trip:.2f} s", target="≤ 0.10 s", ok=wait <= 0.10))
        rows += script_rows(script, app, size, reps, quick, page)
    return rows


def bench_turbo_script(quick: bool, reps: int) -> list[Row]:
    """The CPU visitor's model as a script calls it: /generate for scripts (one answer), gradio_client's defaults,
    sd-turbo-size random weights, 512 px, 1 step, the app's own dtype on this CPU, against diffusers'
    StableDiffusionPipeline on the same folder in this process (alternating)."""
    from gradio_client import Client

    from latent_demo.presets import choose_dtypes

    size = 128 if quick else 512
    model = "offline" if quick else str(saved_sd15(Path(tempfile.gettempdir()) / "latent-demo-bench-turbo",
                                                   preset="sd-turbo"))
    dtype = choose_dtypes(torch.device("cpu"), "auto")[0]
    raw = RawDiffusers(model, dtype, "cpu")
    with RunningApp(model, 900, "--device", "cpu", "--max-image-side", str(size)) as app:
        script = Client(app.url, verbose=False)
        args = ("a red fox", "", 1, False, 1, 0.0, "model default", size, size, False)
        times = alternate_timed({
            "script": lambda: (0, 0, seconds(lambda: script.predict(*args, api_name="/generate"))),
            "raw": lambda: (0, 0, seconds(lambda: raw.generate(1, size)))}, reps)
    script_s, raw_s = times["script"][2], times["raw"][2]
    return [Row(f"/generate for scripts, gradio_client defaults ({'offline' if quick else 'sd-turbo size'}, {size}px, "
                f"1 step, {dtype_name(dtype)})", f"{script_s:.2f} s", f"diffusers pipeline {raw_s:.2f} s",
                script_s / raw_s, "≤ 1.05", None if quick else script_s / raw_s <= 1.05)]


def script_rows(script, app: RunningApp, size: int, reps: int, quick: bool, page: PageWait) -> list[Row]:
    """The form for scripts (/generate: one answer, the extras only when asked for) as gradio_client waits with its
    defaults, against the engine in the server's process, alternating; beside it, the same with
    `Client(url, ssl_verify=False)` (for a local http:// server: no CA bundle loaded per HTTP client), the same
    request over kept-alive connections with no polling (`page`: the server's own part), and gradio_client's cost
    for a request that computes nothing (its fixed part: new HTTP clients that load the CA bundle, a reader polling
    every 50 ms)."""
    from gradio_client import Client

    unverified = Client(app.url, verbose=False, ssl_verify=False)
    rows, engine_seconds = [], []
    for steps, guidance in ((2, 0.0),) if quick else ((2, 0.0), (25, 7.5)):
        args = ("a red fox", "", 1, False, steps, guidance, "model default", size, size, False)
        times = alternate_timed({
            "script": lambda args=args: (0, 0, seconds(lambda: script.predict(*args, api_name="/generate"))),
            "unverified": lambda args=args: (0, 0, seconds(lambda: unverified.predict(*args, api_name="/generate"))),
            "kept-alive": lambda args=args: (0, 0, page.call("/generate", *args, image_index=0).total),
            "engine": lambda steps=steps, guidance=guidance: (0, 0, app.engine_seconds(steps, guidance, size))},
            reps)
        script_s, unverified_s, kept_alive_s, engine_s = (times[name][2] for name in
                                                          ("script", "unverified", "kept-alive", "engine"))
        engine_seconds.append(engine_s)
        rows += [Row(f"/generate for scripts, gradio_client defaults (offline model, {size}px, {steps} steps, "
                     f"guidance {guidance:g})", f"{script_s:.2f} s", f"engine {engine_s:.2f} s",
                     script_s / engine_s, "≤ 1.15", None if quick else script_s / engine_s <= 1.15),
                 Row("… with Client(url, ssl_verify=False) (local http: no CA bundle loaded per HTTP client)",
                     f"{unverified_s:.2f} s", f"engine {engine_s:.2f} s", unverified_s / engine_s),
                 Row("… the same request over kept-alive connections, no polling (the server's part)",
                     f"{kept_alive_s:.2f} s", f"engine {engine_s:.2f} s", kept_alive_s / engine_s)]
    trip, unverified_trip = round_trip_seconds(script), round_trip_seconds(unverified)
    download = download_seconds(app.url, size)
    floor = engine_seconds[0] + trip + download
    rows += [Row("… gradio_client's own cost: a request that computes nothing (/check_quiz), defaults",
                 f"{trip:.3f} s", f"the 2-step engine {engine_seconds[0]:.2f} s", trip / engine_seconds[0]),
             Row("… the same with ssl_verify=False", f"{unverified_trip:.3f} s",
                 f"the 2-step engine {engine_seconds[0]:.2f} s", unverified_trip / engine_seconds[0]),
             Row("… the least a gradio_client script can wait for the 2-step /generate: the engine, a request that "
                 "computes nothing and one file's download as gradio_client makes it (a server adding nothing)",
                 f"{floor:.2f} s (download {download:.3f} s)", f"the 2-step engine {engine_seconds[0]:.2f} s",
                 floor / engine_seconds[0])]
    return rows


def download_seconds(url: str, size: int, reps: int = 5) -> float:
    """Median seconds gradio_client takes to fetch one /generate image (`size` px) once the job has ended: a new
    HTTP client per file, with its defaults (the CA bundle loaded), as `Endpoint._download_file` does."""
    import httpx
    from gradio_client import Client

    args = ("a red fox", "", 1, False, 1, 0.0, "model default", size, size, False)
    image = Client(url, verbose=False, download_files=False).predict(*args, api_name="/generate")[0]

    def fetch() -> None:
        with httpx.stream("GET", image["url"], follow_redirects=True) as response:
            response.raise_for_status()
            for _ in response.iter_bytes():
                pass

    return statistics.median(seconds(fetch) for _ in range(reps))


def round_trip_seconds(client, reps: int = 5) -> float:
    """Median seconds of a request that computes nothing (/check_quiz, unanswered) through a gradio_client `client`:
    the HTTP, queue and client costs before any job starts."""
    parameters = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/check_quiz"]
    args = [parameter.get("parameter_default") for parameter in parameters["parameters"]]
    return statistics.median(seconds(lambda: client.predict(*args, api_name="/check_quiz")) for _ in range(reps))


def page_round_trip_seconds(page: PageWait, reps: int = 5) -> float:
    """The same, waited for as the page waits."""
    return statistics.median(page.call("/check_quiz").total for _ in range(reps))


# the Generate status line's labels (common.format_timings) -> the tasks' timing keys
STATUS_TIMINGS = {"UNet per step": "unet_per_step", "UNet total": "unet", "decode": "decode", "total": "total"}


def status_timings(status: str) -> dict[str, float]:
    """The task's own timings from a Generate status line ("… UNet per step 0.09 s · UNet total 2.36 s · …"), keyed
    as the tasks key them."""
    found = {}
    for part in status.split("\n")[0].split("·"):
        for label, key in STATUS_TIMINGS.items():
            if part.strip().startswith(label + " "):
                found[key] = float(part.strip()[len(label) + 1:].split(" s")[0])
    return found


def unet_step_seconds(status: str) -> float:
    """The UNet's seconds per step, from a Generate status line."""
    return status_timings(status)["unet_per_step"]


def bench_compile(reps: int, device: str) -> list[Row]:
    """`--compile` against eager through the server: start-up, /generate end to end, the UNet's step, and the final
    image's difference. CPU: the offline model at 512 px, 25 steps (an SD-size compile takes minutes there, and a
    25-step guided run several more); CUDA: the SD 1.5-size folder, 25 steps, guidance 7.5 (the GPU target in
    benchmarks/README.md)."""
    import numpy as np
    from PIL import Image

    cuda = device == "cuda"
    model = str(saved_sd15(Path(tempfile.gettempdir()) / "latent-demo-bench-sd15")) if cuda else "offline"
    guidance, size, steps = (7.5 if cuda else 0.0), 512, 25
    args = ("a red fox", "", 1, False, steps, guidance, "model default", size, size, False)
    flags = ("--device", device, "--max-image-side", str(size))
    apps, started = {}, {}
    with contextlib.ExitStack() as stack:
        cold_cache = stack.enter_context(tempfile.TemporaryDirectory())  # as a fresh Space: nothing compiled yet
        for name, extra in (("eager", ()), ("compiled", ("--compile",))):
            began = time.perf_counter()
            apps[name] = stack.enter_context(RunningApp(model, 1800, *flags, *extra,
                                                        env={"TORCHINDUCTOR_CACHE_DIR": cold_cache}))
            started[name] = time.perf_counter() - began
        pages = {name: PageWait(app.url) for name, app in apps.items()}
        step_s, images = {name: [] for name in apps}, {}

        def served(name):
            answer = pages[name].call("/generate_page", *args)
            step_s[name].append(unet_step_seconds(page_status(answer.outputs)))
            final = pages[name].http.get(answer.outputs[3]["url"]).content
            images[name] = np.asarray(Image.open(io.BytesIO(final)).convert("RGB"))
            return answer.first, answer.image, answer.total

        times = alternate_timed({name: lambda name=name: served(name) for name in apps}, reps)
    eager, compiled = times["eager"][2], times["compiled"][2]
    difference = np.abs(images["compiled"].astype(int) - images["eager"].astype(int))
    what = f"{'SD 1.5 size' if cuda else 'offline model'}, {size}px, {steps} steps, guidance {guidance:g}"
    flops = unet_step_flops(model, size, 2 if guidance > 1 else 1)
    peak = mm_peak_flops(device)
    share = {name: flops / statistics.median(step_s[name]) for name in apps}
    return [Row(f"--compile: /generate end to end ({what})", f"{compiled:.2f} s", f"eager {eager:.2f} s",
                compiled / eager, "≤ 0.5 s on an H100" if cuda else "", compiled <= 0.5 if cuda else None),
            Row("… UNet per step, in the server", f"{statistics.median(step_s['compiled']):.3f} s",
                f"eager {statistics.median(step_s['eager']):.3f} s",
                statistics.median(step_s["compiled"]) / statistics.median(step_s["eager"])),
            Row("… `python app.py` → page served (compiling included)", f"{started['compiled']:.0f} s",
                f"eager {started['eager']:.0f} s"),
            Row("… final image against eager's (8-bit levels)",
                f"max {difference.max()}, mean {difference.mean():.2f}"),
            Row(f"… the UNet's throughput in the server against this {device}'s torch.mm peak, compiled",
                f"{share['compiled'] / 1e9:.0f} GFLOP/s ({flops / 1e9:.0f} GFLOP a step)",
                f"mm {peak / 1e9:.0f} GFLOP/s", share["compiled"] / peak),
            Row("… the same, eager", f"{share['eager'] / 1e9:.0f} GFLOP/s", f"mm {peak / 1e9:.0f} GFLOP/s",
                share["eager"] / peak)]


def unet_step_flops(model: str, size: int, batch: int) -> int:
    """FLOPs of one UNet call of the served model at `size` px, attention included (counted as the lesson counts
    them: on the meta device, attention written as matmuls)."""
    from diffusers import UNet2DConditionModel

    from latent_demo.offline_model import tiny_unet
    from latent_demo.why_latents import counted_step_cost

    config = tiny_unet().config if model == "offline" else UNet2DConditionModel.load_config(Path(model) / "unet")
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(config)
    return batch * counted_step_cost(unet, unet.config.in_channels, size // 8, size // 8).flops


def mm_peak_flops(device: str, n: int = 4096) -> float:
    """FLOP/s of a large square torch.mm in the app's default dtype on `device` (the attainable peak)."""
    from latent_demo.presets import choose_dtypes

    dtype = choose_dtypes(torch.device(device), "auto")[0]
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))

    def product():
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()

    product()
    return 2 * n**3 / statistics.median(seconds(product) for _ in range(5 if device == "cpu" else 50))


class RawDiffusers:
    """diffusers' own pipelines on the same weights, in this process: the anchor a visitor's wait is compared to."""

    def __init__(self, model: str, dtype: torch.dtype, device: str):
        from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

        if model == "offline":
            from latent_demo.models import load_offline_models
            from latent_demo.schedulers import make_scheduler

            m = load_offline_models(torch.device(device), dtype, dtype)
            self.pipe = StableDiffusionPipeline(vae=m.vae, text_encoder=m.text_encoder, tokenizer=m.tokenizer,
                                                unet=m.unet, scheduler=make_scheduler(m.scheduler_config),
                                                safety_checker=None, feature_extractor=None,
                                                requires_safety_checker=False)
        else:
            self.pipe = StableDiffusionPipeline.from_pretrained(model, torch_dtype=dtype, safety_checker=None,
                                                                requires_safety_checker=False).to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.img2img_pipe = StableDiffusionImg2ImgPipeline(**self.pipe.components)
        self.img2img_pipe.set_progress_bar_config(disable=True)

    def generate(self, steps: int, size: int, guidance: float = 0.0):
        return self.pipe("a red fox", num_inference_steps=steps, guidance_scale=guidance, width=size, height=size,
                         generator=torch.Generator("cpu").manual_seed(1)).images[0]

    def encode_decode(self, path: str, size: int):
        from latent_demo.images import pil_to_pixels, pixels_to_pil

        vae = self.pipe.vae
        pixels = pil_to_pixels(_fitted(path, size)).to(vae.device, vae.dtype)
        with torch.inference_mode():
            latents = vae.encode(pixels).latent_dist.mean
            return pixels_to_pil(vae.decode(latents).sample.float().cpu())

    def img2img(self, path: str, size: int):
        return self.img2img_pipe("a tiger", image=_fitted(path, size), strength=0.5, num_inference_steps=4,
                                 guidance_scale=0.0, generator=torch.Generator("cpu").manual_seed(1)).images[0]


def _fitted(path: str, size: int):
    from PIL import Image

    from latent_demo.images import prepare_image

    return prepare_image(Image.open(path).convert("RGB"), size, 64, 8)


def alternate_timed(runs: dict, reps: int) -> dict[str, tuple[float, ...]]:
    """Like harness.alternate for runs that return a tuple of seconds: warm-up, then A, B, A, B; medians of each."""
    for run in runs.values():
        run()
    results: dict[str, list] = {name: [] for name in runs}
    for _ in range(reps):
        for name, run in runs.items():
            results[name].append(run())
    return {name: tuple(statistics.median(column) for column in zip(*values, strict=True))
            for name, values in results.items()}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
