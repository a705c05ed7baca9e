"""Cancel stops the visitor's own job within one step, frees the worker and leaves other visitors' jobs alone."""

import threading
import time

import numpy as np
import pytest
import torch
from gradio_client import Client
from PIL import Image

from latent_demo.serving.streaming import stream_task

DEFAULT = "model default"


def gated_task(steps_run: list, gate: threading.Semaphore):
    """A task that runs one step each time the test releases the gate: the test, not the clock, sets the pace."""
    def task(callback):
        for i in range(1000):
            gate.acquire()
            steps_run.append(i)
            callback(i, i, torch.zeros(1), torch.zeros(1))
        return "finished"
    return task


def close_in_a_thread(stream) -> threading.Event:
    closed = threading.Event()
    threading.Thread(target=lambda: (stream.close(), closed.set()), daemon=True).start()
    return closed


def test_closing_the_stream_returns_at_once_and_the_loop_stops_at_its_next_step():
    slots, steps_run, gate = threading.BoundedSemaphore(1), [], threading.Semaphore(0)
    stream = stream_task(gated_task(steps_run, gate), slots)
    for _ in range(2):
        gate.release()
        assert next(stream)[0] == "step"
    # Gradio closes the stream on its event loop when the visitor presses Cancel: it must return while the task is
    # still inside its step (the gate is shut, so the step cannot end before the test opens it).
    assert close_in_a_thread(stream).wait(10)
    assert not slots.acquire(blocking=False)  # the worker still holds the models, mid-step
    gate.release()  # the step in flight ends...
    assert slots.acquire(timeout=10)  # ...then the worker gives the models back
    slots.release()
    gate.release()  # were the loop still running, it would take another step now
    assert steps_run == [0, 1, 2]


def test_the_next_job_waits_for_the_models_in_its_own_thread():
    slots, first_steps, second_steps = threading.BoundedSemaphore(1), [], []
    first_gate, second_gate = threading.Semaphore(0), threading.Semaphore(0)
    first = stream_task(gated_task(first_steps, first_gate), slots)
    first_gate.release()
    next(first)
    second = stream_task(gated_task(second_steps, second_gate), slots)
    assert close_in_a_thread(first).wait(10)
    second_gate.release()
    first_gate.release()  # the cancelled job's step in flight ends; then the second job gets the models
    assert next(second)[0] == "step"
    assert first_steps == [0, 1] and second_steps == [0]
    assert close_in_a_thread(second).wait(10)
    second_gate.release()


def test_a_consumer_that_falls_behind_gets_the_newest_step_and_every_frame():
    slots, steps_run, gate = threading.BoundedSemaphore(1), [], threading.Semaphore(0)
    stream = stream_task(gated_task(steps_run, gate), slots)
    gate.release()
    assert next(stream)[1][0] == 0
    gate.release(3)
    deadline = time.monotonic() + 10
    while len(steps_run) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # the last step's update is queued right after it is counted
    kind, (index, *_) = next(stream)
    assert (kind, index) == ("step", 3)  # steps 1 and 2 were waiting too: dropped
    gate.release()
    assert next(stream)[1][0] == 4
    assert close_in_a_thread(stream).wait(10)
    gate.release()

    def frames(updates):
        for index in range(3):
            updates.frame(index, f"frame {index}")
        return "done"

    assert list(stream_task(frames, slots)) == [("frame", (0, "frame 0")), ("frame", (1, "frame 1")),
                                               ("frame", (2, "frame 2")), ("done", "done")]


def test_steps_are_thinned_to_one_per_interval_and_a_held_step_gives_way_to_the_result():
    slots, gate = threading.BoundedSemaphore(1), threading.Semaphore(0)

    def quick_steps(count):
        """Step 0; once the test opens the gate, the other steps at once; once it opens it again, the result."""
        def task(callback):
            callback(0, 0, torch.zeros(1), torch.zeros(1))
            gate.acquire()
            for i in range(1, count):
                callback(i, i, torch.zeros(1), torch.zeros(1))
            gate.acquire()
            return "finished"
        return task

    stream = stream_task(quick_steps(3), slots, min_step_interval_s=1.0)
    shown = time.monotonic()  # no later than the stream's own clock for step 0
    assert next(stream)[1][0] == 0  # the first step at once
    gate.release()
    kind, (index, *_) = next(stream)
    assert (kind, index) == ("step", 2) and time.monotonic() - shown >= 1.0  # held for the interval, then the newest
    gate.release()
    assert next(stream) == ("done", "finished")

    # step 1 is still held (the interval is a minute) when the result comes: the result at once, step 1 dropped
    stream = stream_task(quick_steps(2), slots, min_step_interval_s=60)
    assert next(stream)[1][0] == 0
    started = time.monotonic()
    gate.release(2)
    assert list(stream) == [("done", "finished")]
    assert time.monotonic() - started < 30


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
    return client.submit("a fox", "", seed, False, steps, guidance, DEFAULT, size, size, False,
                         api_name="/generate_page")


def test_cancel_stops_only_that_visitors_job(app_url, models):
    alice, bob = Client(app_url, verbose=False), Client(app_url, verbose=False)
    reference = Client(app_url, verbose=False).predict("a fox", "", 8, False, 2, 0.0, DEFAULT, 128, 128, False,
                                                        api_name="/generate_page")[3]
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


def test_the_step_interval_grows_with_what_the_consumer_spends_on_a_step():
    """The live pictures get at most cpu_share of the wall time: a consumer that spends 50 ms on each shown step
    (picture, PNG, sending) sees the next one no sooner than 50 ms / 0.1 = 0.5 s later, not 20 ms later."""
    def steady_steps(callback):
        for i in range(60):  # a step every 20 ms for 1.2 s
            time.sleep(0.02)
            callback(i, i, torch.zeros(1), torch.zeros(1))
        return "finished"

    shown_at = []
    for kind, _ in stream_task(steady_steps, threading.BoundedSemaphore(1), min_step_interval_s=0.02,
                               cpu_share=0.1):
        if kind == "step":
            shown_at.append(time.monotonic())
            time.sleep(0.05)  # the consumer's work on this step
    gaps = [later - earlier for earlier, later in zip(shown_at, shown_at[1:], strict=False)]
    assert 2 <= len(shown_at) <= 4 and min(gaps) >= 0.5  # not ~17 pictures at the 20 ms floor
