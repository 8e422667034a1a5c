#!/usr/bin/env bash
# Issue 5 on a lent GPU machine in one device call: apply beside the codec floors at
# 720p and 1080p (apply_batches.py), the check on a real clip (apply_check.py),
# then the train step beside the PyTorch reference (run.py's GPU train rows).
#
# Here, once:  ../shared/tools/gpu-wheels.sh                      (the PyAV wheel into .whl/)
#              mkdir -p .gpu && cp ../shared/data/clips/bigbuckbunny.mp4 .gpu/
#              (add /.gpu/ to .git/info/exclude: ../shared does not travel, an ignored folder does)
# Then a device run with carry [".whl", ".gpu"] and timeout_s 595:   bash benchmarks/gpu_apply.sh
# On an H200 (2026-11-28) it took 413 s: apply 186 s, the check 21 s, the train rows 200 s.
# The train rows get what is left of TOTAL_S (575); each finished row is saved in $OUT.
# CPU_CHECK=1 runs it at toy size here first (about 2 minutes on 2 cores).
set -uo pipefail
OUT=${OUT:-/tmp/framecolor-gpu-apply}; mkdir -p "$OUT"
START=$SECONDS
source benchmarks/device_setup.sh
if [ -n "${CPU_CHECK:-}" ]; then HEIGHTS=144; CLIP_S=1; ROUNDS=1; PRESET=cpu; fi
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc
  python3 -c "import jax, flax, av; print(jax.__version__, flax.__version__, av.__version__, jax.devices())"; } \
  2>&1 | grep -v cuda_timer | tee "$OUT/env.txt"
echo "== apply beside the codec floors"
timeout "${AB_S:-200}" python3 benchmarks/apply_batches.py --heights ${HEIGHTS:-720 1080} --batch-sizes 8 \
  --seconds "${CLIP_S:-30}" --rounds "${ROUNDS:-4}" --out "$OUT/apply.json" > "$OUT/apply.log" 2>&1
echo "apply_batches rc $? at $((SECONDS - START)) s"; grep "^|" "$OUT/apply.log"
echo "== issue 5's check"
timeout "${CHECK_S:-60}" python3 benchmarks/apply_check.py "${CLIP:-.gpu/bigbuckbunny.mp4}" 2>&1 \
  | grep -v cuda_timer | tee "$OUT/check.log"
echo "== train step beside PyTorch"
timeout "$(( ${TOTAL_S:-575} - (SECONDS - START) ))" python3 benchmarks/run.py --preset "${PRESET:-gpu}" \
  --only train --out "$OUT/train" > "$OUT/train.log" 2>&1
echo "train rc $? at $((SECONDS - START)) s"; grep "^|" "$OUT/train.md" 2>/dev/null | head -4
