"""--compile: the UNet compiled for the default size at start-up only; every other shape eager; never a recompile.

torch.compile's graph capture (dynamo) is what decides when a compile happens; inductor only makes the code. The
tests capture with the "eager" backend, which runs the captured graph as it is: seconds instead of minutes, and the
images must then be exactly the eager UNet's. Inductor's own speed and image difference are measured by the
benchmark (`python -m benchmarks.run --only app`, benchmarks/README.md).

On ZeroGPU the UNet is exported and compiled ahead of time in a GPU call: here with the test double's stand-in for
`spaces.aoti_compile` (the exported program, run as it is); `python scripts/aot_check.py` runs the real one.
"""

import contextvars
import dataclasses
import importlib.util
import pickle
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from latent_demo import compiled
from latent_demo.config import Settings
from latent_demo.models import ModelLoadError, with_compiled_unet
from latent_demo.params import GenerateParams
from latent_demo.tasks import generate

SIDE = 128  # the default side when max_image_side is 128
DOUBLE = Path(__file__).resolve().parent / "zerogpu_double"


@pytest.fixture(scope="module")
def compiled_models(models):
    torch._dynamo.reset()
    yield with_compiled_unet(models, Settings(fast_decoder="none", offline=True, max_image_side=SIDE), backend="eager")
    torch._dynamo.reset()


def calls_of(compiled_unet) -> list:
    """Spy on the compiled callable: one entry per call that reached it."""
    calls, inner = [], compiled_unet.compiled

    def spy(*args, **kwargs):
        calls.append(tuple(args[0].shape))
        return inner(*args, **kwargs)

    compiled_unet.compiled = spy
    return calls


def test_the_default_size_is_compiled_with_and_without_guidance_at_start_up(compiled_models):
    unet = compiled_models.compiled_unet
    assert compiled_models.unet_for_steps is unet and unet.eager is compiled_models.unet
    assert {shape for shape, _, _ in unet.shapes} == {(1, 4, 16, 16), (2, 4, 16, 16)}
    assert unet.compile_seconds > 0


@pytest.mark.parametrize("scheduler", ["DDIM", "Euler"])  # int64 and float32 timesteps
def test_the_default_size_runs_compiled_without_recompiling_and_matches_eager(compiled_models, models, settings,
                                                                              scheduler, caplog):
    calls, graphs = calls_of(compiled_models.compiled_unet), counters["stats"]["unique_graphs"]
    for guidance in (0.0, 7.5):
        params = GenerateParams(prompt="a fox", seed=3, num_inference_steps=2, guidance_scale=guidance,
                                scheduler=scheduler, width=SIDE, height=SIDE)
        ours, eager = generate(compiled_models, params, settings), generate(models, params, settings)
        assert np.array_equal(np.asarray(ours.image), np.asarray(eager.image))
    assert calls == [(1, 4, 16, 16)] * 2 + [(2, 4, 16, 16)] * 2
    assert counters["stats"]["unique_graphs"] == graphs  # nothing compiled during a request...
    assert "would recompile" not in caplog.text  # ...and no call refused a recompile and fell back to eager


def test_other_sizes_run_eager(compiled_models, settings):
    calls, graphs = calls_of(compiled_models.compiled_unet), counters["stats"]["unique_graphs"]
    params = GenerateParams(prompt="a fox", seed=3, num_inference_steps=2, width=64, height=96)
    generate(compiled_models, params, settings)
    assert calls == [] and counters["stats"]["unique_graphs"] == graphs


def test_a_call_that_would_recompile_runs_eager_and_says_so(compiled_models, caplog):
    """Compiled under inference mode (as the loop runs); called with gradients on, a guard fails: torch refuses to
    recompile, the eager UNet answers, and the log says so once."""
    unet = dataclasses.replace(compiled_models.compiled_unet, refused=set())
    sample = torch.randn(1, 4, 16, 16)
    text = torch.randn(1, 77, compiled_models.unet.config.cross_attention_dim)
    with torch.no_grad():
        reference = compiled_models.unet(sample, 10, encoder_hidden_states=text, return_dict=False)[0]
    for _ in range(2):
        assert torch.equal(unet(sample, 10, text)[0], reference)
    assert caplog.text.count("would recompile") == 1


class ZeroGpuSpaces:
    """`spaces` as the app sees it on ZeroGPU, in this process: each GPU call's duration is recorded and its result
    crosses a pickle round trip, as from a worker; `aoti_compile` is the test double's (the exported program, not
    AOTInductor's code: ~50 s of C++ compiling here, so the real compiler runs in `python scripts/aot_check.py`,
    and on a GPU under the real ZeroGPU runtime in scripts/zerogpu_check.sh)."""

    def __init__(self):
        self.durations = []
        self.aoti_compile = load_double().aoti_compile

    def GPU(self, task, duration):  # noqa: N802  (the real name)
        def call():
            self.durations.append(duration)
            return pickle.loads(pickle.dumps(task()))
        return call


