#!/usr/bin/env bash
# Reproduces framecolor's shipped default model (framecolor/assets/default.fcm).
#
# Data: the 1000-photo corpus (one photo per ImageNet class) plus two clips from
# ../shared/data. Held out entirely, for `framecolor eval`: bikes.mp4 and all
# ten ASL clips. No ImageNet weights exist on our machines, so the backbone
# starts from random weights and is trained by this run alone.
#
#   bash examples/train_default.sh [RUN_DIR] [extra framecolor train options]
# Interrupted? Run it again with --resume: it continues where it stopped.
# The comparisons in the model card change one thing, e.g.
#   bash examples/train_default.sh runs/mse --head regress          (plain MSE regression)
#   bash examples/train_default.sh runs/seed --head regress --decoder seed   (the notebook's decoder)
set -euo pipefail
DATA=${DATA:-$(dirname "$0")/../../shared/data}
RUN=${1:-runs/default}
shift || true
framecolor train \
  "$DATA/imagenet-samples" "$DATA/clips/bigbuckbunny.mp4" "$DATA/clips/carphone_pristine.mp4" \
  --out "$RUN" --decoder unet --mode lab --head bins --width 0.25 --size 128 \
  --batch-size 16 --lr 1e-3 --loss mse --epochs 60 --frames-per-video 132 \
  --val-fraction 0.1 --patience 12 --plateau-patience 4 --seed 0 "$@"
