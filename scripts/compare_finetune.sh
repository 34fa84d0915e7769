#!/usr/bin/env bash
# Fine-tuning conv5 with the head, ours against Keras, on the same data, in one run on one machine.
# Both train conv5's three blocks (BatchNorm frozen) and the notebook's head (Dense(256, relu),
# Dropout(0.5), softmax) with Adam at one learning rate, batch 64, a fixed number of epochs, on
# conv4_block6_out computed once (Keras: ../shared/bench/keras_finetune.py caches it in memory; ours:
# extract --keep stores it, float16, and train streams it from disk). Reported: seconds per epoch of
# training (ours from train's fine-tuning epoch lines, no validation; Keras from model.fit), and test
# accuracy. The recipes differ: ours trains the head alone first (Keras's guide), the Keras script
# trains both from a random head; the epochs timed are alike.
# Data: the embedded sample's real rows augmented (scripts/augment_sample.py), so that the numbers
# are shaped like the real thing. Weights: the parity fixture's generated ones at full size (no
# network here for the ImageNet file); pass a Keras .h5 to use another.
# Needs: a release build, python3 with numpy, scipy, h5py, pandas and tensorflow-cpu, and
# ../shared/bench/keras_finetune.py.
# Usage: [PRECISION=bf16] scripts/compare_finetune.sh [SIZE] [EPOCHS] [VIEWS] [WEIGHTS.h5]   (PRECISION: our --fine-tune-precision)
set -euo pipefail
cd "$(dirname "$0")/.."
peer=../shared/bench/keras_finetune.py
if [ ! -f "$peer" ]; then
  echo "compare_finetune: needs $peer (the Keras peer), which is not here" >&2
  exit 2
fi
size=${1:-32}
epochs=${2:-3}
views=${3:-40}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
weights=${4:-}
if [ -z "$weights" ]; then
  weights="$work/weights.h5"
  python3 scripts/make_parity_fixture.py --weights "$weights" > /dev/null
fi
python3 scripts/augment_sample.py "$work/data" "$views" 0 > /dev/null
lr=${LR:-0.0001}
bin=.build/release
$bin/ingest --train "$work/data/train.csv" --test "$work/data/test.csv" --output "$work/images.sqlite" > /dev/null
$bin/preprocess --input "$work/images.sqlite" --output "$work/preprocessed.sqlite" --size "$size" > /dev/null 2>&1
$bin/extract --input "$work/preprocessed.sqlite" --output "$work/features.sqlite" --weights "$weights" --keep conv4_block6_out > /dev/null 2>&1
train_rows=$(($(wc -l < "$work/data/train.csv") - 1))
# Ours: the head alone first (30 epochs, seconds), then EPOCHS of conv5 with it, which are timed.
$bin/train --input "$work/features.sqlite" --output "$work/head.sqlite" --fine-tune conv5 --fine-tune-epochs "$epochs" --validation 0 --patience 0 \
  --hidden 256 --dropout 0.5 --batch 64 --fine-tune-learning-rate $lr --schedule constant --fine-tune-precision "${PRECISION:-fp32}" > "$work/ours.log"
ours=$(sed -n '/^fine-tuning conv5/,$p' "$work/ours.log" | grep -E "^epoch" | awk '{s += $(NF-1); n++} END {printf "%.2f", s / n}')
accuracy=$(grep -E "^test:" "$work/ours.log" | sed -E 's/test: accuracy ([0-9.]+).*/\1/')
echo "signtransfer train --fine-tune conv5 --fine-tune-precision ${PRECISION:-fp32} at ${size}x${size}, $train_rows train images: $ours s an epoch, test accuracy $accuracy"
python3 "$peer" "$work/data/train.csv" "$work/data/test.csv" "$size" "$weights" conv4_block6_out "$epochs" $lr 0 2>/dev/null | tail -1 | tee "$work/keras.log"
keras_seconds=$(sed -E 's/.*train_s=([0-9.]+).*/\1/' "$work/keras.log")
keras_accuracy=$(sed -E 's/.*test_acc=([0-9.]+).*/\1/' "$work/keras.log")
python3 -c "k = $keras_seconds / $epochs; print(f'keras: {k:.2f} s an epoch; ours / keras = {$ours / k:.2f}; accuracy ours {$accuracy:.4f}, keras {$keras_accuracy:.4f}')"
