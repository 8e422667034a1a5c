#!/usr/bin/env bash
# A/B of how XLA's CUDA context waits for the device, in one device call
# (see ../shared/docs/GPU.md): CUDA's default (auto: a thread waiting for the
# GPU spins on a core when the machine has more cores than contexts) against
# TF_CUDA_PLATFORM_GPU_DEVICE_SCHEDULE=blocking_sync (it sleeps). apply
# shares the CPU with x264's threads, so a spinning wait may cost the encoder.
# Processes alternate (the setting is read once, when the context is made),
# each running benchmarks/apply_batches.py with its per-thread CPU split.
#
#   device run, carry [".whl"]:   bash benchmarks/gpu_schedule_ab.sh
#   here, to check it:            SHORT=2 LONG=3 HEIGHTS=240 bash benchmarks/gpu_schedule_ab.sh
set -uo pipefail
OUT=${OUT:-/tmp/framecolor-schedule}
mkdir -p "$OUT"
source benchmarks/device_setup.sh
lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket)' | tee "$OUT/lscpu.txt"
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null
run() {  # label schedule apply_batches-arguments...
  local label=$1 schedule=$2
  shift 2
  echo "== $label"
  if [ "$schedule" = auto ]; then
    env -u TF_CUDA_PLATFORM_GPU_DEVICE_SCHEDULE timeout 150 python3 benchmarks/apply_batches.py "$@" --out "$OUT/$label.json"
  else
    TF_CUDA_PLATFORM_GPU_DEVICE_SCHEDULE=$schedule timeout 150 python3 benchmarks/apply_batches.py "$@" --out "$OUT/$label.json"
  fi 2>&1 | grep -v "cuda_timer.cc" | grep '^|'
}
for round in 1 2; do
  for schedule in auto blocking_sync; do
    run "$schedule-${SHORT:-16}s-$round" $schedule --heights ${HEIGHTS:-720 1080} --batch-sizes 8 --seconds "${SHORT:-16}" --rounds 2
  done
done
for schedule in auto blocking_sync; do
  run "$schedule-${LONG:-60}s" $schedule --heights $(echo ${HEIGHTS:-720} | cut -d" " -f1) --batch-sizes 8 --seconds "${LONG:-60}" --rounds 1
done