def load_double():
    """The test double's module under another name: imported as `spaces` it would be in ZeroGPU mode only when the
    environment says so at import."""
    spec = importlib.util.spec_from_file_location("spaces_double", DOUBLE / "spaces" / "__init__.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # (its dataclasses look it up)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def aot_models(models):
    spaces = ZeroGpuSpaces()
    with pytest.MonkeyPatch.context() as patch:  # as at a ZeroGPU Space's start-up
        patch.setenv("SPACES_ZERO_GPU", "true")
        patch.setitem(sys.modules, "spaces", spaces)
        aot = with_compiled_unet(models, Settings(fast_decoder="none", offline=True, max_image_side=SIDE))
    return aot, spaces


def test_on_zerogpu_the_unet_is_compiled_ahead_of_time_in_one_gpu_call_at_start_up(aot_models):
    models, spaces = aot_models
    assert spaces.durations == [compiled.AOT_COMPILE_SECONDS]
    unet = models.compiled_unet
    assert models.unet_for_steps is unet and unet.eager is models.unet
    assert {shape for shape, _, _ in unet.shapes} == {(1, 4, 16, 16), (2, 4, 16, 16)}
    assert isinstance(unet.compiled, compiled.LoadedOncePerProcess)
    assert type(unet.compiled.program).__name__ == "_ExportedModel"  # the program that crossed back


@pytest.mark.parametrize("scheduler", ["DDIM", "Euler"])  # int64 and float32 timesteps
def test_the_ahead_of_time_program_runs_the_default_size_and_matches_eager(aot_models, models, settings,
                                                                           scheduler):
    calls = calls_of(aot_models[0].compiled_unet)
    for guidance in (0.0, 7.5):
        params = GenerateParams(prompt="a fox", seed=3, num_inference_steps=2, guidance_scale=guidance,
                                scheduler=scheduler, width=SIDE, height=SIDE)
        ours, eager = generate(aot_models[0], params, settings), generate(models, params, settings)
        assert np.array_equal(np.asarray(ours.image), np.asarray(eager.image))
    assert calls == [(1, 4, 16, 16)] * 2 + [(2, 4, 16, 16)] * 2
    calls.clear()
    generate(aot_models[0], GenerateParams(prompt="a fox", num_inference_steps=2, width=64, height=96), settings)
    assert calls == []  # other sizes: the eager UNet (the program was exported for the default size only)


def test_the_compiled_program_is_loaded_once_per_process_whichever_thread_calls_it():
    """spaces' compiled model keeps what it loaded in a ContextVar, and each request's loop runs in a new thread
    (an empty context): called directly, it would load again for every request."""
    loads = []

    class Program:  # as spaces' ZeroGPUCompiledModel
        loaded = contextvars.ContextVar("loaded", default=None)

        def __call__(self, x):
            if self.loaded.get() is None:
                loads.append(x)
                self.loaded.set(True)
            return x

    def from_new_threads(program, count=3):
        for i in range(count):
            thread = threading.Thread(target=program, args=(i,))
            thread.start()
            thread.join()

    from_new_threads(Program())
    assert len(loads) == 3  # the problem
    loads.clear()
    from_new_threads(compiled.LoadedOncePerProcess(Program()))
    assert len(loads) == 1


def test_a_failed_compile_stops_the_start_with_a_clear_message(models, monkeypatch):
    def failing_worker(task, duration):  # as spaces reports any exception in the worker but a gr.Error
        def call():
            raise RuntimeError("ZeroGPU worker error: CalledProcessError")
        return call

    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setitem(sys.modules, "spaces", SimpleNamespace(GPU=failing_worker, aoti_compile=None))
    with pytest.raises(ModelLoadError, match="ahead of time in a ZeroGPU worker failed .RuntimeError: ZeroGPU "
                                             "worker error: CalledProcessError.*Start without --compile"):
        with_compiled_unet(models, Settings(fast_decoder="none", offline=True, max_image_side=SIDE))


def test_compile_on_zerogpu_without_the_spaces_package_is_refused_clearly(models, monkeypatch):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    with pytest.raises(ModelLoadError, match="needs the `spaces` package"):
        with_compiled_unet(models, Settings(fast_decoder="none", offline=True, compile=True))


def test_default_side_is_512_within_the_limits():
    assert compiled.default_side(8, 64, 768) == 512
    assert compiled.default_side(8, 64, 300) == 296
    assert compiled.default_side(8, 600, 768) == 600
