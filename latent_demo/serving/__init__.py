"""Serving: where model work runs (a thread here, a ZeroGPU worker on Spaces), how its steps stream to the page,
the files handed to Gradio, and the one wall around Gradio's internals. The tabs (latent_demo/ui/) use it."""
