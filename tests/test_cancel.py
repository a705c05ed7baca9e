"""Cancel stops the visitor's own job within one step, frees the worker and leaves other visitors' jobs alone."""

import threading
import time

import numpy as np
import pytest
import torch
from gradio_client import Client
from PIL import Image

from latent_demo.ui.streaming import stream_task

DEFAULT = "model default"


def slow_task(steps_run: list, seconds_per_step: float):
    def task(callback):
        for i in range(1000):
            time.sleep(seconds_per_step)
            steps_run.append(i)
            callback(i, i, torch.zeros(1))
        return "finished"
    return task


def test_closing_the_stream_returns_at_once_and_the_loop_stops_at_its_next_step():
    slots, steps_run = threading.BoundedSemaphore(1), []
    stream = stream_task(slow_task(steps_run, 0.2), slots)
    assert next(stream)[0] == "step" and next(stream)[0] == "step"
    started = time.perf_counter()
    stream.close()  # what Gradio does, on its event loop, when the visitor presses Cancel
    assert time.perf_counter() - started < 0.05  # never blocks the server while the step finishes
    waited = time.perf_counter()
    assert slots.acquire(timeout=5)  # the worker gives the models back once its current step ends...
    assert 0.0 < time.perf_counter() - waited <= 0.3
    slots.release()
    stopped_at = len(steps_run)
    time.sleep(0.5)
    assert len(steps_run) == stopped_at <= 4  # ...and never runs another step


def test_the_next_job_waits_for_the_models_in_its_own_thread():
    slots, first_steps, second_steps = threading.BoundedSemaphore(1), [], []
    first = stream_task(slow_task(first_steps, 0.2), slots)
    next(first)
    second = stream_task(slow_task(second_steps, 0.01), slots)
    first.close()
    assert next(second)[0] == "step"  # runs once the cancelled job's step is over
    assert len(first_steps) <= 3
    second.close()


def test_errors_in_the_task_reach_the_consumer():
    def failing(callback):
        raise ValueError("bad value")

    with pytest.raises(ValueError, match="bad value"):
        list(stream_task(failing, threading.BoundedSemaphore(1)))


def count_unet_calls(models):
    calls = []
    handle = models.unet.register_forward_hook(lambda *args: calls.append(time.monotonic()))
    return calls, handle


def generate_job(client, seed, steps, size=512, guidance=7.0):
    return client.submit("a fox", "", seed, False, steps, guidance, DEFAULT, size, size, False, api_name="/generate")


def test_cancel_stops_only_that_visitors_job(app_url, models):
    alice, bob = Client(app_url, verbose=False), Client(app_url, verbose=False)
    reference = Client(app_url, verbose=False).predict("a fox", "", 8, False, 2, 0.0, DEFAULT, 128, 128, False,
                                                        api_name="/generate")[3]
    calls, handle = count_unet_calls(models)
    try:
        long_job = generate_job(alice, seed=1, steps=50)
        deadline = time.monotonic() + 60
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(calls) >= 2, "the long job never started"
        bobs_job = generate_job(bob, seed=8, steps=2, size=128, guidance=0.0)  # queued behind Alice's job
        long_job.cancel()
        calls_at_cancel = len(calls)
        bobs_image = bobs_job.result(timeout=60)[3]
        assert len(calls) <= calls_at_cancel + 1 + 2  # at most the step in flight, then Bob's 2 steps
        assert len(calls) < 50
    finally:
        handle.remove()
    assert np.array_equal(np.asarray(Image.open(bobs_image)), np.asarray(Image.open(reference)))
