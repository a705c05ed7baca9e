"""Benchmarks of latent-demo against raw diffusers on full-size architectures (random weights)."""
