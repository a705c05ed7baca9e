"""The project's ZeroGPU device API (scripts/zerogpu/device_api.py) spoken to by the real `spaces` client code."""

import importlib.util
import threading
import time
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
