"""The server never fetches a URL a visitor names.

Gradio 6.31 fetches http(s) URLs for a caller in two places, both guarded against private addresses but open to
any public host:

- a file value (an image input) whose `path` is a URL is downloaded during preprocessing, before our handler runs;
- `GET /gradio_api/file=<url>` streams the URL back through the server.

Either would let anyone use a public Space as a fetching proxy. This app needs neither: images come as uploads,
files are served from Gradio's cache and `assets/`. `refuse_download` (installed by serving/gradio_compat.py at
launch) turns the first into a readable error;
`RefuseUrlFiles` (an ASGI middleware given to `launch()`) answers the second with 403.
"""

from __future__ import annotations

import gradio as gr
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

URL_INPUT_REFUSED = "This app does not fetch URLs: upload the image file itself."
URL_FILE_REFUSED = "This app serves its own files only; it does not fetch URLs."


def _looks_like_url(text: str) -> bool:
    return text.lower().lstrip().startswith(("http:/", "https:/"))  # also "http://…", and a collapsed "http:/…"


async def refuse_download(url: str, cache_dir: str) -> str:
    """Stands in for Gradio's `processing_utils.async_ssrf_protected_download` (the sync variant calls this too)."""
    raise gr.Error(URL_INPUT_REFUSED)


class RefuseUrlFiles:
    """403 for `/file=<http(s) URL>` under any prefix; every other request passes through untouched."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            _, marker, target = scope.get("path", "").partition("/file=")
            if marker and _looks_like_url(target):
                await PlainTextResponse(URL_FILE_REFUSED, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def middleware() -> list[Middleware]:
    """For `launch(app_kwargs={"middleware": ...})`: FastAPI installs it when the app is built."""
    return [Middleware(RefuseUrlFiles)]
