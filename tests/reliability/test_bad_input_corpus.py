"""Every case of the corpus against the launched app: a valid result or a readable AppError, never a crash."""

import json
import math
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from corpus import cases, write_files
from gradio_client.exceptions import AppError
from PIL import Image

from latent_demo import tasks
from latent_demo.params import GenerateParams

GENERIC = "has not enabled verbose error reporting"  # what an untranslated exception looks like to a client
def _all_cases(folder):
    return {case.id: case for case in cases(write_files(folder))}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _all_cases(tmp_path_factory.mktemp("corpus"))


def case_ids():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        return list(_all_cases(Path(folder)))


CASES = case_ids()


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40 and len(set(CASES)) == len(CASES)


def non_finite(args) -> bool:
    return any(isinstance(a, float) and not math.isfinite(a) for a in args)


def raw_call(app_url: str, endpoint: str, args: tuple) -> tuple[str, object]:
    """POST the arguments as JSON with NaN/Infinity literals (gradio_client refuses to send those; a script need
    not), through Gradio's REST API. Returns ("complete", data) or ("error", message)."""
    def uploaded(value):
        if isinstance(value, dict) and value.get("meta", {}).get("_type") == "gradio.FileData":
            with open(value["path"], "rb") as file:
                response = httpx.post(f"{app_url}gradio_api/upload", files={"files": (Path(value["path"]).name, file)})
            return {"path": response.json()[0], "meta": {"_type": "gradio.FileData"}}
        if isinstance(value, dict):
            return {key: uploaded(item) for key, item in value.items()}
        return [uploaded(item) for item in value] if isinstance(value, list) else value

    body = json.dumps({"data": [uploaded(a) for a in args]})  # allow_nan: NaN, Infinity as JavaScript writes them
    name = endpoint.strip("/")
    event = httpx.post(f"{app_url}gradio_api/call/{name}", content=body,
                       headers={"content-type": "application/json"}).json()["event_id"]
    stream = httpx.get(f"{app_url}gradio_api/call/{name}/{event}", timeout=120).text
    kind = "error" if "event: error" in stream else "complete"
    data = json.loads(stream.split("data:", 1)[1].strip().splitlines()[0])
    return kind, (data or {}).get("error") if kind == "error" else data


@pytest.mark.parametrize("case_id", CASES)
def test_each_case_gets_a_result_or_a_readable_error(client, app_url, corpus, case_id):
    case = corpus[case_id]
    if non_finite(case.args):
        kind, value = raw_call(app_url, case.endpoint, case.args)
        assert kind == ("complete" if case.expected is None else "error"), value
        assert value is not None, "no message: an untranslated server error"
        message = str(value)
    elif case.expected is None:
        result = client.predict(*case.args, api_name=case.endpoint)
        assert result is not None and all(value is not None for value in result)
        return
    else:
        with pytest.raises(AppError) as raised:
            client.predict(*case.args, api_name=case.endpoint)
        message = str(raised.value)
    assert GENERIC not in message and "Traceback" not in message, message
    assert re.search(case.expected, message), message


def test_rotated_and_odd_images_come_out_upright_and_rgb(client, corpus):
    gallery, facts, original, *_ = client.predict(*corpus["EXIF-rotated JPEG"].args, api_name="/encode_page")
    assert Image.open(original).size == (64, 96)  # 96x64 stored, shown rotated by 90°
    bright = np.asarray(Image.open(client.predict(*corpus["16-bit PNG"].args, api_name="/encode_page")[2]))
    # a 16-bit ramp scaled into 0..255 (clipping, as PIL's own convert does, would make it almost all white)
    assert bright.ndim == 3 and bright.min() < 5 and bright.max() > 200 and 60 < bright.mean() < 180


def test_after_the_corpus_the_server_still_answers_correctly(client, models, app_settings):
    params = GenerateParams(prompt="a fox", seed=1, num_inference_steps=2, width=64, height=64)
    expected = np.asarray(tasks.generate(models, params, app_settings).image)
    served = client.predict("a fox", "", 1, False, 2, 0.0, "model default", 64, 64, False,
                            api_name="/generate_page")[3]
    assert np.array_equal(np.asarray(Image.open(served).convert("RGB")), expected)
