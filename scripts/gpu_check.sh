#!/usr/bin/env bash
# The first command to run on a machine with a CUDA GPU (not part of CI): float16 parity with diffusers' pipelines in
# one process and through the served app (scripts/gpu_parity.py prints every difference), the served path's speed
# and --compile (benchmarks.run --only app --device cuda), where its extra time goes (benchmarks.served_split),
# then the ZeroGPU check.
# Without a GPU it says so and exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA GPU on this machine (torch.cuda.is_available() is False); nothing checked."
  exit 0
fi
export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False PYTHONUNBUFFERED=1
python3 -c "import torch; print('GPU:', torch.cuda.get_device_name(), '· torch', torch.__version__)"
echo "== float16 parity with diffusers (UNet and text encoder float16, VAE float32)"
python3 scripts/gpu_parity.py --device cuda --dtype float16 || status=1
echo "== The served path against diffusers, and --compile (CUDA graphs) against eager"
python3 -m benchmarks.run --only app --device cuda --out benchmarks/gpu-app-table.md || status=1
echo "== Where the served path's extra time goes on this GPU: the task's own timings in the server vs in one process"
python3 -m benchmarks.served_split --device cuda --steps 25 || status=1
python3 -m benchmarks.served_split --device cuda --steps 25 -- --preview none || status=1
echo "== ZeroGPU (the real spaces runtime)"
bash scripts/zerogpu_check.sh || status=1
exit ${status:-0}
