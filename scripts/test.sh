#!/usr/bin/env bash
# The README's test command: install what the tests need (if missing), lint, run the whole suite offline.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False
python -m pip install -q -r requirements-dev.txt
if [ ! -x /usr/lib/chromium/chromium ]; then
  # the browser tests drive Debian's Chromium (Playwright can't download its own browsers offline)
  apt-get update -q && apt-get install -y -q chromium
fi
ruff check .
python -m pytest "$@"
