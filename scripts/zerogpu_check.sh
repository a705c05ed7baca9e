#!/usr/bin/env bash
# ZeroGPU for real, on any machine with a CUDA GPU: the real `spaces` runtime in ZeroGPU mode against our device API
# (scripts/zerogpu/device_api.py). Runs every endpoint, a cancelled stream and both hand-offs, prints the GPU seconds
# held per endpoint, then how many default generations fit in a 120 s (not logged in) and a 210 s (free account)
# daily quota; then the same app with --compile (the UNet compiled ahead of time through spaces.aoti_compile in one
# GPU call at start-up) and every endpoint again; and each endpoint on a cold worker (the device API answers "not
# idle", so spaces forks a new one) beside a warm one. Not part of CI. Without a GPU it says so and exits 0.
#   bash scripts/zerogpu_check.sh                      # SD 1.5-size random weights, built here (about a minute)
#   bash scripts/zerogpu_check.sh --model FOLDER ...   # any app flags
set -uo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "zerogpu_check: no CUDA GPU on this machine (the real ZeroGPU runtime needs one); nothing checked."
  exit 0
fi
python3 -c "import spaces" 2>/dev/null || { echo "zerogpu_check: install spaces==0.51.3 first"; exit 1; }
export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False PYTHONUNBUFFERED=1
work=${ZEROGPU_CHECK_DIR:-$(mktemp -d)}
api_port=7999 app_port=7861
if [ $# -eq 0 ]; then
  python3 -c "from pathlib import Path; from benchmarks.processes import saved_sd15; saved_sd15(Path('$work/sd15'))"
  set -- --model "$work/sd15"
fi

start_device_api() {  # $1: daily quota in seconds
  python3 scripts/zerogpu/device_api.py --port $api_port --quota "$1" --log "$work/schedule-$1.jsonl" \
    >"$work/device-api.log" 2>&1 &
  api=$!
  sleep 1
}
start_app() {  # $1: the app's log; the rest: extra app flags. Waits for the page (compiling takes minutes).
  local log=$1; shift
  local started=$SECONDS
  SPACES_ZERO_GPU=true SPACES_ZERO_DEVICE_API_URL=http://127.0.0.1:$api_port \
    python3 app.py "${app_flags[@]}" "$@" --port $app_port --fast-decoder none --api-lists-page-events >"$log" 2>&1 &
  app=$!
  for _ in $(seq 1800); do
    curl -sf "http://127.0.0.1:$app_port/config" >/dev/null && break
    kill -0 $app 2>/dev/null || { echo "zerogpu_check: the app exited at start-up:"; tail -30 "$log"; exit 1; }
    sleep 1
  done
  echo "== the app $* started under the real ZeroGPU runtime in $((SECONDS - started)) s (log: $log)"
}
app_flags=("$@")
start_device_api 100000
start_app "$work/app.log"
trap 'kill $app $api 2>/dev/null' EXIT
echo "== every endpoint, Cancel, the hand-offs (no quota)"
python3 scripts/zerogpu/drive.py "http://127.0.0.1:$app_port/" "$work/schedule-100000.jsonl" || status=1
echo "== cold worker against warm, per endpoint (GPU seconds held; gpu_budget keeps cold_start_s spare for the cold one)"
python3 scripts/zerogpu/drive.py "http://127.0.0.1:$app_port/" "$work/schedule-100000.jsonl" \
  --cold-and-warm "http://127.0.0.1:$api_port" || status=1
for quota in 120 210; do
  kill $api; wait $api 2>/dev/null
  start_device_api $quota
  echo "== a ${quota} s daily quota"
  python3 scripts/zerogpu/drive.py "http://127.0.0.1:$app_port/" "$work/schedule-$quota.jsonl" --until-refused || status=1
done
kill $app $api; wait $app $api 2>/dev/null
mv "$work/schedule-100000.jsonl" "$work/schedule-eager.jsonl"
start_device_api 100000
start_app "$work/app-compile.log" --compile
grep -i "compiled the unet" "$work/app-compile.log"
echo "== --compile: every endpoint, Cancel, the hand-offs (no quota)"
python3 scripts/zerogpu/drive.py "http://127.0.0.1:$app_port/" "$work/schedule-100000.jsonl" || status=1
echo "logs: $work"
exit ${status:-0}
