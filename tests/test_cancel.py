"""Cancel stops the visitor's own job within one step, frees the worker and leaves other visitors' jobs alone."""

import threading
import time

import numpy as np
from gradio_client import Client
from PIL import Image

from latent_demo.ui.common import Cancelled, stream_task

DEFAULT = "model default"


def test_closing_the_stream_stops_the_loop_at_its_next_step():
    steps_run = []

    def slow_task(callback):
        for i in range(1000):
            time.sleep(0.01)
            steps_run.append(i)
            callback(i, i, __import__("torch").zeros(1))
        return "finished"

    stream = stream_task(slow_task)
    assert next(stream)[0] == "step" and next(stream)[0] == "step"
    stream.close()  # what Gradio does when the visitor presses Cancel
    stopped_at = len(steps_run)
    time.sleep(0.1)
    assert len(steps_run) == stopped_at <= 4  # the worker stopped (and was joined) within a step
    assert not [t for t in threading.enumerate() if t.name == "latent-demo-task"]


def test_errors_in_the_task_reach_the_consumer():
    def failing(callback):
        raise ValueError("bad value")

    try:
        list(stream_task(failing))
    except ValueError as err:
        assert str(err) == "bad value"
    else:
        raise AssertionError("the error was swallowed")
    assert issubclass(Cancelled, Exception)


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
