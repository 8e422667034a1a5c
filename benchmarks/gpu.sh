#!/usr/bin/env bash
# The whole benchmark on a lent GPU machine in one call (see ../shared/docs/GPU.md).
#
# Here, once:   ../shared/tools/gpu-wheels.sh          (the PyAV wheel into .whl/, ignored by git)
# Then a device run with carry [".whl"] and the command:   bash benchmarks/gpu.sh
# JAX beside the PyTorch reference and apply beside the codec floor, measured in
# the same run; JSON and a markdown table land in $OUT (bench.json, bench.md).
# PRESET=cpu runs the same script at CPU size, to check it before spending device time.
set -uo pipefail
OUT=${OUT:-/tmp/framecolor-bench}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=${PYTHONPATH:-}:$PWD
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
timeout "${LIMIT_S:-480}" python3 benchmarks/run.py --preset "${PRESET:-gpu}" --out "$OUT/bench" ${ONLY:+--only $ONLY} 2>&1 \
  | grep -v "cuda_timer.cc" | tee "$OUT/log.txt"
status=${PIPESTATUS[0]}
[ "$status" = 124 ] && echo "benchmark stopped at its ${LIMIT_S:-480} s limit; partial log in $OUT/log.txt"
exit "$status"
