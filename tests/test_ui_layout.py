"""The UI layer's shape: tabs that import no other tab, serving that imports no tab, inputs named as the handlers'
parameters, outputs named and in the public API's order, and Gradio's internals touched only behind the wall."""

import inspect
import re
from pathlib import Path

import pytest

from latent_demo.serving import gradio_compat
from latent_demo.ui.tabs import encode, generate, img2img, inpaint, noise, seed_walk, why_latents

PACKAGE = Path(__file__).resolve().parent.parent / "latent_demo"
# the wall, and the two modules whose replacements only it installs
WALL = {PACKAGE / "serving" / name for name in ("gradio_compat.py", "gradio_fixes.py", "no_url_fetch.py")}
INTERNALS = ({attribute for _, attribute, *_ in (*gradio_compat.PATCHES, *gradio_compat.USED)}
             | {*gradio_compat.BLOCKS_ATTRIBUTES, *gradio_compat.BLOCK_ATTRIBUTES, *gradio_compat.EXAMPLES_ATTRIBUTES})


def sources(folder: Path) -> dict[Path, str]:
    return {path: path.read_text() for path in folder.rglob("*.py")}


def test_no_tab_imports_another_and_serving_imports_no_tab():
    for path, text in sources(PACKAGE / "ui" / "tabs").items():
        assert not re.search(r"latent_demo\.ui\.tabs|from \. import|from \.\w", text), path
    for path, text in sources(PACKAGE / "serving").items():
        assert "latent_demo.ui" not in text, path


@pytest.mark.parametrize("tab, handler", [(generate, generate.run), (img2img, img2img.run), (inpaint, inpaint.run)])
def test_a_tabs_inputs_are_named_and_ordered_as_its_handlers_parameters(tab, handler):
    parameters = [name for name in inspect.signature(handler).parameters if name not in ("ctx", "progress")]
    assert list(tab.Inputs._fields) == parameters


@pytest.mark.parametrize("outputs", [generate.Outputs, img2img.Outputs, inpaint.Outputs, encode.Outputs,
                                     encode.CompressOutputs, noise.Outputs, seed_walk.Outputs, why_latents.Outputs])
def test_an_update_names_only_what_it_changes_and_a_typo_fails(outputs):
    first = outputs._fields[0]
    update = outputs(**{first: "value"})
    assert update[0] == "value" and all(value == {"__type__": "update"} for value in update[1:])
    with pytest.raises(TypeError):
        outputs(no_such_output=1)


def test_gradios_internals_are_touched_only_behind_the_wall():
    """Outside the wall: no Gradio submodule imported, no listed internal read; inside it: nothing unlisted."""
    for path, text in sources(PACKAGE).items():
        if path in WALL:
            continue
        assert not re.search(r"from gradio\.|from gradio import|import gradio\.", text), path
        used = {name for name in INTERNALS if re.search(rf"\.{name}\b(?!\()", text) or f'"{name}"' in text}
        assert not used, f"{path.name} reads Gradio internals {used} outside serving/gradio_compat.py"
    wall = "\n".join(path.read_text() for path in WALL)
    called = set(re.findall(r"processing_utils\.(\w+)", wall))
    assert called <= INTERNALS, called - INTERNALS
    read = set(re.findall(r"\b(?:demo|block|examples)\.(\w+)", wall)) - {"preprocess", "label"}
    assert read <= INTERNALS, read - INTERNALS
    assert not re.search(r"getattr\((?:demo|block|examples|component), \"\w+\", ", wall)  # no silent default


def test_a_one_step_model_says_why_and_offers_an_example_with_steps_to_watch(models, settings):
    import dataclasses

    import gradio as gr

    from latent_demo.ui.app import build_app

    demo = build_app(dataclasses.replace(models, default_steps=1), settings)
    blocks = list(demo.blocks.values())
    note = [block for block in blocks if block.elem_id == "generate-one-step"]
    assert note and "distilled to make an image in **one step**" in note[0].value
    see = [block for block in blocks if isinstance(block, gr.Dataset) and "See the steps" in (block.label or "")]
    assert see and [row[1] for row in see[0].samples] == [4]
    plain = build_app(models, settings)  # the offline model defaults to 4 steps: nothing to explain
    assert not [block for block in plain.blocks.values() if block.elem_id == "generate-one-step"]
