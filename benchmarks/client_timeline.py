"""Where a gradio_client script's wait goes: `python -m benchmarks.client_timeline [--steps 2] [--reps 7]`.

Serves the offline model at 512 px (`benchmarks.served_engine`), calls `/generate` for scripts with
`gradio_client.Client`'s defaults, and prints each call's client-side timeline (ms from the call's start:
name@start+duration): every new HTTP client (`httpx.Client`, each loading the CA bundle), the POST that queues the
job, each server message as it arrives on the event stream and as gradio_client's reader takes it (it looks every
50 ms), and the image's download. Each call is followed by the same Generate run by the engine in the server's own
process, for its ratio. The figures explain the floor of the 2-step script row (benchmarks/README.md): what
gradio_client spends around a job, whatever the server does.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time

import httpx

EVENTS: list[tuple[str, float, float]] = []  # (name, start, end) of the call being timed


def timed(name: str, function):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            EVENTS.append((name, started, time.perf_counter()))
    return wrapper


class MessagesSeen(collections.deque):
    """An event's message queue in gradio_client, noting when each message arrives and when the reader takes it."""

    def append(self, message) -> None:
        now = time.perf_counter()
        EVENTS.append((f"arrived:{message['msg'] if message else 'end'}", now, now))
        super().append(message)

    def popleft(self):
        message, now = super().popleft(), time.perf_counter()
        EVENTS.append((f"taken:{message['msg'] if message else 'end'}", now, now))
        return message


class QueuesSeen(dict):
    def setdefault(self, key, default=None):
        return super().setdefault(key, MessagesSeen())

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, MessagesSeen(value))


def instrument() -> None:
    """Time gradio_client's HTTP clients, its POST, its messages and its downloads (this process only)."""
    from gradio_client import client

    httpx.Client.__init__ = timed("new HTTP client", httpx.Client.__init__)
    client.httpx.post = timed("POST", client.httpx.post)
    client.Endpoint._download_file = timed("download", client.Endpoint._download_file)
    send_data = client.Client.send_data

    def watched_send_data(self, *args, **kwargs):
        if not isinstance(self.pending_messages_per_event, QueuesSeen):
            self.pending_messages_per_event = QueuesSeen(self.pending_messages_per_event)
        return send_data(self, *args, **kwargs)

    client.Client.send_data = watched_send_data


def main(argv: list[str] | None = None) -> None:
    from gradio_client import Client

    from benchmarks.processes import RunningApp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    instrument()
    request = ("a red fox", "", 1, False, args.steps, 0.0, "model default", 512, 512, False)
    ratios, pieces = [], collections.defaultdict(list)
    with RunningApp("offline", 300, "--device", "cpu", "--max-image-side", "512", engine=True) as app:
        script = Client(app.url, verbose=False)
        for rep in range(args.reps + 2):
            EVENTS.clear()
            started = time.perf_counter()
            script.predict(*request, api_name="/generate")
            total = time.perf_counter() - started
            engine = app.engine_seconds(args.steps, 0.0, 512)
            if rep < 2:  # warm-ups
                continue
            ratios.append(total / engine)
            print(f"{total * 1e3:.0f} ms, engine {engine * 1e3:.0f} ms ({total / engine:.3f}): " + " ".join(
                f"{name}@{(start - started) * 1e3:.0f}+{(end - start) * 1e3:.0f}" for name, start, end in EVENTS))
            moments = {name: start for name, start, _ in EVENTS}
            clients = [end - start for name, start, end in EVENTS if name == "new HTTP client"]
            pieces["new HTTP clients (each)"].append(statistics.median(clients))
            pieces["new HTTP clients (per call)"].append(len(clients))
            pieces["the reader's delay after the job's end"].append(
                moments["taken:process_completed"] - moments["arrived:process_completed"])
            pieces["after the job's end (the reader, the download)"].append(
                started + total - moments["arrived:process_completed"])
            pieces["until the first messages come (the stream connected)"].append(
                moments["arrived:process_starts"] - started)
    ratio = statistics.median(ratios)
    print(f"\noffline model, 512 px, {args.steps} steps, medians of {args.reps}: ratio {ratio:.3f}")
    for name, values in pieces.items():
        value = statistics.median(values)
        print(f"  {name:50s} {value:.0f}" if "per call" in name else f"  {name:50s} {value * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
