"""The Gradio internals the app touches: checked at launch, installed at launch only, and failures handled."""

import asyncio
import concurrent.futures
import errno
import json
import logging
import socket
import threading
import time

import gradio as gr
import pytest
from gradio import processing_utils
from gradio.state_holder import SessionState
from gradio_client import handle_file
from PIL import Image

from latent_demo import hub
from latent_demo.config import Settings
from latent_demo.models import load_models
from latent_demo.serving import gradio_compat, gradio_fixes
from latent_demo.serving.files import start_cache_cleanup
from latent_demo.ui.examples import asset


def test_the_installed_gradio_passes_the_check():
    gradio_compat.check(demo=gr.Blocks())


def test_another_gradio_version_refuses_to_start_with_a_reason():
    with pytest.raises(gradio_compat.GradioIncompatible, match="checked against gradio 6.31.0, but 6.32.0"):
        gradio_compat.check("6.32.0")


def test_a_renamed_internal_is_named(monkeypatch):
    monkeypatch.delattr(processing_utils, "hash_bytes")
    with pytest.raises(gradio_compat.GradioIncompatible, match="no longer has gradio.processing_utils.hash_bytes"):
        gradio_compat.check()


def test_build_app_patches_nothing_and_starts_no_thread(models, settings, monkeypatch):
    from latent_demo.ui.app import build_app

    sentinel = object()
    monkeypatch.setattr(processing_utils, "save_pil_to_cache", sentinel)
    threads = {thread.name for thread in threading.enumerate()}
    build_app(models, settings)
    assert processing_utils.save_pil_to_cache is sentinel
    started = {thread.name for thread in threading.enumerate()} - threads
    assert "latent-demo-cache-cleanup" not in started


def test_the_launched_app_writes_its_images_through_the_atomic_writer(client, monkeypatch):
    """Gradio looks the function up on the module at every save: the patch installed at launch is the one used."""
    assert processing_utils.save_pil_to_cache is gradio_fixes.save_pil_to_cache_atomically
    calls = []

    def spy(*args, **kwargs):
        calls.append(args[2] if len(args) > 2 else kwargs.get("name"))
        return gradio_fixes.save_pil_to_cache_atomically(*args, **kwargs)

    monkeypatch.setattr(processing_utils, "save_pil_to_cache", spy)
    client.predict(handle_file(asset("astronaut.png")), False, api_name="/encode_page")
    assert len(calls) >= 7  # 4 channel pictures, original, reconstruction, error map


