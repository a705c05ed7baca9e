"""latent-demo entry point (Hugging Face Spaces runs this file): settings -> load models once -> build UI -> launch."""

import logging
import sys

from latent_demo.config import Settings
from latent_demo.models import load_models
from latent_demo.ui.app import build_app, launch_options


def main(argv: list[str] | None = None) -> None:
    settings = Settings.from_sources(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    models = load_models(settings)
    demo = build_app(models, settings)
    demo.launch(**launch_options(settings))


if __name__ == "__main__":
    main()
