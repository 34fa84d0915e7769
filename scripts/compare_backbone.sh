#!/usr/bin/env bash
# Backbone throughput against ONNX Runtime and Keras on the same machine, in one run: our `extract`
# (whole process, weights loading included) over N images, and scripts/backbone_throughput.py (the
# Keras model, then ONNX Runtime on the same graph via tf2onnx) over the same number of images.
# Needs: a release build (make build), python3 with tensorflow-cpu, onnxruntime, tf2onnx, numpy, h5py.
# Usage: scripts/compare_backbone.sh [--backbone resnet50|mobilenetv2|efficientnetb0] [--precision fp32|bf16|both] [SIZE BATCH N]
#        (defaults: resnet50, fp32, 224 32 256)
# With both, our float and bf16 runs alternate (f, b, f, b, f, b), and their ratio is printed too.
set -euo pipefail
cd "$(dirname "$0")/.."
precision=fp32
backbone=resnet50
while [ "${1:-}" = "--precision" ] || [ "${1:-}" = "--backbone" ]; do
  case $1 in --precision) precision=$2;; --backbone) backbone=$2;; esac
  shift 2
done
case $precision in fp32|bf16|both) ;; *) echo "compare_backbone.sh: --precision fp32, bf16 or both, not $precision" >&2; exit 2;; esac
case $backbone in resnet50|mobilenetv2|efficientnetb0) ;; *) echo "compare_backbone.sh: --backbone resnet50, mobilenetv2 or efficientnetb0, not $backbone" >&2; exit 2;; esac
size=${1:-224}; batch=${2:-32}; n=${3:-256}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# N images tiled from the sample's real rows, through our own ingest and preprocess.
python3 scripts/tile_csv.py pipelines/data/sign-mnist-sample/train.csv "$work/train.csv" "$n"
.build/release/ingest --train "$work/train.csv" --output "$work/images.sqlite" > /dev/null
.build/release/preprocess --input "$work/images.sqlite" --output "$work/preprocessed.sqlite" --size "$size" > /dev/null 2>&1
# A real-sized Keras weights file (the parity fixture's, generated) unless SIGNTRANSFER_WEIGHTS names one.
weights=${SIGNTRANSFER_WEIGHTS:-$work/weights.h5}
if [ ! -f "$weights" ]; then
  if [ "$backbone" = resnet50 ]; then
    python3 scripts/make_parity_fixture.py --weights "$weights" > /dev/null
  else
    python3 scripts/make_mobile_parity_fixture.py --weights "$backbone" "$weights" > /dev/null
  fi
fi
# Three runs, the median reported: on this 2-core VM one run can be 20% off (a first run right after
# preprocess was the slow one more than once). Each run starts from no output, so nothing is resumed.
sync
[ "$precision" = both ] && precisions="fp32 bf16" || precisions=$precision
declare -A rates
for run in 1 2 3; do
  for p in $precisions; do
    rm -f "$work/features.sqlite"
    start=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$work/memory" .build/release/extract --input "$work/preprocessed.sqlite" --output "$work/features.sqlite" \
      --backbone "$backbone" --weights "$weights" --batch "$batch" --precision "$p" > /dev/null 2>&1
    end=$(date +%s.%N)
    rates[$p]="${rates[$p]:-} $(python3 -c "print(f'{$n / ($end - $start):.2f}')")"
  done
done
for p in $precisions; do
  median=$(printf '%s\n' ${rates[$p]} | sort -n | sed -n 2p)
  declare "ours_$p=$median"
  echo "signtransfer extract $backbone size=$size batch=$batch precision=$p: $median img/s (median of${rates[$p]}; whole process with weights loading, $n images)"
done
ours=${ours_fp32:-${ours_bf16:-}}
python3 scripts/backbone_throughput.py "$backbone" "$size" "$batch" "$n" 2>/dev/null | grep -E "img/s|skipped" | tee "$work/peers"
keras=$(grep "^keras" "$work/peers" | sed -E 's/.*: ([0-9.]+) img\/s.*/\1/')
onnx=$(grep "^onnxruntime" "$work/peers" | sed -E 's/.*: ([0-9.]+) img\/s.*/\1/' || true)
python3 -c "
keras, onnx, fp32, bf16 = $keras, '${onnx}', '${ours_fp32:-}', '${ours_bf16:-}'
for name, ours in (('fp32', fp32), ('bf16', bf16)):
    if ours:
        print(f'ratio: ours {name} / keras = {float(ours) / keras:.2f}' + (f', ours {name} / onnxruntime fp32 = {float(ours) / float(onnx):.2f}' if onnx else ''))
if fp32 and bf16:
    print(f'ratio: ours bf16 / ours fp32 = {float(bf16) / float(fp32):.2f}')"
