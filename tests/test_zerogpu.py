"""ZeroGPU on a CPU: `python app.py` under the test double of `spaces` (tests/zerogpu_double), which forks a worker,
pickles arguments, yields and results, maps errors and stops on Cancel as `spaces` 0.51.3 does. Every endpoint, a
cancelled stream and the hand-offs run through it; results must equal the same tasks run in one process."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import load_configured_models, make_image
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image, PngImagePlugin
from zerogpu_app import DEFAULT, LONG_RUN_STEPS, ROOT, SIDE, calls, events, start_app, stop_app, zerogpu_environment

from latent_demo import compiled
from latent_demo.config import Settings
from latent_demo.gpu_budget import generation_seconds, vae_seconds
from latent_demo.params import GenerateParams
from latent_demo.quiz import QUESTIONS
from latent_demo.tasks import generate
from latent_demo.ui.examples import asset


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_spaces_is_imported_before_anything_that_touches_cuda(tmp_path):
    """The double refuses to import after torch, diffusers or transformers, as ZeroGPU's start-up does."""
    env = zerogpu_environment(tmp_path)
    loaded = subprocess.run([sys.executable, "-c", "import app, spaces; print(spaces.ZERO_GPU)"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip() == "True"  # the double, in ZeroGPU mode, was the `spaces` app.py imported
    late = subprocess.run([sys.executable, "-c", "import torch, app"], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    assert late.returncode != 0 and "CUDA has been initialized before importing the spaces package" in late.stderr


def test_generate_runs_in_the_worker_and_equals_the_same_task_in_one_process(zclient, zerogpu_app):
    seed, noise, live, final, trajectory, gif, status = zclient.predict(
        "a fox", "", 5, False, 3, 0.0, DEFAULT, 128, 128, False, api_name="/generate_page")
    models = load_configured_models("default")
    params = GenerateParams(prompt="a fox", seed=5, num_inference_steps=3, guidance_scale=0.0, width=128, height=128)
    expected = generate(models, params, Settings(fast_decoder="none", offline=True, max_image_side=SIDE))
    assert np.array_equal(pixels(final), np.asarray(expected.image))
    assert len(trajectory) == 4 and Image.open(gif).n_frames == 4
    call = calls(zerogpu_app.log)[-1]
    assert call["args"][0] == "generate" and call["ended"] == "done" and call["yields"] == 4  # 3 steps + result
    assert call["requested_s"] == generation_seconds(3, 0.0, 128, 128)


def test_compile_compiles_ahead_of_time_in_a_gpu_call_and_the_workers_run_it(tmp_path):
    """--compile on ZeroGPU: the UNet exported and compiled (the double's stand-in for AOTInductor) in one GPU call
    at start-up; the program crosses to the main process, and the worker loads it once for all its requests."""
    app = start_app(tmp_path, "--compile")
    try:
        client = Client(app.url, verbose=False)
        finals = [client.predict("a fox", "", 5, False, 2, guidance, DEFAULT, SIDE, SIDE, False,
                                 api_name="/generate_page")[3] for guidance in (7.5, 0.0)]
    finally:
        stop_app(app)
    models = load_configured_models("default")
    for final, guidance in zip(finals, (7.5, 0.0), strict=True):
        params = GenerateParams(prompt="a fox", seed=5, num_inference_steps=2, guidance_scale=guidance, width=SIDE,
                                height=SIDE)
        expected = generate(models, params, Settings(fast_decoder="none", offline=True, max_image_side=SIDE))
        assert np.array_equal(pixels(final), np.asarray(expected.image))
    logged = events(app.log)
    compile_call, *generate_calls = [event for event in logged if event["event"] == "released"]
    assert compile_call["function"] == "export_and_compile" and compile_call["ended"] == "done"
    assert compile_call["requested_s"] == compiled.AOT_COMPILE_SECONDS
    assert [call["args"][0] for call in generate_calls] == ["generate"] * 2
    assert len([event for event in logged if event["event"] == "aoti_load"]) == 1  # not once per request
    log = app.server_log()
    assert "compiled the UNet ahead of time" in log
    side = SIDE // 8
    for batch in (2, 1):  # guided, then not: both ran the program, in the worker
        assert f"the compiled UNet ran for (({batch}, 4, {side}, {side})" in log


class RecordingClient:
    """A gradio_client Client that notes which endpoints were called."""

    def __init__(self, client):
        self.client, self.called = client, set()

    def predict(self, *args, api_name: str, **kwargs):
        self.called.add(api_name)
        return self.client.predict(*args, api_name=api_name, **kwargs)

    def documented(self) -> set[str]:
        return set(self.client.view_api(return_format="dict", print_info=False)["named_endpoints"])


def test_every_other_endpoint_works_through_the_worker(zclient, zerogpu_app):
    every_endpoint(zclient, zerogpu_app.log)


def every_endpoint(client, log) -> None:
    """Every documented endpoint once (and the hand-offs between them), checked; none may be left out."""
    zclient = RecordingClient(client)
    zclient.predict("a fox", "", 5, False, 2, 0.0, DEFAULT, 128, 128, False, api_name="/generate_page")
    channels, facts, original, reconstruction, error_map, latents_file = zclient.predict(
        handle_file(asset("astronaut.png")), False, api_name="/encode_page")
    assert "4×32×32" in facts and Image.open(reconstruction).size == (SIDE, SIDE)
    assert calls(log)[-1]["requested_s"] == vae_seconds(SIDE, SIDE, passes=2)
    # Encode -> img2img: the latents live in the visitor's gr.State in the main process, and cross to the worker
    status = zclient.predict(source="the latents from the Encode tab", image=None, api_name="/img2img_page")[-1]
    assert "Started at step" in status and calls(log)[-1]["args"][1:4] == ["Img2ImgParams", "NoneType", "Tensor"]
    status = zclient.predict("the uploaded image", handle_file(asset("chelsea.png")), "a tiger",
                             api_name="/img2img_page")[-1]
    assert "Started at step" in status
    editor = {"background": handle_file(asset("astronaut.png")), "layers": [handle_file(asset("astronaut-mask.png"))],
              "composite": None}
    seed, grid, live, result, status = zclient.predict(editor=editor, prompt="sunflowers", api_name="/inpaint_page")
    assert "latent blending" in status and set(np.unique(pixels(grid))) == {0, 255}
    first = zclient.predict(handle_file(asset("astronaut.png")), 100, 0, api_name="/add_noise")
    second = zclient.predict(handle_file(asset("astronaut.png")), 900, 0, api_name="/add_noise")
    assert "t = **100**" in first[3] and "t = **900**" in second[3]
    noise_calls = [call for call in calls(log) if call["args"][0] == "add_noise"]
    assert noise_calls[-2]["args"][1:3] == ["Image", "NoneType"]  # encoded in the worker...
    assert noise_calls[-1]["args"][1:3] == ["NoneType", "Tensor"]  # ...then the cached latents came back
    gallery, gif, status = zclient.predict("a fox", 3, 4, 3, 2, 0.0, DEFAULT, 128, 128, api_name="/seed_walk_page")
    assert len(gallery) == 3 and status == "3 frames"  # frames streamed out of the worker as they finished
    decoders, squeezed, curve, table = zclient.predict(handle_file(asset("coffee.png")), ["pool ×4", "2-bit"],
                                                       api_name="/compress_page")
    assert len(decoders) == 2 and [item["caption"].split(":")[0] for item in squeezed] == ["pool ×4", "2-bit"]
    table = zclient.predict(128, 25, 7.5, api_name="/why_latents")
    assert "(measured)" in table and "× the FLOPs" in table  # the step timed in the worker
    channels, denoised, curve, note = zclient.predict(handle_file(asset("coffee.png")), 500, 1, "",
                                                     api_name="/predict_noise_page")
    assert len(channels) == 12 and "Mean squared error of its answer" in note and len(curve["data"]) == 10
    latent, pixel, rebuilt, note = zclient.predict(handle_file(asset("coffee.png")), 500, 1,
                                                   api_name="/noise_space_page")
    assert len(rebuilt) == 3 and "after encode → decode" in note
    spaces_calls = [call for call in calls(log) if call["args"][0] in ("predict_noise", "noise_space")]
    # encoded in the worker, then the same upload's latents came back from the session
    assert [call["args"][1:3] for call in spaces_calls] == [["Image", "NoneType"], ["Image", "Tensor"]]
    assert {"compress", "why_latents", "predict_noise", "noise_space"} <= {call["args"][0] for call in calls(log)}
    fresh = RecordingClient(type(client)(client.src, verbose=False))  # a new visitor, no last run: it runs twice
    fresh.called = zclient.called
    heatmap, report = fresh.predict("a fox", "", 5, False, 2, 0.0, DEFAULT, 128, 128, False, api_name="/compare_runs")
    assert "**Identical**" in report  # two runs in the worker, the same bytes back
    decoded, facts = zclient.predict(handle_file(latents_file), api_name="/decode_latents")
    assert Image.open(decoded).size == Image.open(reconstruction).size and "no encoder involved" in facts
    assert calls(log)[-1]["args"][:2] == ["decode_latents", "Tensor"]
    maps, decoded, note = zclient.predict(handle_file(asset("coffee.png")), 2, api_name="/posterior_page")
    assert len(decoded) == 3 and calls(log)[-1]["args"][0] == "posterior"
    patch, heatmap, facts = zclient.predict(handle_file(asset("coffee.png")), 3, 4, api_name="/latent_cell")
    assert "holds **4 numbers**" in facts and calls(log)[-1]["args"][0] == "latent_cell"
    pictures, errors, table = zclient.predict(handle_file(asset("coffee.png")), api_name="/encoder_grid_page")
    assert len(pictures) >= 1 and calls(log)[-1]["args"][0] == "encoder_grid"
    pictures, errors, chart, table, note = zclient.predict(handle_file(asset("coffee.png")), ["2-bit"],
                                                           api_name="/compare_vaes_page")
    assert len(pictures) == len(errors) == table.count(" dB |") and len(chart["data"]) == len(pictures) + 1
    assert calls(log)[-1]["args"][0] == "compare_vaes"
    # the page's own process only, no GPU call: these must not touch the (packed) weights
    channels, facts = zclient.predict(handle_file(asset("astronaut.png")), api_name="/toy_encoder")
    assert len(channels) >= 1 and facts
    first = zclient.predict(*[question.answer for question in QUESTIONS], api_name="/check_quiz")
    assert first.startswith(f"### {len(QUESTIONS)} of {len(QUESTIONS)} right")
    filled = zclient.predict(handle_file(a1111_png(log.parent)), api_name="/png_info")
    assert filled[0] == "a lighthouse"
    # the forms for scripts: the same jobs, one answer
    image, seed, facts, gif, latents, noise = zclient.predict("a fox", "", 5, False, 2, 0.0, DEFAULT, 128, 128, False,
                                                              True, True, True, api_name="/generate")
    assert seed == 5 and Image.open(gif).n_frames == 3 and latents.endswith(".safetensors") and len(noise) == 4
    assert calls(log)[-1]["args"][:2] == ["generate", "GenerateParams"]
    reconstruction, latents, facts, channels = zclient.predict(handle_file(asset("chelsea.png")), api_name="/encode")
    image, seed, facts, _ = zclient.predict(source="the latents from the Encode tab", image=None, api_name="/img2img")
    assert facts["steps_run"] > 0 and calls(log)[-1]["args"][1:4] == ["Img2ImgParams", "NoneType", "Tensor"]
    image, seed, facts = zclient.predict(handle_file(asset("astronaut.png")), handle_file(asset("astronaut-mask.png")),
                                         api_name="/inpaint")
    assert "blending" in facts["method"] and calls(log)[-1]["args"][0] == "inpaint"
    for name, args in (("/compress", (["2-bit"],)), ("/compare_vaes", ([],)), ("/encoder_grid", ()),
                       ("/posterior", (1,)), ("/predict_noise", (500, 1)), ("/noise_space", (500, 1))):
        facts, pictures = zclient.predict(handle_file(asset("coffee.png")), *args, api_name=name)
        assert facts and pictures == [] and calls(log)[-1]["args"][0] == name[1:]
    gif, facts, frames = zclient.predict("a fox", 3, 4, 2, 2, 0.0, DEFAULT, 128, 128, api_name="/seed_walk")
    assert Image.open(gif).n_frames == 2 and calls(log)[-1]["args"][0] == "seed_walk"
    assert zclient.called == zclient.documented(), "an endpoint was not called under the double"


def a1111_png(folder) -> str:
    """A PNG with AUTOMATIC1111's settings text in it."""
    path = folder / "a1111.png"
    image = Image.new("RGB", (64, 64))
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a lighthouse\nNegative prompt: fog\nSteps: 3, Sampler: Euler, CFG scale: 5, Seed: 9, "
                                "Size: 64x64")
    image.save(path, pnginfo=info)
    return str(path)


def test_errors_cross_the_process_boundary_readably(zclient, tmp_path):
    small = tmp_path / "small.png"
    make_image(32, 32).save(small)  # refused inside the worker (the encode fits the image to the limits)
    with pytest.raises(AppError, match="each side must be at least 64 px"):
        zclient.predict(handle_file(str(small)), False, api_name="/encode_page")
    assert zclient.predict("a fox", "", 1, False, 1, 0.0, DEFAULT, 128, 128, False, api_name="/generate_page")[0] == 1


UNPICKLABLE_RESULTS = """
import json, threading
import spaces, gradio as gr
from types import SimpleNamespace
from latent_demo.config import Settings
from latent_demo.serving.runner import ModelRunner

class Refuses:  # fails to pickle with a message that does not say "pickle"
    def __reduce__(self):
        raise ValueError("refused")

def value(kind):
    return threading.Lock() if kind == "lock" else Refuses()

@spaces.GPU(duration=5)
def streams(kind):
    yield 1
    yield value(kind)
    yield 3

@spaces.GPU(duration=5)
def returns(kind):
    return value(kind)

def outcome(call):
    try:
        return {"received": list(call())}
    except gr.Error as err:
        return {"title": err.title, "message": err.message}

runner = ModelRunner(SimpleNamespace(safety_filter=None), Settings())
runner.register("unpicklable", lambda models, settings, updates: Refuses(), lambda models, settings: 5)
print(json.dumps({"streams lock": outcome(lambda: streams("lock")),
                  "streams refuses": outcome(lambda: streams("refuses")),
                  "returns lock": outcome(lambda: [returns("lock")]),
                  "returns refuses": outcome(lambda: [returns("refuses")]),
                  "runner": outcome(lambda: [runner.run("unpicklable")])}))
"""


def test_a_value_that_cannot_cross_back_fails_as_spaces_fails(tmp_path):
    """spaces 0.51.3 (wrappers.py, utils.SimpleQueue): a pickling failure crosses as PicklingError; any other error
    while sending ends a generator's call silently and kills a regular function's worker. The app's runner turns the
    silent end into a message."""
    ran = subprocess.run([sys.executable, "-c", UNPICKLABLE_RESULTS], cwd=ROOT, env=zerogpu_environment(tmp_path),
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr[-3000:]
    outcomes = json.loads(ran.stdout.strip().splitlines()[-1])
    worker_error = {"title": "ZeroGPU worker error", "message": "PicklingError"}
    assert outcomes["streams lock"] == worker_error  # "cannot pickle '_thread.lock' object": a TypeError in CPython
    assert outcomes["streams refuses"] == {"received": [1]}  # the call just ended after what had crossed
    assert outcomes["returns lock"] == worker_error
    assert outcomes["returns refuses"] == {"title": "ZeroGPU worker error", "message": "GPU task aborted"}
    assert outcomes["runner"]["message"] == "The model worker ended without a result; please try again."


def test_cancel_stops_the_worker_after_its_next_step_and_the_next_job_runs(zclient, zerogpu_app):
    job = zclient.submit("a fox", "", 7, False, LONG_RUN_STEPS, 7.5, DEFAULT, SIDE, SIDE, False,
                         api_name="/generate_page")
    deadline = time.monotonic() + 60
    while not job.outputs() and time.monotonic() < deadline:  # the first streamed step
        time.sleep(0.05)
    assert job.outputs(), "no step was streamed"
    job.cancel()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(call.get("ended") == "cancelled" for call in calls(zerogpu_app.log)):
        time.sleep(0.1)
    cancelled = [call for call in calls(zerogpu_app.log) if call.get("ended") == "cancelled"]
    assert cancelled and cancelled[-1]["yields"] < LONG_RUN_STEPS
    seed = zclient.predict("a fox", "", 8, False, 1, 0.0, DEFAULT, 128, 128, False, api_name="/generate_page")[0]
    assert seed == 8  # the worker was stopped and serves the next visitor


def test_a_call_over_the_quota_left_is_refused_and_the_server_keeps_serving(zclient, zerogpu_app):
    log, quota_file = zerogpu_app.log, zerogpu_app.quota
    quota = 5.3  # one call asks for the 5 s floor: it runs, and once 0.3 s were held the next one is refused
    quota_file.write_text(str(quota))  # a new day with this quota
    try:
        refused, served = None, 0
        for attempt in range(20):
            try:
                zclient.predict("a fox", "", attempt, False, 4, 0.0, DEFAULT, SIDE, SIDE, False,
                                api_name="/generate_page")
                served += 1
            except AppError as err:
                refused = str(err)
                break
    finally:
        quota_file.unlink()
    assert served >= 1 and refused is not None and "reached its GPU limit" in refused
    entries = calls(log)
    today = entries[-(served + 1):]
    held = sum(entry["held_s"] for entry in today if "held_s" in entry)
    assert today[-1]["event"] == "refused" and today[-1]["requested_s"] > quota - held
    assert zclient.predict("a fox", "", 1, False, 1, 0.0, DEFAULT, 128, 128, False, api_name="/generate_page")[0] == 1


def test_every_tab_and_both_hand_offs_in_the_browser_under_zerogpu(page, zerogpu_app):
    from playwright.sync_api import expect
    from test_browser import SLOW, encode_example, open_tab, paint_the_handed_over_image, served_image

    page.goto(zerogpu_app.url)
    encode_example(page)  # 1 · Encode
    page.locator("#send-img2img").click()  # -> 3 · img2img, one click
    page.locator("#img2img-button").click()
    served_image(page, "#img2img-result")
    expect(page.locator("#img2img-status")).to_contain_text("Started at step", timeout=SLOW)
    open_tab(page, "1 · Encode")
    page.locator("#send-inpaint").click()  # -> 4 · Inpainting, with a painted mask
    paint_the_handed_over_image(page)
    page.locator("#inpaint-button").click()
    served_image(page, "#inpaint-result")
    open_tab(page, "2 · Generate")
    page.locator("#generate-steps input[type=number]").fill("2")
    page.locator("#generate-button").click()
    served_image(page, "#generate-final")
    expect(page.locator("#generate-trajectory img")).to_have_count(3, timeout=SLOW)
    open_tab(page, "5 · Noise explorer")
    page.locator("#noise-button").click()
    served_image(page, "#noise-decoded")
    open_tab(page, "6 · Seed walk")
    page.locator("#walk-frames input[type=number]").fill("2")
    page.locator("#walk-width input[type=number]").fill("128")
    page.locator("#walk-height input[type=number]").fill("128")
    page.locator("#walk-button").click()
    expect(page.locator("#walk-status")).to_have_text("2 frames", timeout=SLOW)
    ran = {call["args"][0] for call in calls(zerogpu_app.log) if call.get("event") == "released"}
    assert {"encode", "img2img", "inpaint", "generate", "add_noise", "seed_walk"} <= ran  # all through the worker
