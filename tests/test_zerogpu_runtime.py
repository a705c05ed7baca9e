"""What the ZeroGPU runtime does around the calls, under the double as under spaces 0.51.3: a GPU the main process
only sees, weights packed away from it at launch, cold workers, durations held to account, and refusals in
ZeroGPU's words followed by what the visitor can do."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import EVERY_THIRD_CALL_COLD
from diffusers import StableDiffusionPipeline
from gradio_client import Client
from gradio_client.exceptions import AppError
from PIL import Image
from test_zerogpu import every_endpoint
from zerogpu_app import DEFAULT, LONG_RUN_STEPS, ROOT, SIDE, calls, events, start_app, stop_app, zerogpu_environment

from latent_demo import compiled, tasks
from latent_demo.gpu_budget import generation_seconds

MAIN_PROCESS_CHOICE = """
import json, spaces, torch
from latent_demo.presets import choose_device, choose_dtypes, default_preset
device = choose_device("auto")
print(json.dumps([str(device), [str(dtype) for dtype in choose_dtypes(device, "auto")], default_preset(device),
                  torch.cuda.get_device_name()]))
"""


def test_the_main_process_sees_a_gpu_so_the_app_picks_cuda_float16_and_sd15(tmp_path):
    ran = subprocess.run([sys.executable, "-c", MAIN_PROCESS_CHOICE], cwd=ROOT, env=zerogpu_environment(tmp_path),
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert json.loads(ran.stdout.splitlines()[-1]) == ["cuda", ["torch.float16", "torch.float32"], "sd15",
                                                       "NVIDIA H200"]


PACKED_WEIGHTS = """
import json, spaces, torch, gradio as gr
from diffusers import UNet2DConditionModel
from spaces import offload