def run_apart(coroutine):
    """asyncio.run in a thread of its own: the browser tests' Playwright keeps an event loop in the main thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


GRADIO_POSTPROCESS = getattr(gr.Blocks.postprocess_data, "__wrapped__", gr.Blocks.postprocess_data)


@pytest.mark.parametrize("values", [
    [gr.skip(), 2, gr.skip()],  # one value kept: Gradio wraps a single output itself
    ["text", 2, gr.skip()],
    [gr.skip(), gr.skip(), gr.skip()],
    ["text", 2, None],
])
def test_bare_skips_pass_through_unchanged_without_rebuilding_components(values, monkeypatch):
    with gr.Blocks() as demo:
        outputs = [gr.Textbox(), gr.Number(), gr.Image()]
        gr.Button().click(lambda: None, None, outputs)
    block_fn = next(iter(demo.fns.values()))
    rebuilt = []
    update_config = SessionState._update_config
    monkeypatch.setattr(SessionState, "_update_config", lambda state, key: (rebuilt.append(key),
                                                                            update_config(state, key)))
    gradios = run_apart(GRADIO_POSTPROCESS(demo, block_fn, list(values), SessionState(demo)))
    rebuilt_by_gradio, rebuilt[:] = list(rebuilt), []
    ours = run_apart(gradio_fixes.passing_skips_through(GRADIO_POSTPROCESS)(demo, block_fn, list(values),
                                                                          SessionState(demo)))
    assert ours == gradios  # what the browser receives is the same
    assert len(rebuilt_by_gradio) == sum(value == gr.skip() for value in values) and rebuilt == []


class FakeDemo:
    """Enough of a Blocks for the clean-up thread: running, with one cached file; the first round fails."""

    def __init__(self, path: str):
        self.is_running, self.blocks, self.rounds = True, {}, 0
        self.cached = {path}

    @property
    def temp_file_sets(self):
        self.rounds += 1
        if self.rounds == 1:
            raise RuntimeError("Set changed size during iteration")  # what killed Gradio's own clean-up
        return [self.cached]


def test_the_cache_cleanup_logs_a_failed_round_and_carries_on(tmp_path, caplog):
    old = tmp_path / "old.png"
    old.write_bytes(b"x")
    demo = FakeDemo(str(old))
    with caplog.at_level(logging.ERROR):
        thread = start_cache_cleanup(demo, max_age_s=0, interval_s=0.01)
        deadline = time.monotonic() + 10
        while old.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        demo.is_running = False
        thread.join(5)
    assert not old.exists() and demo.rounds >= 2
    assert "cleaning Gradio's cache failed" in caplog.text and "Set changed size" in caplog.text


class Upload:
    """A component whose own preprocessing fails as given."""

    def __init__(self, error: Exception):
        self.error = error

    def preprocess(self, payload):
        raise self.error


@pytest.mark.parametrize("error, message", [
    (OSError("cannot identify image file"), "not an image this app can read"),
    (SyntaxError("not a PNG file"), "not an image this app can read"),
    (OSError(errno.ENOSPC, "No space left on device"), "could not read the upload \\(a problem on our side"),
    (PermissionError(errno.EACCES, "Permission denied"), "could not read the upload \\(a problem on our side"),
])
def test_only_decoding_errors_are_called_unreadable(error, message, caplog):
    component = Upload(error)
    gradio_compat.readable_upload_errors(component, 1000)
    with caplog.at_level(logging.ERROR), pytest.raises(gr.Error, match=message):
        component.preprocess({"path": "x.png"})
    assert ("reading an upload failed on the server" in caplog.text) == (getattr(error, "errno", None) is not None)


def test_a_hub_hiccup_at_start_up_is_retried(monkeypatch):
    from latent_demo import models as loading

    attempts, waits = [], []
    offline = loading.load_offline_models(loading.torch.device("cpu"), loading.torch.float32,
                                          loading.torch.float32)

    def flaky(name, *args):
        attempts.append(name)
        if len(attempts) < 3:
            raise OSError("503 Service Unavailable")
        return offline

    monkeypatch.setattr(loading, "_load_source", flaky)
    monkeypatch.setattr(hub.time, "sleep", waits.append)
    loaded = load_models(Settings(fast_decoder="none", offline=False, dtype="float32"))
    assert attempts == ["sd-turbo"] * 3 and waits == list(hub.RETRY_WAITS_S)
    assert loaded.fallback_reason is None


def test_a_fallback_that_was_not_asked_for_is_logged_as_an_error(monkeypatch, caplog):
    from latent_demo import models as loading

    def down(*args):
        raise OSError("503 Service Unavailable")

    monkeypatch.setattr(loading, "_load_source", down)
    monkeypatch.setattr(hub.time, "sleep", lambda seconds: None)
    with caplog.at_level(logging.WARNING):
        loaded = load_models(Settings(fast_decoder="none", offline=False, dtype="float32"))
    assert loaded.is_untrained and "local cache or the Hub" in loaded.fallback_reason
    fallback = [record for record in caplog.records if "OFFLINE MODEL IN USE" in record.message]
    assert fallback and fallback[0].levelno == logging.ERROR


def test_the_app_refuses_to_start_on_another_gradio_before_loading_anything(monkeypatch, caplog):
    import app
    from latent_demo import models as loading

    monkeypatch.setattr(gradio_compat, "TESTED_GRADIO", "6.30.0")
    monkeypatch.setattr(loading, "load_models", lambda settings: pytest.fail("models were loaded"))
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exited:
        app.main(["--model", "offline", "--fast-decoder", "none"])
    assert exited.value.code == 1 and "checked against gradio 6.30.0" in caplog.text


def test_without_any_network_the_fallback_does_not_wait(monkeypatch):
    from latent_demo import models as loading

    attempts = []

    def unresolvable(name, *args):
        attempts.append(name)
        try:  # the chain diffusers raises when the Hub's name does not resolve: OSError <- ... <- gaierror
            raise socket.gaierror(-2, "Name or service not known")
        except OSError as cause:
            raise loading.ModelLoadError("could not load model 'stabilityai/sd-turbo'") from cause

    monkeypatch.setattr(loading, "_load_source", unresolvable)
    monkeypatch.setattr(hub.time, "sleep", lambda seconds: pytest.fail("waited without a network"))
    loaded = load_models(Settings(fast_decoder="none", offline=False, dtype="float32"))
    assert attempts == ["sd-turbo"] and loaded.is_untrained


def test_the_folder_check_answers_as_gradios_own(tmp_path, monkeypatch):
    """gradio_fixes.is_in_or_equal resolves the folder once; for the file it answers exactly as Gradio's check,
    links and `..` included."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    (allowed / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("x")
    (allowed / "image.png").write_text("x")
    (allowed / "link.txt").symlink_to(outside / "secret.txt")  # inside by name, outside once resolved
    (tmp_path / "linked-folder").symlink_to(allowed)  # a folder named through a link
    monkeypatch.chdir(tmp_path)
    cases = [(allowed / "image.png", allowed), (allowed, allowed), (allowed / "sub", allowed),
             (allowed / "link.txt", allowed), (outside / "secret.txt", allowed), (allowed / ".." / "outside", allowed),
             ("allowed/image.png", allowed), ("allowed/image.png", "allowed"), (allowed / "missing.png", allowed),
             (allowed / "image.png", tmp_path / "linked-folder"), (str(allowed).lower() + "/x", str(allowed).lower())]
    for path, folder in cases:
        assert gradio_fixes.is_in_or_equal(path, folder) == gradio_fixes.GRADIO_IS_IN_OR_EQUAL(path, folder), \
            (path, folder)
    assert not gradio_fixes.is_in_or_equal(allowed / "link.txt", allowed)
    assert gradio_fixes.is_in_or_equal(allowed / "image.png", tmp_path / "linked-folder")


