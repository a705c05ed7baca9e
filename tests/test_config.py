"""Settings: defaults, LATENT_DEMO_* variables, CLI flags (which win), and refused values."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from latent_demo.config import Settings


def test_defaults_are_cpu_first_and_local():
    settings = Settings.from_sources([], environ={})
    assert settings.model is None and settings.device == "auto" and settings.dtype == "auto"
    assert settings.host == "127.0.0.1" and settings.concurrency_limit == 1 and not settings.offline


def test_environment_then_flags():
    environ = {"LATENT_DEMO_MAX_STEPS": "12", "LATENT_DEMO_MODEL": "sd15", "LATENT_DEMO_SHARE": "true",
               "HF_HUB_OFFLINE": "1"}
    settings = Settings.from_sources(["--max-steps", "8"], environ=environ)
    assert settings.max_steps == 8 and settings.model == "sd15" and settings.share and settings.offline


def test_spaces_listen_on_all_interfaces_unless_told_otherwise():
    assert Settings.from_sources([], environ={"SPACE_ID": "user/space"}).host == "0.0.0.0"
    assert Settings.from_sources(["--host", "127.0.0.2"], environ={"SPACE_ID": "x/y"}).host == "127.0.0.2"


@pytest.mark.parametrize("environ, message", [
    ({"LATENT_DEMO_MAX_STEPS": "many"}, "LATENT_DEMO_MAX_STEPS='many' is not an integer"),
    ({"LATENT_DEMO_OFFLINE": "maybe"}, "is not a boolean"),
    ({"LATENT_DEMO_MAX_STEPS": "0"}, "max_steps must be >= 1"),
    ({"LATENT_DEMO_DEVICE": "tpu"}, "device='tpu'; allowed: auto, cpu, cuda, mps"),
    ({"LATENT_DEMO_MIN_IMAGE_SIDE": "1024"}, "must be below max_image_side"),
    ({"LATENT_DEMO_MIN_IMAGE_SIDE": "64", "LATENT_DEMO_MAX_IMAGE_SIDE": "64"}, "must be below max_image_side"),
    ({"LATENT_DEMO_MIN_IMAGE_SIDE": "4"}, "min_image_side must be >= 8"),
    ({"LATENT_DEMO_PORT": "70000"}, "port must be <= 65535"),
    ({"LATENT_DEMO_CACHE_MAX_AGE_S": "0"}, "cache_max_age_s must be >= 1"),
])
def test_bad_settings_are_refused(environ, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_sources([], environ=environ)


def test_every_numeric_setting_has_a_lower_bound():
    """validate() reads the bounds from the table: a new limit without one would accept 0 or -1 silently."""
    numeric = [f for f in dataclasses.fields(Settings) if f.type in ("int", int)]
    assert [f.name for f in numeric if f.metadata["minimum"] is None] == []


def test_app_help_lists_the_settings_without_importing_the_models():
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-X", "importtime", "app.py", "--help"], capture_output=True, text=True,
                         check=True, cwd=root)
    for flag in ("--model", "--device", "--dtype", "--host", "--port", "--share", "--max-steps",
                 "--max-file-size-mb", "--concurrency-limit", "--compile", "LATENT_DEMO_"):
        assert flag in out.stdout
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "diffusers", "transformers", "gradio"}  # answered before any heavy import
