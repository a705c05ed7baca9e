"""The project's ZeroGPU device API (scripts/zerogpu/device_api.py) spoken to by the real `spaces` client code."""

import importlib.util
import sys
import threading
import time
import warnings
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from conftest import free_port
from spaces.zero.api import APIClient, QuotaInfos, ScheduleResponse

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "zerogpu" / "device_api.py"


@pytest.fixture
def device_api():
    spec = importlib.util.spec_from_file_location("device_api", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    port = free_port()
    server = module.serve(port, quota_s=10.0, log_path=None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        yield APIClient(http)
    server.shutdown()


def test_schedule_allow_release_charge_the_seconds_held_and_refuse_past_the_quota(device_api):
    assert device_api.startup_report() == httpx.codes.OK
    granted, _ = device_api.schedule(cgroup_path="/sys/fs/cgroup", duration_seconds=5)
    assert isinstance(granted, ScheduleResponse) and granted.idle and granted.allowToken
    assert device_api.allow(granted.allowToken, pid=1) == httpx.codes.OK
    time.sleep(0.3)
    assert device_api.release(granted.allowToken) == httpx.codes.OK
    refused, metadata = device_api.schedule(cgroup_path="/sys/fs/cgroup", duration_seconds=10)  # 9.7 s are left
    assert isinstance(refused, QuotaInfos) and metadata.approve_result == "quota-exceeded"
    assert 8 <= refused.left <= 9  # 10 s less the ~0.3 s held (whole seconds)
    again, _ = device_api.schedule(cgroup_path="/sys/fs/cgroup", duration_seconds=refused.left)
    assert isinstance(again, ScheduleResponse)
    assert device_api.get_queue_size() == 0.0


def served_api(**scheduler):
    spec = importlib.util.spec_from_file_location("device_api", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    port = free_port()
    server = module.serve(port, quota_s=10.0, log_path=None, **scheduler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{port}"


def test_not_idle_answers_another_gpu_and_the_next_not_idle_control():
    server, url = served_api(not_idle_every=3, gpu_index=2)
    try:
        with httpx.Client(base_url=url) as http:
            api = APIClient(http)
            answers = [api.schedule(cgroup_path="/", duration_seconds=1)[0] for _ in range(3)]
            assert [answer.idle for answer in answers] == [True, True, False]  # every third: a new worker
            assert {answer.nvidiaIndex for answer in answers} == {2}
            assert http.post("/next-not-idle").status_code == 200
            assert api.schedule(cgroup_path="/", duration_seconds=1)[0].idle is False
            assert api.schedule(cgroup_path="/", duration_seconds=1)[0].idle is True
    finally:
        server.shutdown()


DOUBLE_DEVICE = Path(__file__).resolve().parent / "zerogpu_double" / "spaces" / "device.py"


class Headers(dict):
    """What spaces reads of a gr.Request's headers (it wants an object with a __dict__ and .get)."""


class VisitorRequest:
    def __init__(self, token: bool, page: bool):
        self.headers = Headers({**({"x-ip-token": "a-visitor"} if token else {}),
                                **({"x-gradio-user": "app"} if page else {})})


def real_refusal(seconds: int, request: VisitorRequest, auth: str | None) -> tuple[str, str]:
    """(title, message) of the real spaces client refused by our device API (10 s quota, 60 s longest call)."""
    import spaces.zero.client as real_client
    from spaces.config import Config

    server, url = served_api(max_duration_s=60, auth=auth)
    previous, Config.zero_device_api_url = Config.zero_device_api_url, url
    try:
        with warnings.catch_warnings():  # it warns that it cannot read the visitor's token (ours is a dummy)
            warnings.simplefilter("ignore")
            real_client.schedule(task_id=1, request=request, duration=timedelta(seconds=seconds))
    except Exception as err:  # noqa: BLE001  (the refusal is what this returns)
        return err.title, err.message
    finally:
        Config.zero_device_api_url = previous
        server.shutdown()
    raise AssertionError("the request was not refused")


@pytest.mark.parametrize("auth", [None, "regular", "pro"])
@pytest.mark.parametrize("token, page", [(False, True), (True, True), (True, False), (False, False)])
def test_the_doubles_refusals_are_the_real_clients_words(auth, token, page):
    """The real spaces client (zero/client.py) against our device API, and the double's texts for the same answer:
    quota spent and a duration over the maximum, for each kind of visitor, from the page and from a script."""
    spec = importlib.util.spec_from_file_location("double_device", DOUBLE_DEVICE)
    double = sys.modules.setdefault("double_device", importlib.util.module_from_spec(spec))
    spec.loader.exec_module(double)
    request = VisitorRequest(token, page)
    headers = dict(request.headers)
    assert real_refusal(30, request, auth) == double.quota_refusal(30, 10, timedelta(seconds=3600), auth, headers)
    assert real_refusal(100, request, auth) == double.illegal_duration(100, auth, headers)
