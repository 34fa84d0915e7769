#!/usr/bin/env bash
# Folder ingest and preprocess against Keras's image_dataset_from_directory on the same JPEGs, side
# by side in one run: COPIES copies of the committed 100-photo sample (default 25: 2,500 files, 200x200
# colour JPEGs) in a temporary folder; ours: `ingest --folder` (every file read and decoded to check
# it) then `preprocess --size SIZE` (decode, TF's bilinear resize, PNG); Keras: iterating
# image_dataset_from_directory(image_size=(SIZE, SIZE), batch_size=32) once (decode and resize, no
# storing). Wall-clock seconds, RUNS runs each. Needs TensorFlow (pip install tensorflow-cpu).
#   scripts/compare_folder.sh [COPIES] [SIZE] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
copies=${1:-25} size=${2:-224} runs=${3:-3}
swift build -c release --product ingest >/dev/null && swift build -c release --product preprocess >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for split in train test; do
  for class in pipelines/data/asl-colour-4/$split/*/; do
    name=$(basename "$class")
    mkdir -p "$work/photos/$name"
    for copy in $(seq 1 "$copies"); do
      for file in "$class"*; do cp "$file" "$work/photos/$name/$copy-$split-$(basename "$file")"; done
    done
  done
done
count=$(find "$work/photos" -type f | wc -l)
echo "compare_folder: $count JPEGs (200x200 colour) at ${size}x${size}, $(nproc) cores, $runs runs"
for run in $(seq 1 "$runs"); do
  # Each run starts from no outputs, as a first run on a dataset does: replacing the last run's
  # 133 MB file costs its rename 0.13 s here (the file system freeing the old file, not our work).
  rm -f "$work/images.sqlite" "$work/preprocessed.sqlite"
  start=$(date +%s.%N)
  .build/release/ingest --folder "$work/photos" --output "$work/images.sqlite" >/dev/null
  middle=$(date +%s.%N)
  .build/release/preprocess --input "$work/images.sqlite" --output "$work/preprocessed.sqlite" --size "$size" >/dev/null 2>&1
  end=$(date +%s.%N)
  keras=$(python3 - "$work/photos" "$size" <<'PY' 2>/dev/null
import os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
folder, size = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
dataset = tf.keras.utils.image_dataset_from_directory(folder, image_size=(size, size), batch_size=32, shuffle=False, verbose=False)
for images, labels in dataset:
    pass
print(f"{time.perf_counter() - start:.2f}")
PY
)
  ours=$(echo "$end - $start" | bc) ingest=$(echo "$middle - $start" | bc) preprocess=$(echo "$end - $middle" | bc)
  # The issue's bar is per stage: ingest, and preprocess, each at least as fast as Keras's iteration.
  printf 'run %d: ours %.2f s (ingest %.2f, preprocess %.2f), Keras %s s; Keras/ingest %.2f, Keras/preprocess %.2f\n' "$run" "$ours" \
    "$ingest" "$preprocess" "$keras" "$(echo "$keras / $ingest" | bc -l)" "$(echo "$keras / $preprocess" | bc -l)"
done
