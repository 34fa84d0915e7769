#!/usr/bin/env bash
# Backbone throughput against ONNX Runtime and Keras on the same machine, in one run: our `extract`
# (whole process, weights loading included) over N images, and ../shared/bench/keras_throughput.py
# (Keras ResNet50, then ONNX Runtime on the same graph via tf2onnx) over the same number of images.
# Needs: a release build (make build), python3 with tensorflow-cpu, onnxruntime, tf2onnx, numpy.
# Usage: scripts/compare_backbone.sh [SIZE BATCH N]   (defaults: 224 32 256)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-224}; batch=${2:-32}; n=${3:-256}
shared=${SIGNTRANSFER_SHARED:-../shared}
[ -f "$shared/bench/keras_throughput.py" ] || {
  echo "compare_backbone.sh: needs the peers' measuring script $shared/bench/keras_throughput.py (the project's shared folder beside the repository, or SIGNTRANSFER_SHARED)" >&2
  exit 2
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# N images tiled from the sample's real rows, through our own ingest and preprocess.
python3 scripts/tile_csv.py pipelines/data/sign-mnist-sample/train.csv "$work/train.csv" "$n"
.build/release/ingest --train "$work/train.csv" --output "$work/images.sqlite" > /dev/null
.build/release/preprocess --input "$work/images.sqlite" --output "$work/preprocessed.sqlite" --size "$size" > /dev/null 2>&1
# A real-sized Keras weights file (the parity fixture's, generated) unless SIGNTRANSFER_WEIGHTS names one.
weights=${SIGNTRANSFER_WEIGHTS:-$work/weights.h5}
[ -f "$weights" ] || python3 scripts/make_parity_fixture.py --weights "$weights" > /dev/null
# Three runs, the median reported: on this 2-core VM one run can be 20% off (a first run right after
# preprocess was the slow one more than once). Each run starts from no output, so nothing is resumed.
sync
rates=()
for run in 1 2 3; do
  rm -f "$work/features.sqlite"
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$work/memory" .build/release/extract --input "$work/preprocessed.sqlite" --output "$work/features.sqlite" \
    --weights "$weights" --batch "$batch" > /dev/null 2>&1
  end=$(date +%s.%N)
  rates+=("$(python3 -c "print(f'{$n / ($end - $start):.2f}')")")
done
ours=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n 2p)
echo "signtransfer extract size=$size batch=$batch: $ours img/s (median of ${rates[*]}; whole process with weights loading, $n images, peak $(( $(cat "$work/memory") / 1024 )) MB)"
python3 "$shared/bench/keras_throughput.py" "$size" "$batch" "$n" 2>/dev/null | grep -E "img/s|skipped" | tee "$work/peers"
keras=$(grep "^keras" "$work/peers" | sed -E 's/.*: ([0-9.]+) img\/s/\1/')
onnx=$(grep "^onnxruntime" "$work/peers" | sed -E 's/.*: ([0-9.]+) img\/s/\1/' || true)
python3 -c "
ours, keras, onnx = $ours, $keras, '${onnx}'
print(f'ratio: ours / keras = {ours / keras:.2f}' + (f', ours / onnxruntime = {ours / float(onnx):.2f}' if onnx else ''))"
