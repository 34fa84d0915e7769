#!/usr/bin/env bash
# What can be shown on this x86-64 machine of a CPU without our x86 kernels:
#  1. every C target compiles for aarch64 (Debian's aarch64 C headers, installed if missing; the
#     object files are checked to be aarch64 code, and the portable product to use NEON's fmla);
#  2. the package builds with the x86 kernels left out (-DSIGNTRANSFER_NO_X86_KERNELS, into
#     .build-portable), and the numeric tests run on what is left: OpenBLAS for the convolutions, the
#     portable fixed-order product for the head and fine-tuning.
# What it cannot show: a run on an ARM CPU, or a build against Apple's SDK (the Swift code's
# Linux-only imports are guarded, but no macOS build was made here).
# Usage: scripts/check_portable.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
missing=()
for package in libc6-dev-arm64-cross binutils-aarch64-linux-gnu; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (to compile the C targets for aarch64)"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
builtins=$(clang -print-resource-dir)/include
# png_fast.c includes zlib.h: zlib's two headers are the same on every architecture, so the host's
# are given on their own (not the rest of /usr/include, which is x86-64's).
mkdir -p "$work/zlib" && cp /usr/include/zlib.h /usr/include/zconf.h "$work/zlib/"
for file in Sources/CKernels/*.c Sources/CToolSupport/*.c Sources/CPNGWriter/png_fast.c; do
  clang --target=aarch64-linux-gnu -nostdinc -isystem "$builtins" -isystem /usr/aarch64-linux-gnu/include -isystem "$work/zlib" -O2 -Werror=implicit-function-declaration \
    -ISources/CKernels/include -ISources/CKernels -ISources/CToolSupport/include -ISources/CPNGWriter/include -c "$file" -o "$work/$(basename "$file").o" 2> "$work/log" \
    || { cat "$work/log" >&2; echo "check_portable: $file does not compile for aarch64" >&2; exit 1; }
  file "$work/$(basename "$file").o" | grep -q "ARM aarch64" || { echo "check_portable: $file: not aarch64 code" >&2; exit 1; }
done
aarch64-linux-gnu-objdump -d "$work/gemm_general.c.o" | grep -q fmla \
  || { echo "check_portable: the portable product is not vectorised on aarch64 (no fmla)" >&2; exit 1; }
echo "check_portable: every C target compiles for aarch64 ($(ls "$work"/*.o | wc -l) files; the portable product uses fmla)"
$SWIFT build -c release --scratch-path .build-portable -Xcc -DSIGNTRANSFER_NO_X86_KERNELS --build-tests
# The numeric suites (parity, batch, reference convolution, products, head, fine-tuning) with our
# x86 kernels out of the binary: every GEMMKernel test then sees OpenBLAS alone.
$SWIFT test -c release --scratch-path .build-portable -Xcc -DSIGNTRANSFER_NO_X86_KERNELS --skip-build --disable-testable-imports \
  --filter "KerasParity|BatchIndependence|ReferenceConvolution|FixedOrder|TrainingLoop|TopStageTraining|Gradients" 2>&1 | tee "$work/tests" | grep -E "✘|Test run" || true
grep -q "Test run with .* passed" "$work/tests" || { echo "check_portable: the tests failed without the x86 kernels" >&2; exit 1; }
# And the executables say so: extract on the sample runs on OpenBLAS.
bin=.build-portable/release
$bin/ingest --train pipelines/data/sign-mnist-sample/train.csv --output "$work/images.sqlite" > /dev/null
$bin/preprocess --input "$work/images.sqlite" --output "$work/preprocessed.sqlite" --size 32 > /dev/null
$bin/extract --input "$work/preprocessed.sqlite" --output "$work/features.sqlite" --weights random:0 > "$work/extract.log"
gemm=$(python3 -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT value FROM backbone WHERE key = 'gemm'\").fetchone()[0])" "$work/features.sqlite")
echo "$gemm" | grep -qw blas || { echo "check_portable: extract without the x86 kernels ran on '$gemm', not blas" >&2; exit 1; }
echo "check_portable: passed (the numeric tests and extract ran on OpenBLAS and the portable product)"
