"""A local ZeroGPU device API: lets the real `spaces` package run its ZeroGPU path on any machine with a CUDA GPU.

`spaces` (0.51.3) asks a device API for the GPU before every decorated call (spaces/zero/api.py): POST /schedule
with the requested `durationSeconds`, POST /allow from the worker, POST /release when the call ends, GET
/queue-size, POST /startup-report. This server answers them for the local GPU, keeps a daily quota like ZeroGPU's
(120 s for a visitor who is not logged in, 210 s for a free account), charges the seconds really held (from
/schedule to /release), and refuses a call that asks for more than is left with HTTP 429 and the quota left, which
`spaces` turns into "Space app has reached its GPU limit". Each event is one JSON line in --log.

What the real scheduler does beyond that, as options: `--not-idle-every N` answers "not idle" to every Nth call
(spaces then forks a new worker, which pays its start inside the billed time), `--gpu-index` names another GPU
(workers are kept per index), `--max-duration S` refuses longer requests as ZeroGPU does ("The requested GPU
duration (...) is larger than the maximum allowed"), `--auth regular|pro` says the visitor is logged in (with a
visitor token, X-IP-Token, spaces then words a refusal "You have exceeded your free ZeroGPU quota (Ns requested vs.
Ms left). Try again in ..."; without one, "Space app has reached its GPU limit"). POST /next-not-idle makes the
next answer "not idle": scripts/zerogpu/drive.py --cold-and-warm times each endpoint on a cold worker, then a warm one.

    python3 scripts/zerogpu/device_api.py --port 7999 --quota 120 --log schedule.jsonl &
    SPACES_ZERO_GPU=true SPACES_ZERO_DEVICE_API_URL=http://127.0.0.1:7999 python3 app.py ...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PLACEHOLDER_UUID = "GPU-00000000-0000-0000-0000-000000000000"


def local_gpu_uuid() -> str:
    """The GPU's UUID, which `spaces` hands its worker as the device to use; a placeholder where there is none."""
    try:
        listed = subprocess.run(["nvidia-smi", "--query-gpu=uuid", "--format=csv,noheader"], capture_output=True,
                                text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return PLACEHOLDER_UUID
    return listed[0] if listed else PLACEHOLDER_UUID


class Quota:
    """Seconds of GPU left today, charged with the seconds each allowed call really held."""

    def __init__(self, seconds: float, log_path: str | None, not_idle_every: int = 0, gpu_index: int = 0,
                 max_duration_s: float | None = None, auth: str | None = None):
        self.not_idle_every, self.gpu_index, self.max_duration_s, self.auth = not_idle_every, gpu_index, \
            max_duration_s, auth
        self.scheduled = 0
        self.next_not_idle = False
        self.left = seconds
        self.held: dict[str, tuple[float, int]] = {}  # allow token -> (scheduled at, requested seconds)
        self.lock = threading.Lock()
        self.log_path = log_path
        self.gpu_uuid = local_gpu_uuid()

    def idle(self) -> bool:
        """Whether this answer lets spaces reuse its warm worker (called once per granted schedule)."""
        self.scheduled += 1
        forced, self.next_not_idle = self.next_not_idle, False
        return not (forced or (self.not_idle_every and self.scheduled % self.not_idle_every == 0))

    def schedule(self, requested: int) -> str | None:
        """An allow token, or None when the request exceeds what is left."""
        with self.lock:
            if requested > self.left:
                self.log(event="refused", requested_s=requested, left_s=round(self.left, 3))
                return None
            token = uuid.uuid4().hex
            self.held[token] = (time.monotonic(), requested)
            self.log(event="scheduled", requested_s=requested, left_s=round(self.left, 3))
            return token

    def release(self, token: str, failed: bool) -> None:
        with self.lock:
            started, requested = self.held.pop(token, (time.monotonic(), 0))
            held = time.monotonic() - started
            self.left = max(0.0, self.left - held)
            self.log(event="released", requested_s=requested, held_s=round(held, 3), left_s=round(self.left, 3),
                     failed=failed)

    def log(self, **record) -> None:
        if self.log_path:
            with open(self.log_path, "a") as log:
                log.write(json.dumps({"t": round(time.time(), 3), **record}) + "\n")


def handler_for(quota: Quota) -> type[BaseHTTPRequestHandler]:
    class DeviceAPI(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def answer(self, status: int, body=None, headers: dict | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
            self.answer(200, 0.0) if urlparse(self.path).path == "/queue-size" else self.answer(404)

        def do_POST(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            if url.path in ("/startup-report", "/allow"):
                return self.answer(200)
            if url.path == "/next-not-idle":
                quota.next_not_idle = True
                return self.answer(200)
            if url.path == "/release":
                quota.release(query.get("allowToken", ""), query.get("fail", "False").lower() == "true")
                return self.answer(200)
            if url.path != "/schedule":
                return self.answer(404)
            auth = {"X-Authenticated": quota.auth} if quota.auth else {}
            requested = int(query.get("durationSeconds", 60))
            if quota.max_duration_s is not None and requested > quota.max_duration_s:  # wait < 0: "too long"
                quota.log(event="refused", requested_s=requested, reason="illegal-duration")
                return self.answer(429, {"left": int(quota.left), "wait": -1.0},
                                   {"X-Approve-Result": "illegal-duration", **auth})
            token = quota.schedule(requested)
            if token is None:  # spaces reads {left, wait}; wait >= 0 means "come back later", not "too long"
                return self.answer(429, {"left": int(quota.left), "wait": 3600.0},
                                   {"X-Approve-Result": "quota-exceeded", **auth})
            self.answer(200, {"idle": quota.idle(), "nvidiaIndex": quota.gpu_index, "nvidiaUUID": quota.gpu_uuid,
                              "allowToken": token}, auth)

    return DeviceAPI


def serve(port: int, quota_s: float, log_path: str | None, **scheduler) -> ThreadingHTTPServer:
    return ThreadingHTTPServer(("127.0.0.1", port), handler_for(Quota(quota_s, log_path, **scheduler)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7999)
    parser.add_argument("--quota", type=float, default=120.0, help="seconds of GPU a day (120: not logged in)")
    parser.add_argument("--log", help="append one JSON line per schedule, release and refusal")
    parser.add_argument("--not-idle-every", type=int, default=0, help="answer 'not idle' to every Nth call (0: never)")
    parser.add_argument("--gpu-index", type=int, default=0, help="the GPU index every answer names")
    parser.add_argument("--max-duration", type=float, help="refuse longer requests as illegal (seconds)")
    parser.add_argument("--auth", choices=["regular", "pro"], help="the visitor is logged in (X-Authenticated)")
    args = parser.parse_args()
    serve(args.port, args.quota, args.log, not_idle_every=args.not_idle_every, gpu_index=args.gpu_index,
          max_duration_s=args.max_duration, auth=args.auth).serve_forever()


if __name__ == "__main__":
    main()
