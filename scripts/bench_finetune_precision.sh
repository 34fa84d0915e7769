#!/usr/bin/env bash
# Does `train --fine-tune-precision bf16` learn what fp32 does? Fine-tunes conv5 with the head on the
# same kept maps in both precisions, training seeds 0, 1, 2, and prints the test accuracies and the
# seconds per fine-tuning epoch. Data: the sample's real rows, 40 views each, held out by source
# image (scripts/augment_sample.py); weights: real-sized generated ones (no ImageNet file here).
# A benchmark, not a test. Needs: a release build, python3 with numpy, scipy, h5py.
# Usage: scripts/bench_finetune_precision.sh [SIZE] [EPOCHS] [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(pwd)/.build/release
size=${1:-64}; epochs=${2:-3}; out=${3:-/tmp/signtransfer-finetune-precision}
rm -rf "$out" && mkdir -p "$out"
python3 scripts/augment_sample.py "$out/data" 40 0 > /dev/null
python3 scripts/make_parity_fixture.py --weights "$out/weights.h5" > /dev/null
"$bin/ingest" --train "$out/data/train.csv" --test "$out/data/test.csv" --output "$out/images.sqlite" > /dev/null
"$bin/preprocess" --input "$out/images.sqlite" --output "$out/preprocessed.sqlite" --size "$size" > /dev/null 2>&1
"$bin/extract" --input "$out/preprocessed.sqlite" --output "$out/features.sqlite" --weights "$out/weights.h5" --keep conv4_block6_out > /dev/null 2>&1
for seed in 0 1 2; do
  line="seed $seed:"
  for precision in fp32 bf16; do
    "$bin/train" --input "$out/features.sqlite" --output "$out/head-$precision.sqlite" --fine-tune conv5 --fine-tune-epochs "$epochs" \
      --validation 0 --patience 0 --hidden 256 --dropout 0.5 --batch 64 --fine-tune-learning-rate 0.0001 --schedule constant \
      --seed $seed --fine-tune-precision $precision > "$out/log" 2>&1
    seconds=$(sed -n '/^fine-tuning conv5/,$p' "$out/log" | grep -E "^epoch" | awk '{s += $(NF-1); n++} END {printf "%.2f", s / n}')
    accuracy=$(sed -n 's/^test: accuracy \([0-9.]*\).*/\1/p' "$out/log")
    line="$line  $precision $(python3 -c "print(f'{$accuracy * 100:.2f}')")% ($seconds s/epoch)"
  done
  echo "$line"
done