torch.manual_seed(0)
unet = UNet2DConditionModel(sample_size=8, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                            cross_attention_dim=8, attention_head_dim=2,
                            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D")).eval()
inputs = (torch.randn(1, 4, 8, 8), 10, torch.randn(1, 3, 8))

def run():
    with torch.no_grad():
        return unet(*inputs).sample

before = run()

@spaces.GPU(duration=5)
def in_the_worker():
    return run()

offload.pack()
outcome = {"config": unet.config.in_channels, "device": str(next(unet.parameters()).device)}
for name, use in (("call", run), ("dtype", lambda: unet.dtype), ("shape", lambda: next(unet.parameters()).shape)):
    try:
        use()
        outcome[name] = "worked"
    except Exception as err:
        outcome[name] = str(err)
outcome["worker"] = bool(torch.equal(in_the_worker(), before))
print(json.dumps(outcome))
"""


def test_packed_weights_raise_in_the_main_process_and_work_in_the_worker(tmp_path):
    ran = subprocess.run([sys.executable, "-c", PACKED_WEIGHTS], cwd=ROOT, env=zerogpu_environment(tmp_path),
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-3000:]
    outcome = json.loads(ran.stdout.splitlines()[-1])
    assert outcome["config"] == 4 and outcome["device"] == "cuda:0"  # configs stay readable; devices say cuda
    for use in ("call", "dtype", "shape"):  # any use of a weight: the runtime's own message
        assert outcome[use].startswith("Cannot apply function") and "on disk-offloaded Tensor" in outcome[use]
    assert outcome["worker"] is True  # the worker's copies give the same result as before packing


def test_the_app_packs_its_weights_at_launch(zclient, zerogpu_app):
    zclient.predict("a fox", "", 2, False, 1, 0.0, DEFAULT, 128, 128, False, api_name="/generate_page")
    packed = [line for line in zerogpu_app.server_log().splitlines() if "ZeroGPU tensors packing" in line]
    assert packed and int(packed[0].split(": ")[1].split()[0]) > 100  # every weight of the offline model
    assert "loaded built-in offline model (trained VAE; untrained UNet and text encoder) on cpu" in \
        zerogpu_app.server_log()  # (--device cpu: see APP_FLAGS)


def generate_png(client, seed=5):
    return np.asarray(Image.open(client.predict("a fox", "", seed, False, 2, 0.0, DEFAULT, 128, 128, False,
                                                api_name="/generate_page")[3]))


def test_a_busy_slot_or_another_gpu_gets_a_cold_worker_that_pays_its_start(zclient, zerogpu_app):
    zerogpu_app.plan([{"idle": False}, {"gpu": 1}, {}])
    try:
        before = len(calls(zerogpu_app.log))
        images = [generate_png(zclient) for _ in range(3)]
    finally:
        zerogpu_app.plan(EVERY_THIRD_CALL_COLD)
    first, other_gpu, warm = calls(zerogpu_app.log)[before:]
    assert [first["cold"], other_gpu["cold"], warm["cold"]] == [True, True, False]
    assert (first["gpu"], other_gpu["gpu"], warm["gpu"]) == (0, 1, 0)
    assert warm["worker"] == first["worker"] != other_gpu["worker"]  # the warm one is GPU 0's worker again
    started = {event["pid"]: event["init_s"] for event in events(zerogpu_app.log)
               if event["event"] == "worker_started"}
    assert started[first["worker"]] >= 0.5 and started[other_gpu["worker"]] >= 0.5  # allow + CUDA init, modelled
    assert first["held_s"] > started[first["worker"]]  # the start is inside the billed time
    assert all(np.array_equal(image, images[0]) for image in images)


def test_the_duration_factor_multiplies_what_a_call_asks_for(zclient, zerogpu_app):
    estimate = generation_seconds(2, 0.0, 128, 128)  # the 5 s floor
    zerogpu_app.configure(duration_factor=1.5)
    try:
        generate_png(zclient)
        assert calls(zerogpu_app.log)[-1]["requested_s"] == round(estimate * 1.5)
        zerogpu_app.quota.write_text("7")  # enough for 5 s, not for 8
        with pytest.raises(AppError, match="reached its GPU limit"):
            generate_png(zclient)
        zerogpu_app.configure(duration_factor=1.0)
        generate_png(zclient)
    finally:
        zerogpu_app.configure(duration_factor=1.0)
        zerogpu_app.quota.unlink(missing_ok=True)


REFUSALS = [  # (how ZeroGPU is set up, a logged-in visitor?, ZeroGPU's words, then what the app adds)
    ({"quota": "0"}, False, "Space app has reached its GPU limit. Try re-running outside of examples",
     "Log in to Hugging Face for a larger daily quota, try a smaller request"),
    ({"quota": json.dumps({"seconds": 0, "auth": "regular", "wait_s": 3600})}, True,
     "You have exceeded your free ZeroGPU quota (5s requested vs. 0s left). Try again in 1:00:00.",
     "a smaller one (fewer steps or frames, a smaller image, or guidance off"),
    ({"settings": {"max_duration_s": 3}}, False, "The requested GPU duration (5s) is larger than the maximum allowed",
     "This request needs about 5 s of GPU, more than one call may hold: try fewer steps"),
    ({"plan": [{"refuse": "queue-timeout"}]}, False, "No GPU was available after 60s.",
     "Every GPU is busy at the moment: try again in a minute."),
    ({"plan": [{"refuse": "no-gpu"}]}, False, "No GPU was available", "try again in a minute."),
]


@pytest.mark.parametrize("setup, logged_in, zerogpu_words, advice", REFUSALS)
def test_a_refusal_reads_in_zerogpus_words_and_says_what_to_do(zerogpu_app, setup, logged_in, zerogpu_words,
                                                               advice):
    client = Client(zerogpu_app.url, verbose=False, headers={"X-IP-Token": "a-visitor"} if logged_in else None)
    if "quota" in setup:
        zerogpu_app.quota.write_text(setup["quota"])
    zerogpu_app.configure(**setup.get("settings", {}))
    zerogpu_app.plan(setup.get("plan", []))
    try:
        with pytest.raises(AppError) as refused:
            generate_png(client)
    finally:
        zerogpu_app.quota.unlink(missing_ok=True)
        zerogpu_app.configure(max_duration_s=1e9)
        zerogpu_app.plan(EVERY_THIRD_CALL_COLD)
    assert zerogpu_words in str(refused.value) and advice in str(refused.value)
    np.testing.assert_equal(generate_png(client).ndim, 3)  # and the next call is served


OVERRUN = """
import json, time, warnings, spaces

@spaces.GPU(duration=1)
def slow():
    time.sleep(1.6)
    return "done"

@spaces.GPU(duration=3)
def quick():
    time.sleep(0.2)
    return "done"

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    results = [slow(), quick()]
    time.sleep(0.2)
print(json.dumps({"results": results, "warnings": [str(warning.message) for warning in caught]}))
"""


def test_a_call_past_its_duration_gets_zerogpus_warning(tmp_path):
    env = {**zerogpu_environment(tmp_path), "ZEROGPU_DOUBLE_INIT_S": "0"}
    ran = subprocess.run([sys.executable, "-c", OVERRUN], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 0, ran.stderr[-3000:]
    outcome = json.loads(ran.stdout.splitlines()[-1])
    assert outcome["results"] == ["done", "done"]  # warned, not aborted (the real client only warns)
    assert outcome["warnings"] == ["GPU task is exceeding its requested duration and might be aborted"]
    overran = [event for event in events(tmp_path / "zerogpu.jsonl") if event["event"] == "overran"]
    assert [event["function"] for event in overran] == ["slow"]


@pytest.fixture(scope="module")
def tiny_sd_folder(tmp_path_factory, models):
    folder = tmp_path_factory.mktemp("tiny-sd")
    StableDiffusionPipeline(vae=models.vae, text_encoder=models.text_encoder, tokenizer=models.tokenizer,
                            unet=models.unet, scheduler=tasks.make_scheduler(models.scheduler_config),
                            safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(folder, safe_serialization=True)
    return folder


def test_every_endpoint_of_a_tiny_sd_folder_under_the_double(tmp_path, tiny_sd_folder):
    """The Hub's folder layout, loaded by the real loading code, packed at launch, run in cold and warm workers."""
    app = start_app(tmp_path, model=str(tiny_sd_folder))
    try:
        app.plan(EVERY_THIRD_CALL_COLD)
        every_endpoint(Client(app.url, verbose=False), app.log)
        assert "ZeroGPU tensors packing" in app.server_log()
        assert {True, False} == {call["cold"] for call in calls(app.log) if call["event"] == "released"}
    finally:
        stop_app(app)


AT_THE_LIMITS = [  # (endpoint, arguments): the most work each lets a visitor ask for (the app's flags' limits)
    ("/generate_page", ("a fox", "", 1, False, LONG_RUN_STEPS, 30.0, DEFAULT, SIDE, SIDE, False)),
    ("/seed_walk_page", ("a fox", 1, 2, 16, 4, 7.5, DEFAULT, SIDE, SIDE)),
    ("/why_latents", (SIDE, 50, 7.5)),
]


@pytest.mark.parametrize("endpoint, arguments", AT_THE_LIMITS, ids=[name for name, _ in AT_THE_LIMITS])
def test_calls_at_the_limits_stay_within_their_estimates(zclient, zerogpu_app, endpoint, arguments):
    zclient.predict(*arguments, api_name=endpoint)
    call = calls(zerogpu_app.log)[-1]
    assert call["ended"] == "done"
    assert not [event for event in events(zerogpu_app.log) if event["event"] == "overran"]


def test_no_call_of_the_session_ran_past_its_estimate(zerogpu_app):
    """Every endpoint at its defaults and at the limits ran under the double above (and in test_zerogpu.py): none
    held the worker longer than its own estimate, scaled to this CPU (conftest.zerogpu_app)."""
    ran = [call for call in calls(zerogpu_app.log) if call["event"] == "released"]
    assert len(ran) >= 10, "run this after the other ZeroGPU tests: it checks the calls they made"
    assert [event for event in events(zerogpu_app.log) if event["event"] == "overran"] == []


def test_compile_asks_for_its_start_up_call_and_a_refusal_stops_the_app_with_the_reason(tmp_path):
    """--compile's start-up call asks for AOT_COMPILE_SECONDS; on a node whose longest call is shorter, ZeroGPU
    refuses it, and the app stops with ZeroGPU's words and what to do instead of a traceback."""
    (tmp_path / "settings.json").write_text(json.dumps({"max_duration_s": 300}))
    with pytest.raises(AssertionError, match="the app exited at start-up") as stopped:
        start_app(tmp_path, "--compile")
    assert f"The requested GPU duration ({compiled.AOT_COMPILE_SECONDS}s) is larger than the maximum allowed" in \
        str(stopped.value)
    assert "Start without --compile to run it eager" in str(stopped.value)
    assert "Traceback" not in str(stopped.value).split("ERROR")[-1]
