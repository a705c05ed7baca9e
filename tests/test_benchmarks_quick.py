"""The benchmark command's --quick mode (tiny model) runs end to end and prints every figure: a smoke test. It runs
in this process, where torch, diffusers and Gradio are imported already (~10 s less than `python -m
benchmarks.run --quick`); its app section starts the app as `python app.py` serves it, as the full run
does."""

from benchmarks import run


def test_quick_benchmark_prints_every_figure(capsys):
    status = run.main(["--quick"])
    table = capsys.readouterr().out
    assert status == 0, table[-2000:]
    for figure in ("1 step", "image difference bf16 vs fp32", "Encode tab end to end", "UNet throughput",
                   "per-step preview", "generate vs StableDiffusionPipeline", "peak RSS", "page served",
                   "model loads in that process", "per-step x̂₀", "why-latents panel", "over-compression view",
                   "/generate end to end", "its first streamed output", "/encode end to end", "/img2img end to end",
                   "serving overhead", "as a gradio_client script waits",
                   "what two processes differ by: the engine in the server's process",
                   "with Client(url, ssl_verify=False)", "the least a gradio_client script can wait",
                   "cold start: weights sd-turbo downloads"):
        assert figure in table, figure
    assert "max 0," in table.split("image difference ours vs diffusers")[1]  # fp32: the same image as diffusers
    assert "| 1 |" in table.split("model loads in that process")[1]  # loaded once


def test_the_benchmarks_read_the_timings_the_generate_tab_shows():
    from benchmarks.processes import status_timings, unet_step_seconds
    from latent_demo.ui.common import format_timings

    shown = format_timings({"text": 0.01, "unet_per_step": 0.09, "unet": 2.36, "decode": 0.58, "total": 2.97})
    status = f"Seed **1** · {shown}\n\nx̂₀ per step: the scheduler's."
    assert status_timings(status) == {"unet_per_step": 0.09, "unet": 2.36, "decode": 0.58, "total": 2.97}
    assert unet_step_seconds(status) == 0.09
