"""Handlers turn ValueError into gr.Error; anything else is logged with context but without visitor data."""

import logging

import gradio as gr
import pytest
from PIL import Image

from latent_demo.ui.common import user_errors


@user_errors
def plain(prompt, steps, image):
    raise RuntimeError("kaboom")


@user_errors
def streaming(prompt, steps, image):
    yield 1
    raise RuntimeError("kaboom")


@user_errors
def refusing(prompt, steps, image):
    raise ValueError("steps must be from 1 to 50, got 99")


ARGS = ("a secret prompt", 5, Image.new("RGB", (64, 32)))


@pytest.mark.parametrize("call", [lambda: plain(*ARGS), lambda: list(streaming(*ARGS))])
def test_unexpected_errors_are_logged_without_visitor_data(call, caplog):
    with caplog.at_level(logging.ERROR), pytest.raises(gr.Error, match="unexpected RuntimeError; it was logged"):
        call()
    assert "failed with RuntimeError; arguments: <text, 15 chars>, 5, <image 64x32 RGB>" in caplog.text
    assert "secret" not in caplog.text


def test_value_errors_reach_the_visitor_as_they_are(caplog):
    with caplog.at_level(logging.ERROR), pytest.raises(gr.Error, match="steps must be from 1 to 50, got 99"):
        refusing(*ARGS)
    assert caplog.text == ""
