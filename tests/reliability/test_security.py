"""What a visitor (or a script) cannot do: read server files, pick models or paths, upload huge files."""

import re
from pathlib import Path

import httpx
import pytest
from diffusers import StableDiffusionPipeline
from gradio_client.exceptions import AppError

import latent_demo
from latent_demo.config import Settings
from latent_demo.models import ModelLoadError, load_models
from latent_demo.schedulers import make_scheduler
from latent_demo.serving.no_url_fetch import URL_FILE_REFUSED, URL_INPUT_REFUSED
from latent_demo.ui.app import launch_options

PACKAGE = Path(latent_demo.__file__).parent


def test_defaults_bind_to_loopback_and_limit_uploads():
    options = launch_options(Settings.from_sources([], environ={}))
    assert options["server_name"] == "127.0.0.1" and options["max_file_size"] == "10mb"
    assert options["allowed_paths"] == [str(PACKAGE.parent / "assets")]
    assert not options["share"]


def test_no_endpoint_takes_a_model_path_or_url(client):
    info = client.view_api(print_info=False, return_format="dict")
    labels = " ".join(p["label"].lower() + " " + p["parameter_name"].lower()
                      for endpoint in info["named_endpoints"].values() for p in endpoint["parameters"])
    assert not re.search(r"\bmodel\b|\burl\b|checkpoint|folder", labels)


def test_a_server_file_cannot_be_passed_as_an_upload(client):
    forged = {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}, "orig_name": "passwd.png"}
    with pytest.raises(AppError) as refused:
        client.predict(forged, False, api_name="/encode_page")
    assert "verbose error reporting" not in str(refused.value)  # refused with a reason, not a crash
    assert "root:" not in str(refused.value)  # and nothing of the file comes back


# RFC 2606: ".invalid" never resolves, so even a regression would not reach the network.
REMOTE_IMAGE = "https://images.invalid/cat.png"


def test_an_image_input_given_as_a_url_is_not_fetched(client):
    as_url = {"path": REMOTE_IMAGE, "meta": {"_type": "gradio.FileData"}, "orig_name": "cat.png"}
    with pytest.raises(AppError, match=re.escape(URL_INPUT_REFUSED)):
        client.predict(as_url, False, api_name="/encode_page")
    editor_value = {"background": as_url, "layers": [], "composite": as_url}
    with pytest.raises(AppError, match=re.escape(URL_INPUT_REFUSED)):
        client.predict(editor_value, "x", "", 1, False, 2, 0.0, 1.0, 0, "model default", False,
                       api_name="/inpaint_page")


@pytest.mark.parametrize("target", [REMOTE_IMAGE, "http://127.0.0.1:1/x.png", "https%3A%2F%2Fimages.invalid%2Fcat.png",
                                    "HTTPS://images.invalid/cat.png"])
def test_the_file_route_does_not_fetch_urls(app_url, target):
    response = httpx.get(f"{app_url}gradio_api/file={target}")
    assert response.status_code == 403 and response.text == URL_FILE_REFUSED


def test_files_outside_the_assets_are_not_served(app_url):
    for path in ("/etc/passwd", str(PACKAGE / "config.py")):
        response = httpx.get(f"{app_url}gradio_api/file={path}")
        assert response.status_code in (403, 404), (path, response.status_code)
    assert httpx.get(f"{app_url}gradio_api/file={PACKAGE.parent / 'assets' / 'chelsea.png'}").status_code == 200


def test_uploads_over_the_size_limit_are_refused_by_the_server(app_url, app_settings):
    too_big = b"\0" * (app_settings.max_file_size_mb * 1024 * 1024 + 1)
    response = httpx.post(f"{app_url}gradio_api/upload", files={"files": ("big.png", too_big, "image/png")})
    assert response.status_code == 413


def test_no_pickle_loading_anywhere(models, tmp_path):
    source = "\n".join(path.read_text() for path in PACKAGE.rglob("*.py"))
    assert "torch.load" not in source and "import pickle" not in source
    pipe = StableDiffusionPipeline(vae=models.vae, text_encoder=models.text_encoder, tokenizer=models.tokenizer,
                                   unet=models.unet, scheduler=make_scheduler(models.scheduler_config),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(tmp_path, safe_serialization=False)  # pickle (.bin) weights only
    for part in ("unet", "vae"):
        assert list((tmp_path / part).glob("*.bin")) and not list((tmp_path / part).glob("*.safetensors"))
    with pytest.raises(ModelLoadError, match="could not load model"):
        load_models(Settings(model=str(tmp_path), offline=True, fast_decoder="none", dtype="float32"))
