"""latent-demo entry point (Hugging Face Spaces runs this file): settings -> load models once -> build UI -> launch."""

# ZeroGPU: `spaces` must be imported before anything touches CUDA (torch, diffusers, transformers), or it refuses
# to start ("CUDA has been initialized before importing the spaces package"). Spaces preinstalls it; elsewhere it is
# not needed, and where it is installed without SPACES_ZERO_GPU=true its GPU decorator does nothing.
try:
    import spaces  # noqa: F401
except ImportError:
    spaces = None

import logging  # noqa: E402
import sys  # noqa: E402

from latent_demo.config import Settings, build_arg_parser  # noqa: E402  (no torch, no Gradio)


def main(argv: list[str] | None = None, **launch_extra) -> tuple:
    """Serve the app. Returns (models, settings) only once Gradio's launch returns, which it does not unless
    `launch_extra` asks it not to block (prevent_thread_lock=True: a benchmark times the engine in this process)."""
    try:
        settings = Settings.from_sources(sys.argv[1:] if argv is None else argv)
    except ValueError as err:
        build_arg_parser().error(str(err))  # exits with the message and the usage, no traceback
    # torch, diffusers and Gradio only now (~10 s of imports on 2 cores): --help and a bad flag answer at once
    from latent_demo.models import ModelLoadError, load_models
    from latent_demo.serving import gradio_compat
    from latent_demo.ui.app import build_app, launch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        gradio_compat.check()  # before minutes of loading: this Gradio must be the one our patches were read for
        models = load_models(settings)
    except (gradio_compat.GradioIncompatible, ModelLoadError) as err:
        logging.getLogger("latent_demo").error("%s", err)
        sys.exit(1)
    demo = build_app(models, settings)
    launch(demo, settings, **launch_extra)
    return models, settings


if __name__ == "__main__":
    main()
