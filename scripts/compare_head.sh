#!/usr/bin/env bash
# Our head against the notebook's Keras head on the same features, in one run on one machine:
# 30 epochs (early stopping off, so both run all of them) on 27,455 train and 7,172 test vectors,
# both recipes: ours (standardized inputs, cosine learning-rate decay: `train`'s defaults, and Keras
# given the same) and the notebook's (raw inputs, constant rate).
# Without a features file it makes Gaussian class clusters (scripts/make_cluster_features.py).
# Needs: a release build (make build), python3 with numpy and tensorflow-cpu (keras).
# Usage: scripts/compare_head.sh [FEATURES.sqlite]
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
features=${1:-}
if [ -z "$features" ]; then
  features="$work/features.sqlite"
  python3 scripts/make_cluster_features.py "$features" 27455 7172 10 0
fi
for recipe in "zscore cosine" "none constant"; do
  set -- $recipe
  start=$(date +%s.%N)
  .build/release/train --input "$features" --output "$work/head.sqlite" --epochs 30 --patience 0 --standardize "$1" --schedule "$2" > "$work/ours.log"
  end=$(date +%s.%N)
  ours=$(python3 -c "print(f'{$end - $start:.2f}')")
  epochs=$(grep -E "^epoch" "$work/ours.log" | awk '{s += $(NF-1)} END {printf "%.2f", s}')
  accuracy=$(grep -E "^test:" "$work/ours.log" | sed -E 's/test: accuracy ([0-9.]+).*/\1/')
  echo "signtransfer train ($1, $2): 30 epochs in $epochs s (whole process $ours s), test accuracy $accuracy"
  python3 scripts/keras_head.py "$features" 30 0 256 0.5 64 0.1 0 "$1" "$2" 2>/dev/null | tee "$work/keras.log"
  keras=$(sed -E 's/.* in ([0-9.]+) s.*/\1/' "$work/keras.log")
  keras_accuracy=$(sed -E 's/.*test accuracy ([0-9.]+).*/\1/' "$work/keras.log")
  python3 -c "print(f'$1, $2: ours (whole process) / keras (fit alone) = {$ours/$keras:.2f}, epochs alone {$epochs/$keras:.2f}; accuracy difference {100*($accuracy-$keras_accuracy):+.2f} points')"
done
