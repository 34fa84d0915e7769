#!/usr/bin/env bash
# The exported ONNX model against predict, in ONNX Runtime (CI runs this after `make test`): on the
# embedded sample at 32x32 with a seeded random backbone, a head cut at conv4_block6_out and a head
# with conv5 fine-tuned are exported, and scripts/check_onnx.py compares ONNX Runtime's probabilities
# with predict's for every train and test row (same top-1, within 1e-4), and heads on MobileNetV2 and
# EfficientNetB0 (each cut at an inner block and its end) and a head at 48 (where the resize's weights are
# not exact in float) likewise; then a colour head on the
# folder sample (pipelines/data/asl-colour-4, 100 photos at 32x32), whose model takes the resized RGB
# pixels: every photo as preprocess resized it (its --export PNGs) to both.
# Needs a release build. Installs numpy, onnx and onnxruntime with pip; where pip cannot, says so and
# skips (exit 0): the Swift tests still check the graph's structure.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import numpy, onnx, onnxruntime, PIL" 2> /dev/null; then
  if ! python3 -m pip install --quiet numpy onnx onnxruntime pillow > /tmp/signtransfer-pip.log 2>&1 \
     || ! python3 -c "import numpy, onnx, onnxruntime, PIL" 2> /dev/null; then
    echo "test-onnx: SKIPPED: numpy, onnx, onnxruntime and pillow cannot be installed with pip here ($(tail -1 /tmp/signtransfer-pip.log))"
    exit 0
  fi
fi
bin=.build/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sample=pipelines/data/sign-mnist-sample
$bin/ingest --train $sample/train.csv --test $sample/test.csv --output "$work/images.sqlite" > /dev/null
$bin/preprocess --input "$work/images.sqlite" --output "$work/preprocessed.sqlite" --size 32 > /dev/null 2>&1
$bin/extract --input "$work/preprocessed.sqlite" --output "$work/features.sqlite" --weights random:3 \
  --layers conv4_block6_out,conv5_block3_out --keep conv4_block6_out > /dev/null 2>&1
$bin/train --input "$work/features.sqlite" --output "$work/cut.sqlite" --layers conv4_block6_out --epochs 5 > /dev/null
$bin/train --input "$work/features.sqlite" --output "$work/tuned.sqlite" --fine-tune conv5 --epochs 5 --fine-tune-epochs 2 --validation 0 > /dev/null
status=0
for head in cut tuned; do
  $bin/export --model "$work/$head.sqlite" --output "$work/$head.onnx"
  for split in train test; do
    python3 scripts/check_onnx.py "$work/$head.onnx" "$work/$head.sqlite" $sample/$split.csv $bin/predict || status=1
  done
done
# A size where the resize's weights are not exact in float (48): the graph repeats its operations.
$bin/preprocess --input "$work/images.sqlite" --output "$work/preprocessed-48.sqlite" --size 48 > /dev/null 2>&1
$bin/extract --input "$work/preprocessed-48.sqlite" --output "$work/features-48.sqlite" --weights random:3 --layers conv3_block4_out > /dev/null 2>&1
$bin/train --input "$work/features-48.sqlite" --output "$work/at48.sqlite" --layers conv3_block4_out --epochs 5 > /dev/null
$bin/export --model "$work/at48.sqlite" --output "$work/at48.onnx"
python3 scripts/check_onnx.py "$work/at48.onnx" "$work/at48.sqlite" $sample/train.csv $bin/predict || status=1
# The mobile backbones, each cut at an inner block and at its end.
for backbone in mobilenetv2:block_12_add,out_relu efficientnetb0:block5c_add,top_activation; do
  name=${backbone%%:*}; layers=${backbone#*:}
  $bin/extract --input "$work/preprocessed.sqlite" --output "$work/$name-features.sqlite" --backbone "$name" --weights random:3 --layers "$layers" > /dev/null 2>&1
  $bin/train --input "$work/$name-features.sqlite" --output "$work/$name.sqlite" --layers "$layers" --epochs 5 > /dev/null
  $bin/export --model "$work/$name.sqlite" --output "$work/$name.onnx"
  for split in train test; do
    python3 scripts/check_onnx.py "$work/$name.onnx" "$work/$name.sqlite" $sample/$split.csv $bin/predict || status=1
  done
done
photos=pipelines/data/asl-colour-4
$bin/ingest --folder $photos --output "$work/colour-images.sqlite" > /dev/null
$bin/preprocess --input "$work/colour-images.sqlite" --output "$work/colour-preprocessed.sqlite" --size 32 --export "$work/colour-pngs" > /dev/null 2>&1
$bin/extract --input "$work/colour-preprocessed.sqlite" --output "$work/colour-features.sqlite" --weights random:3 > /dev/null 2>&1
$bin/train --input "$work/colour-features.sqlite" --output "$work/colour.sqlite" --epochs 5 > /dev/null
$bin/export --model "$work/colour.sqlite" --output "$work/colour.onnx"
python3 scripts/check_onnx.py "$work/colour.onnx" "$work/colour.sqlite" "$work/colour-pngs" $bin/predict || status=1
echo "test-onnx: $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
