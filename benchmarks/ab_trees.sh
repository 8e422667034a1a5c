#!/bin/bash
# Apply's rates at an earlier commit and at the working tree, alternated.
#
#   bash benchmarks/ab_trees.sh BASE ROUNDS OUTDIR [apply_throughput.py options]
#   bash benchmarks/ab_trees.sh 8b82d34 9 /tmp/ab --model framecolor/assets/default.fcm \
#       --height 360 --seconds 8 --repeats 2 --batch-size 4
#
# A change to apply's code cannot be switched on and off inside one process,
# and a lent VM's speed drifts from minute to minute by more than such a
# change moves apply. So each round runs benchmarks/apply_throughput.py once
# on each tree, each in a process of its own (BASE checked out in a
# temporary worktree, its own framecolor first on PYTHONPATH), the order
# swapped every round. OUTDIR gets base_N.json and head_N.json per round;
# relative paths among the options (--model) are read in each tree.
set -euo pipefail
base=$1 rounds=$2
outdir=$(mkdir -p "$3" && cd "$3" && pwd)  # absolute: each run starts in its own tree
shift 3
here=$(cd "$(dirname "$0")/.." && pwd)
worktree=$(mktemp -d)
trap 'git -C "$here" worktree remove --force "$worktree"' EXIT
git -C "$here" worktree add --quiet --detach "$worktree" "$base"
for round in $(seq 1 "$rounds"); do
  if (( round % 2 )); then order="base head"; else order="head base"; fi
  for side in $order; do
    tree=$here
    [[ $side == base ]] && tree=$worktree
    (cd "$tree" && PYTHONPATH=$tree python3 benchmarks/apply_throughput.py "$@" --out "$outdir/${side}_$round.json" >/dev/null)
    echo "round $round: $side done"
  done
done
