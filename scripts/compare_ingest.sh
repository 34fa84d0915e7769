#!/usr/bin/env bash
# Whole-process ingest time and peak memory against the notebook's reader and pandas.read_csv, on a
# full-size train CSV (27,455 rows), in one run on one machine.
# Needs: a release build (make build), python3 with numpy and pandas.
# Usage: scripts/compare_ingest.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-27455}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
shared=${SIGNTRANSFER_SHARED:-../shared}
[ -f "$shared/bench/seed_ingest.py" ] || {
  echo "compare_ingest.sh: needs the peers' measuring script $shared/bench/seed_ingest.py (the project's shared folder beside the repository, or SIGNTRANSFER_SHARED)" >&2
  exit 2
}
python3 scripts/tile_csv.py pipelines/data/sign-mnist-sample/train.csv "$work/train.csv" "$rows"
echo "input: $(du -h "$work/train.csv" | cut -f1), $rows rows"

best=999
for _ in 1 2 3; do
  /usr/bin/time -f "%e %M" -o "$work/time" .build/release/ingest --train "$work/train.csv" --output "$work/images.sqlite" > /dev/null
  read -r seconds kb < "$work/time"
  best=$(python3 -c "print(min($best, $seconds))")
  peak=$((kb / 1024))
done
echo "signtransfer ingest (whole process, best of 3): $best s, peak $peak MB"
python3 "$shared/bench/seed_ingest.py" "$work/train.csv" | tee "$work/peers"
pandas=$(grep "pandas read_csv" "$work/peers" | sed -E 's/.*: ([0-9.]+) s.*/\1/')
seed=$(grep "seed get_data" "$work/peers" | sed -E 's/.*: ([0-9.]+) s.*/\1/')
python3 -c "print(f'ratio: pandas.read_csv / ingest = {$pandas/$best:.2f}x, notebook reader / ingest = {$seed/$best:.1f}x')"
