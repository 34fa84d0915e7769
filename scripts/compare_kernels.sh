#!/usr/bin/env bash
# Our GEMM kernels against OpenBLAS on the same CPU, in one run: `extract` (whole process, weights
# loading included) over N images with each float path this CPU runs, alternating, three runs each,
# the median reported:
#   avx2             our AVX2 + FMA kernel (SIGNTRANSFER_GEMM=avx2)
#   blas-haswell     OpenBLAS with its Haswell kernels (SIGNTRANSFER_GEMM=blas OPENBLAS_CORETYPE=Haswell),
#                    what OpenBLAS runs on an AVX2 CPU without AVX-512
#   avx512           our AVX-512 kernel, where the CPU has it
#   blas             OpenBLAS with the kernel it picks for this CPU by itself
# Each path's CPU time (user + system, all threads) is reported beside its rate: on a shared VM the
# hypervisor can take 10-40% of a core away under load (vmstat's "st"), which moves wall-clock rates
# from run to run but not the CPU time a path needs for the same work.
# With --peers, ONNX Runtime and Keras on the same graph too (../shared/bench/keras_throughput.py).
# Needs: a release build (make build), python3 with numpy and h5py (the weights file is generated).
# Usage: scripts/compare_kernels.sh [--peers] [SIZE BATCH N]   (defaults: 224 32 128)
set -euo pipefail
cd "$(dirname "$0")/.."
peers=0
if [ "${1:-}" = "--peers" ]; then peers=1; shift; fi
size=${1:-224}; batch=${2:-32}; n=${3:-128}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 scripts/tile_csv.py pipelines/data/sign-mnist-sample/train.csv "$work/train.csv" "$n"
.build/release/ingest --train "$work/train.csv" --output "$work/images.sqlite" > /dev/null
.build/release/preprocess --input "$work/images.sqlite" --output "$work/preprocessed.sqlite" --size "$size" > /dev/null 2>&1
weights=${SIGNTRANSFER_WEIGHTS:-$work/weights.h5}
[ -f "$weights" ] || python3 scripts/make_parity_fixture.py --weights "$weights" > /dev/null
paths="avx2 blas-haswell"
grep -q ' avx512f' /proc/cpuinfo && paths="$paths avx512 blas"
declare -A rates cpus
TIMEFORMAT='%R %U %S'
sync
for run in 1 2 3; do
  for path in $paths; do
    case $path in
      avx2) environment=(SIGNTRANSFER_GEMM=avx2) ;;
      blas-haswell) environment=(SIGNTRANSFER_GEMM=blas OPENBLAS_CORETYPE=Haswell) ;;
      avx512) environment=(SIGNTRANSFER_GEMM=avx512) ;;
      blas) environment=(SIGNTRANSFER_GEMM=blas) ;;
    esac
    rm -f "$work/features.sqlite"
    { time env "${environment[@]}" .build/release/extract --input "$work/preprocessed.sqlite" --output "$work/features.sqlite" \
      --weights "$weights" --batch "$batch" > /dev/null 2>&1; } 2> "$work/times"
    rates[$path]="${rates[$path]:-} $(awk -v n="$n" '{printf "%.2f", n / $1}' "$work/times")"
    cpus[$path]="${cpus[$path]:-} $(awk '{printf "%.2f", $2 + $3}' "$work/times")"
    gemm=$(sqlite3 "$work/features.sqlite" "SELECT value FROM backbone WHERE key = 'gemm'" 2>/dev/null || echo "?")
    [ "$gemm" = "${path%-haswell}" ] || { echo "compare_kernels.sh: $path ran as gemm '$gemm'" >&2; exit 1; }
  done
done
for path in $paths; do
  median=$(printf '%s\n' ${rates[$path]} | sort -n | sed -n 2p)
  cpu=$(printf '%s\n' ${cpus[$path]} | sort -n | sed -n 2p)
  declare "median_${path//-/_}=$median" "cpu_${path//-/_}=$cpu"
  echo "extract size=$size batch=$batch $path: $median img/s (median of${rates[$path]}; whole process, $n images); CPU $cpu s (median of${cpus[$path]})"
done
python3 -c "print(f'ratio: avx2 / OpenBLAS Haswell = {$median_avx2 / $median_blas_haswell:.2f} by rate, {$cpu_blas_haswell / $cpu_avx2:.2f} by CPU time')"
if [ -n "${median_avx512:-}" ]; then
  python3 -c "print(f'ratio: avx512 / OpenBLAS (its own pick) = {$median_avx512 / $median_blas:.2f}, avx2 / avx512 = {$median_avx2 / $median_avx512:.2f}')"
fi
if [ "$peers" = 1 ]; then
  shared=${SIGNTRANSFER_SHARED:-../shared}
  python3 "$shared/bench/keras_throughput.py" "$size" "$batch" "$n" 2>/dev/null | grep -E "img/s|skipped"
fi