def test_the_folder_check_takes_the_path_of_an_image_it_wrote_as_resolved(tmp_path, monkeypatch):
    """An image the cache writer wrote is checked without resolving its path again (it was resolved when written),
    with the same answers as Gradio's check; other paths are still resolved."""
    cache, elsewhere = tmp_path / "cache", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "linked-cache").symlink_to(cache, target_is_directory=True)
    written = gradio_fixes.save_pil_to_cache_atomically(Image.new("RGB", (8, 8), "red"), str(cache), format="png")
    folders = (cache, elsewhere, tmp_path / "linked-cache", tmp_path, str(cache)[:-1])  # the last: a prefix, no folder
    gradios = [gradio_fixes.GRADIO_IS_IN_OR_EQUAL(written, folder) for folder in folders]
    resolved = []  # the paths made absolute (then resolved) from here on
    original_abspath = gradio_fixes.utils.abspath
    monkeypatch.setattr(gradio_fixes.utils, "abspath", lambda path: resolved.append(str(path)) or
                        original_abspath(path))
    answers = [gradio_fixes.is_in_or_equal(written, folder) for folder in folders]
    assert answers == gradios == [True, False, True, True, False]
    assert written not in resolved
    other = cache / "other.png"
    other.write_bytes(b"x")
    assert gradio_fixes.is_in_or_equal(other, cache) and str(other) in resolved


def test_the_queue_waits_for_work_instead_of_polling(client, monkeypatch):
    """Gradio's loop looks for an event to start every 1 ms (~1,000 wake-ups a second on the event loop); the
    launched apps' wait for a sign, looking anyway every QUEUE_LOOK_S (counted per app: the suite runs several)."""
    waits, wait_for_work = [], gradio_fixes._wait_for_work

    async def counted(queue):
        waits.append(id(queue))
        await wait_for_work(queue)

    monkeypatch.setattr(gradio_fixes, "_wait_for_work", counted)
    time.sleep(1.0)
    per_app = [waits.count(queue) for queue in set(waits)]
    assert per_app and max(per_app) <= 1.5 / gradio_fixes.QUEUE_LOOK_S


def queue_messages(app_url: str, api_name: str, data: list) -> list[str]:
    """The kinds of message one queued call receives, read as the page reads them."""
    import httpx

    with httpx.Client(timeout=60) as http:
        config = http.get(app_url + "config").json()
        api = app_url + config["api_prefix"].strip("/") + "/"
        event = next(event for event in config["dependencies"] if event.get("api_name") == api_name)
        session = f"signs-{time.monotonic_ns()}"
        http.post(api + "queue/join", json={"data": data, "fn_index": event["id"], "session_hash": session,
                                            "event_data": None, "trigger_id": None}).raise_for_status()
        kinds = []
        with http.stream("GET", api + "queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    kinds.append(json.loads(line[5:])["msg"])
                    if kinds[-1] == "process_completed":
                        return kinds
    return kinds


def test_work_starts_on_its_sign_not_at_the_next_look(client, app_url, monkeypatch):
    """With the loop's looks a minute apart, only the signs move the queue: a call starts when it joins, a call
    waiting for the models' one slot starts when the job before it ends (and a running job's progress is sent)."""
    monkeypatch.setattr(gradio_fixes, "QUEUE_LOOK_S", 60.0)
    time.sleep(0.2)  # the loop's current look (0.05 s apart) ends; the next one is a minute away
    started = time.monotonic()
    request = ("a red fox", "", 1, False, 2, 0.0, "model default", 128, 128, False)
    jobs = [client.submit(*request, api_name="/generate") for _ in range(2)]  # one slot: the second waits
    seeds = [job.result(timeout=30)[1] for job in jobs]
    kinds = queue_messages(app_url, "generate_page", ["a red fox", "", 1, False, 12, 0.0, "model default", 256,
                                                      256, False, "both"])
    assert seeds == [1, 1] and kinds[-1] == "process_completed" and "progress" in kinds
    assert time.monotonic() - started < 30  # far less than one look
