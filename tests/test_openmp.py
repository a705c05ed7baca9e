"""OpenMP teams released (latent_demo/openmp.py): a thread that ran a parallel operator keeps a team of worker
threads until it gives it back; every page handler gives it back when it is done."""

import os
import threading
import time

import pytest
import torch

from latent_demo import openmp
from latent_demo.ui.common import user_errors


def threads_in_process() -> int:
    return len(os.listdir("/proc/self/task"))


def settled(expected: int, timeout_s: float = 2.0) -> int:
    """The thread count once it reaches `expected` (a released worker exits just after its last barrier)."""
    deadline = time.monotonic() + timeout_s
    while threads_in_process() != expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return threads_in_process()


def in_a_thread(work) -> dict:
    seen = {}

    def run():
        seen["before"] = threads_in_process()
        seen["result"] = work(seen)
        seen["after"] = settled(seen["before"])
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seen


def parallel_operator() -> None:
    (torch.ones(3, 1024, 1024) * 2).sum()  # large enough for at::parallel_for to open a parallel region


def test_a_thread_that_ran_a_parallel_operator_gives_its_team_back():
    def work(seen):
        parallel_operator()
        seen["with its team"] = threads_in_process()
        return openmp.release_threads()

    seen = in_a_thread(work)
    assert seen["with its team"] == seen["before"] + torch.get_num_threads() - 1  # the team's workers
    assert seen["result"] is True and seen["after"] == seen["before"]


def test_every_page_handler_gives_the_team_back_when_done():
    @user_errors
    def handler():
        parallel_operator()
        return "done"

    @user_errors
    def streaming_handler():
        parallel_operator()
        yield "a step"
        parallel_operator()
        yield "the result"

    seen = in_a_thread(lambda seen: handler())
    assert seen["result"] == "done" and seen["after"] == seen["before"]
    seen = in_a_thread(lambda seen: list(streaming_handler()))
    assert seen["result"] == ["a step", "the result"] and seen["after"] == seen["before"]


def test_picture_work_started_meanwhile_gives_its_team_back_and_its_value_or_error():
    from latent_demo.serving import meanwhile

    both = threading.Barrier(2)  # both picture threads started (the pool starts them on demand), then counted
    assert [future.result() for future in [meanwhile.start(both.wait) for _ in range(2)]] in ([0, 1], [1, 0])
    before = threads_in_process()

    def work(value):
        parallel_operator()
        return value

    assert meanwhile.start(work, "pictures").result() == "pictures"
    assert settled(before) == before  # no team left behind on the picture thread
    with pytest.raises(ZeroDivisionError):
        meanwhile.start(lambda: 1 / 0).result()


def test_a_step_picture_starts_no_team():
    """The live and trajectory pictures are made beside the model's thread for every shown step: made without
    torch's parallel operators, they start no team there (torch's einsum and rounding did, one per picture)."""
    from latent_demo.serving.previews import linear_picture

    latents = torch.randn(1, 4, 64, 64, dtype=torch.bfloat16)

    def work(seen):
        picture = linear_picture(latents, (256, 256))
        seen["with the picture"] = threads_in_process()
        return picture

    seen = in_a_thread(work)
    assert seen["with the picture"] == seen["before"] and seen["result"].size == (256, 256)
