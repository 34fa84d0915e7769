#!/usr/bin/env bash
# The same four stages under DVC (dvc.yaml calling our executables, params.yaml, DVC's run cache and
# `dvc exp run`) and under `pipeline`, side by side in one run, on the sample at 32x32 with a seeded
# random backbone: a first run, a run with nothing changed, a parameter changed, changed back (both
# tools restore from their run caches), and a 2x2 grid (size 32/40 x dropout 0.2/0.5; DVC one `dvc exp
# run` per cell, we `pipeline sweep`, one job then two). Wall times of whole commands.
# Needs: a release build, git, dvc (pip install dvc). Usage: scripts/compare_dvc.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=$root/.build/release
command -v dvc > /dev/null || { echo "compare_dvc.sh: needs dvc (pip install dvc)" >&2; exit 2; }
out=${1:-/tmp/signtransfer-dvc}
rm -rf "$out" && mkdir -p "$out/dvc" "$out/ours"
for folder in dvc ours; do cp pipelines/data/sign-mnist-sample/{train,test}.csv "$out/$folder/"; done
seconds() { local start end; start=$(date +%s.%N); "$@" > /dev/null 2>&1; end=$(date +%s.%N); python3 -c "print(f'{$end - $start:.2f}')"; }

cd "$out/dvc"
git init -q . && git config user.email bench@example.com && git config user.name bench
dvc init -q && dvc config core.analytics false
cat > params.yaml <<YAML
preprocess: {size: 32}
train: {dropout: 0.5}
YAML
cat > dvc.yaml <<YAML
stages:
  ingest:
    cmd: $bin/ingest --train train.csv --test test.csv --output out/images.sqlite
    deps: [train.csv, test.csv]
    outs: [out/images.sqlite]
  preprocess:
    cmd: mkdir -p pre && $bin/preprocess --input out/images.sqlite --output pre/preprocessed.sqlite --size \${preprocess.size}
    deps: [out/images.sqlite]
    params: [preprocess.size]
    outs: [pre]
  extract:
    cmd: mkdir -p features && $bin/extract --input pre/preprocessed.sqlite --output features/features.sqlite --weights random:1
    deps: [pre/preprocessed.sqlite]
    outs: [features]
  train:
    cmd: mkdir -p head && $bin/train --input features/features.sqlite --output head/head.sqlite --hidden 32 --epochs 3 --dropout \${train.dropout}
    deps: [features/features.sqlite]
    params: [train.dropout]
    outs: [head]
YAML
mkdir -p out
git add -A && git commit -qm start
dvc_first=$(seconds dvc repro)
git add -A && git commit -qm first
dvc_noop=$(seconds dvc repro)
dvc_change=$(seconds dvc exp run -S train.dropout=0.2)
dvc_back=$(seconds dvc exp run -S train.dropout=0.5)
start=$(date +%s.%N)
for size in 32 40; do for dropout in 0.2 0.5; do dvc exp run -S preprocess.size=$size -S train.dropout=$dropout > /dev/null 2>&1; done; done
dvc_grid=$(python3 -c "print(f'{$(date +%s.%N) - $start:.2f}')")

cd "$out/ours"
cat > p.yaml <<YAML
name: bench
artifacts: artifacts
stages:
  ingest: {train: train.csv, test: test.csv}
  preprocess: {size: 32}
  extract: {weights: "random:1"}
  train: {hidden: [32], epochs: 3, dropout: 0.5}
YAML
ours_first=$(seconds "$bin/pipeline" run p.yaml)
ours_noop=$(seconds "$bin/pipeline" run p.yaml)
ours_change=$(seconds "$bin/pipeline" run p.yaml --set train.dropout=0.2)
ours_back=$(seconds "$bin/pipeline" run p.yaml)
ours_grid1=$(seconds "$bin/pipeline" sweep p.yaml --grid preprocess.size=32,40 --grid train.dropout=0.2,0.5 --jobs 1)
rm -rf artifacts
"$bin/pipeline" run p.yaml > /dev/null 2>&1
ours_grid2=$(seconds "$bin/pipeline" sweep p.yaml --grid preprocess.size=32,40 --grid train.dropout=0.2,0.5 --jobs 2)

printf '%-44s %8s %8s\n' "step (wall seconds)" "dvc" "ours"
printf '%-44s %8s %8s\n' "first run, four stages" "$dvc_first" "$ours_first"
printf '%-44s %8s %8s\n' "again, nothing changed" "$dvc_noop" "$ours_noop"
printf '%-44s %8s %8s\n' "train.dropout 0.5 -> 0.2" "$dvc_change" "$ours_change"
printf '%-44s %8s %8s\n' "back to 0.5 (run cache)" "$dvc_back" "$ours_back"
printf '%-44s %8s %8s\n' "2x2 grid after that (ours: --jobs 1)" "$dvc_grid" "$ours_grid1"
printf '%-44s %8s %8s\n' "2x2 grid after a first run (ours: --jobs 2)" "" "$ours_grid2"
echo "dvc $(dvc --version)"
