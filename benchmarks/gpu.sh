#!/usr/bin/env bash
# The whole benchmark on a lent GPU machine in one call (see ../shared/docs/GPU.md).
#
# Here, once:   ../shared/tools/gpu-wheels.sh          (the PyAV wheel into .whl/, ignored by git)
# Then a device run with carry [".whl"] and the command:   bash benchmarks/gpu.sh
# JAX beside the PyTorch reference and apply beside the codec floor, measured in
# the same run; JSON and a markdown table land in $OUT (bench.json, bench.md),
# saved after every row, so a run cut by LIMIT_S keeps what it finished.
# Last, the README's sample colorized on the device (asl_milk_gpu.mp4), to
# compare its bf16 colors with a CPU run of the same command.
# PRESET=cpu runs the same script at CPU size, to check it before spending device time.
# On an H200 the GPU preset took 440 s (2026-11-26), before the colored codec floor was added
# (about a minute more) and before the codec section timed each encode twice beside a
# slice-threaded baseline (four encodes a row instead of one). LIMIT_S defaults to 520: with
# the sample (SAMPLE_S, 60) and the wheel install, that fits one 600 s device call; rows past
# the limit are lost, not the rest, and the codec section runs last, so it is what a cut loses.
# ONLY=apply measures just the apply rows. On an H200 at the luma-keeping default (sixth
# session), ONLY="apply codec" took 234 s and ONLY=apply 182 s, install and sample included.
set -uo pipefail
OUT=${OUT:-/tmp/framecolor-bench}
mkdir -p "$OUT"
source benchmarks/device_setup.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
nproc
timeout "${LIMIT_S:-520}" python3 benchmarks/run.py --preset "${PRESET:-gpu}" --out "$OUT/bench" ${ONLY:+--only $ONLY} 2>&1 \
  | grep -v "cuda_timer.cc" | tee "$OUT/log.txt"
status=${PIPESTATUS[0]}
[ "$status" = 124 ] && echo "benchmark stopped at its ${LIMIT_S:-520} s limit; the rows it finished are in $OUT/bench.json"
timeout "${SAMPLE_S:-60}" python3 -m framecolor apply examples/asl_milk_bw.mp4 "$OUT/asl_milk_gpu.mp4" --quiet --overwrite \
  2>&1 | grep -v "cuda_timer.cc" | tail -3
exit "$status"
