#!/usr/bin/env bash
# Reproduces framecolor's shipped default model (framecolor/assets/default.fcm).
#
# Two stages, about 35 minutes of training together on a 2-core CPU (MODEL_CARD.md):
#  1. general color from the 1000-photo corpus (one photo per ImageNet class)
#     plus two clips: unet decoder, MSE on ab, 32 epochs from random weights;
#  2. the same data plus five of the ten ASL clips (one room, one light: the
#     "footage of the same kind" case), fine-tuned from stage 1 for 14 epochs
#     on 224-pixel crops (train's default size; stage 1 used 128 for speed).
# At the end of stage 2, train measures the chroma gain that gives the
# validation frames back their color energy (1.54 for the shipped model) and
# stores it in the model file as apply's default --saturation.
# Held out entirely, for `framecolor eval`: bikes.mp4 and the other five ASL
# clips (asl_help, asl_hungry, asl_learn, asl_milk, asl_night). No ImageNet
# weights exist on our machines, so the backbone starts from random weights
# and is trained by these runs alone.
#
#   bash examples/train_default.sh [RUN_DIR] [extra options for both stages]
# Extra options go to both stages, so they must be ones a fine-tuning run
# takes too (--batch-size, --seed, --feed, --cache-dir, --quiet): stage 2
# starts from stage 1's model, whose architecture options (--width,
# --decoder, --mode, --head) it cannot change.
# RUN_DIR/stage1 and RUN_DIR/stage2 are the two runs; RUN_DIR/stage2/model.fcm
# is the model. Interrupted? Run it again: a finished stage is skipped, an
# unfinished one continues where it stopped (--resume), at the learning rate
# it had reached.
set -euo pipefail
DATA=${DATA:-$(dirname "$0")/../../shared/data}
RUN=${1:-runs/default}
shift || true
GENERAL=("$DATA/imagenet-samples" "$DATA/clips/bigbuckbunny.mp4" "$DATA/clips/carphone_pristine.mp4")
SAME_ROOM=("$DATA"/clips/asl_{again,bird,book,brother,eat}.mkv)
COMMON=(--batch-size 16 --frames-per-video 132 --val-fraction 0.1 --seed 0)

stage() {  # stage OUT_DIR LR TRAIN_ARGS...: skip a finished run, resume an unfinished one
  local out=$1 lr=$2; shift 2
  # model.fcm alone does not say finished: Ctrl-C and SIGTERM write it too (the best epoch so far).
  [ -f "$out/finished" ] && return
  # --lr given with --resume replaces the rate a plateau had lowered: only on a stage's first start.
  local start=(--lr "$lr"); [ -f "$out/run.json" ] && start=(--resume)
  framecolor train "$@" --out "$out" "${start[@]}"
  touch "$out/finished"  # set -e: reached only when train exits 0
}

stage "$RUN/stage1" 1e-3 "${GENERAL[@]}" \
  --decoder unet --mode lab --head regress --loss mse --width 0.25 --size 128 \
  --epochs 32 --patience 12 --plateau-patience 4 "${COMMON[@]}" "$@"

stage "$RUN/stage2" 5e-4 "${GENERAL[@]}" "${SAME_ROOM[@]}" \
  --init "$RUN/stage1/model.fcm" --size 224 --epochs 14 --patience 6 --plateau-patience 3 "${COMMON[@]}" "$@"
