"""The Hugging Face Hub at start-up: how long to wait before trying again, when trying again cannot help, and
which weight files to take."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import TypeVar

from huggingface_hub.errors import OfflineModeIsEnabled

log = logging.getLogger(__name__)
RETRY_WAITS_S = (5, 15)  # a Hub hiccup at start-up must not leave a Space on the offline model until restart
T = TypeVar("T")


def no_network(err: BaseException) -> bool:
    """No network at all: the Hub's name does not resolve (a `socket.gaierror` somewhere in the chain; diffusers
    wraps it in OSError, huggingface_hub in LocalEntryNotFoundError, httpx in ConnectError), or huggingface_hub is
    in offline mode. huggingface_hub has already retried with back-off, and trying again cannot help: an offline
    demo laptop should get the offline model without waiting for it."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, socket.gaierror | OfflineModeIsEnabled):
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


def with_retries(load: Callable[[], T], what: str, retried: tuple[type[BaseException], ...],
                 waits: tuple[float, ...] = RETRY_WAITS_S) -> T:
    """`load()`, tried again after each of `waits` when it raises one of `retried`, unless there is no network;
    the last failure is raised."""
    for wait in waits:
        try:
            return load()
        except retried as err:
            if no_network(err):
                raise
            log.warning("loading %s failed (%s); trying again in %d s", what, first_line(err), wait)
            time.sleep(wait)
    return load()


def load_weights(cls, source: str, subfolder: str | None, variant: str | None, **kwargs):
    """`cls.from_pretrained`: the `variant` weight files (e.g. fp16) when asked for and present, else the
    full-precision files."""
    if variant is not None:
        try:
            return cls.from_pretrained(source, subfolder=subfolder, variant=variant, **kwargs)
        except (OSError, ValueError) as err:
            # diffusers and transformers have no exception type for "no such variant": only their message says it
            if f".{variant}." not in str(err) and "variant" not in str(err):
                raise  # not "no such files" (a network error, say): the caller's retry and messages apply
            log.warning("%s has no %s weights (%s); loading the full-precision files",
                        "/".join(filter(None, (source, subfolder))), variant, first_line(err))
    return cls.from_pretrained(source, subfolder=subfolder, **kwargs)


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
