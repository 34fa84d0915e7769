#!/usr/bin/env bash
# What `preprocess --augment K` does to held-out accuracy, measured honestly on what this repository
# has: the embedded sample's 199 real rows split by source image (a quarter of each letter's images
# held out for test, by scripts/augment_sample.py with one light view each), features from a seeded
# random backbone (no ImageNet file here), K = 0, 4, 8 x three training seeds, run as one sweep.
# Prints the sweep's table and each K's mean test accuracy; the time and disk per K are in the table
# and in the variant folders.
# Needs: a release build, python3 with numpy and scipy. Usage: scripts/measure_augment.sh [OUT] [SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${1:-/tmp/signtransfer-augment}
size=${2:-32}
rm -rf "$out"
mkdir -p "$out"
python3 scripts/augment_sample.py "$out/data" 1 0
cat > "$out/augment.yaml" <<YAML
name: augment
artifacts: artifacts
stages:
  ingest: {train: data/train.csv, test: data/test.csv}
  preprocess: {size: $size}
  extract: {weights: "random:0"}
  train: {hidden: [256], epochs: 60, patience: 10}
YAML
"$root/.build/release/pipeline" sweep "$out/augment.yaml" --grid preprocess.augment=0,4,8 --grid train.seed=0,1,2 --jobs 2 > "$out/sweep.log" 2>&1 \
  || { cat "$out/sweep.log"; exit 1; }
sed -n '/^exp /,$p' "$out/sweep.log"
"$root/.build/release/pipeline" compare "$out/augment.yaml" --json | python3 -c '
import json, sys, collections
by = collections.defaultdict(list)
for e in json.load(sys.stdin): by[e["params"].get("preprocess.augment", "?")].append(e["accuracy"] * 100)
for k in sorted(by, key=int):
    seeds = ", ".join("%.1f" % a for a in by[k])
    print("augment %s: test accuracy %.1f%% (seeds: %s)" % (k, sum(by[k]) / len(by[k]), seeds))'
for folder in "$out"/artifacts/variants/*train.seed=0; do
  echo "$(basename "$folder"): preprocessed $(du -k "$folder/preprocessed.sqlite" | cut -f1) KB, features $(du -k "$folder/features.sqlite" | cut -f1) KB"
done
