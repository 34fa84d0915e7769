#!/usr/bin/env bash
# predict's whole-process time for one image at 224 (weights loading and MD5 check included), with
# hyperfine, on a head trained over the sample with the parity fixture's weights, generated as a
# 94 MB Keras 2 HDF5 file (the same size and layout as the ImageNet file). Needs: a release build,
# hyperfine (apt-get install hyperfine), python3 with numpy and h5py.
# Usage: scripts/bench_predict.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 scripts/make_parity_fixture.py --weights "$work/weights.h5" > /dev/null
cp pipelines/data/sign-mnist-sample/*.csv "$work/"
cat > "$work/p.yaml" <<YAML
name: bench-predict
artifacts: out
stages:
  ingest: {train: train.csv, test: test.csv}
  preprocess: {size: 224}
  extract: {weights: $work/weights.h5}
  train: {epochs: 5}
YAML
.build/release/pipeline run "$work/p.yaml" > /dev/null 2>&1
.build/release/preprocess --input "$work/out/images.sqlite" --output "$work/x.sqlite" --size 32 --export "$work/exp" --originals --limit 1 > /dev/null 2>&1
hyperfine -w 1 -r 5 ".build/release/predict --pipeline $work/p.yaml $work/exp/train-1-D.png"
