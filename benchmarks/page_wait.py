"""A request waited for as the page waits for it: Gradio's own protocol over kept-alive connections, every streamed
message read as it arrives, every file it shows fetched once.

The page (Gradio's JavaScript client) posts the request to `queue/join`, reads `queue/data` as a server-sent event
stream, applies each update as it comes and loads each image once. gradio_client, which timed the page before,
differs in two ways that add to the wait and that no browser has: its reader thread looks for new messages every
50 ms (`time.sleep(0.05)` in `gradio_client.utils.stream_sse_v1plus`), so each update, the last one included, reaches
it 0–50 ms late; and it opens a new HTTP client for each request, which loads the CA bundle (30–40 ms on a 2-core
EPYC) even for plain HTTP. The scripts' rows still time gradio_client with its defaults: that is a script's wait.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field

import httpx
from gradio_client.utils import apply_diff


@dataclass
class PageAnswer:
    """Seconds from the click to the first shown update, to the first update whose `image_index` output is shown
    (its file fetched), to the last update shown; and the outputs of the last update."""

    first: float
    image: float
    total: float
    outputs: list = field(repr=False)


class PageWait:
    """Calls the app's events as the page does (see the module's docstring). `defaults`: the page's values for the
    inputs a call leaves out, read from the app's config."""

    def __init__(self, url: str):
        self.http = httpx.Client(timeout=None)  # a browser keeps its connections open
        config = self.http.get(url.rstrip("/") + "/config").json()
        self.api = url.rstrip("/") + "/" + config["api_prefix"].strip("/") + "/"
        self.events = {event["api_name"]: event for event in config["dependencies"] if event.get("api_name")}
        self.defaults = {component["id"]: component.get("props", {}).get("value")
                         for component in config["components"]}
        self.session = secrets.token_hex(8)  # one per page load: every call from this page shares it
        self.fetched: set[str] = set()

    def call(self, api_name: str, *args, image_index: int = 3) -> PageAnswer:
        event = self.events[api_name.lstrip("/")]
        data = [*args, *(self.defaults.get(input_id) for input_id in event["inputs"][len(args):])]
        self.fetched = set()  # a new result's files are new to the page (a benchmark repeats one seed)
        started = time.perf_counter()
        joined = self.http.post(self.api + "queue/join", json={"data": data, "fn_index": event["id"],
                                                               "session_hash": self.session, "event_data": None,
                                                               "trigger_id": None})
        joined.raise_for_status()
        first = image = None
        outputs: list | None = None
        with self.http.stream("GET", self.api + "queue/data", params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                kind = message.get("msg")
                if kind not in ("process_generating", "process_completed"):
                    continue
                if kind == "process_completed" and not message.get("success", True):
                    raise RuntimeError(f"{api_name} failed: {message.get('output')}")
                data = message["output"]["data"]
                if kind == "process_generating" and outputs is not None:  # an update after the first: diffs
                    data = [apply_diff(previous, diff) for previous, diff in zip(outputs, data, strict=True)]
                outputs = data
                self.show(outputs)
                now = time.perf_counter() - started
                first = now if first is None else first
                if image is None and image_index < len(outputs) and file_urls(outputs[image_index]):
                    image = now
                if kind == "process_completed":
                    break
        nan = float("nan")
        return PageAnswer(nan if first is None else first, nan if image is None else image,
                          time.perf_counter() - started, outputs or [])

    def show(self, outputs: list) -> None:
        """Fetch the files an update shows, each once (the browser's cache has the others)."""
        for url in file_urls(outputs):
            if url not in self.fetched:
                self.http.get(url).raise_for_status()
                self.fetched.add(url)

    def close(self) -> None:
        self.http.close()


def file_urls(value) -> list[str]:
    """Every file URL in an output (an image, a gallery, a file)."""
    if isinstance(value, dict):
        url = value.get("url")
        if isinstance(url, str) and url.startswith("http"):
            return [url]
        return [found for item in value.values() for found in file_urls(item)]
    if isinstance(value, list | tuple):
        return [found for item in value for found in file_urls(item)]
    return []
